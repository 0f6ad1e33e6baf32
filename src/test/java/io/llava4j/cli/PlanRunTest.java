package io.llava4j.cli;

import io.llava4j.TestData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** {@code llava4j train --plan}: the plan is checked up front, one error naming stage and key; --dry_run prints the schedule. */
class PlanRunTest {
    @TempDir Path tmp;

    private Path plan(String... stageLines) throws Exception {
        Path data = TestData.tinyData();
        StringBuilder sb = new StringBuilder();
        sb.append("model_name_or_path: ").append(TestData.tinyLlava()).append('\n');
        sb.append("output_dir: ").append(tmp.resolve("out")).append('\n');
        sb.append("args: {per_device_train_batch_size: 2}\n");
        sb.append("stages:\n");
        sb.append("  - name: pretrain\n    data_path: ").append(data.resolve("pretrain.json")).append("\n    template: plain\n");
        sb.append("    max_steps: 2\n    projector: full\n    llm: frozen\n    lr: {projector: 1e-3}\n");
        sb.append("  - name: finetune\n    data_path: ").append(data.resolve("finetune.json")).append('\n');
        for (String l : stageLines) sb.append("    ").append(l).append('\n');
        Path f = tmp.resolve("plan.yaml");
        Files.writeString(f, sb.toString());
        return f;
    }

    private static String error(Path plan) {
        Exception e = assertThrows(IllegalArgumentException.class, () -> PlanRun.check(plan));
        return e.getMessage();
    }

    private static void assertMessage(Path plan, String how, String want) {
        String e = error(plan);
        assertTrue(how.equals("endsWith") ? e.endsWith(want) : e.contains(want), e);
    }

    @Test
    void aValidPlanBecomesTheFlagsOfTwoCalls() throws Exception {
        List<PlanRun.Checked> c = PlanRun.check(plan("epochs: 1", "llm: layers 1..N", "lr: {llm: 2e-5}",
                "unfreeze: {every: 3, add: 1, warmup: 2}", "args: {warmup_ratio: 0.03, gradient_checkpointing: true}"));
        assertEquals(2, c.size());
        assertTrue(c.get(0).args().tuneMmMlpAdapter(), "a projector-only stage is LLaVA's stage 1");
        assertEquals(1e-3, c.get(0).args().mmProjectorLr());
        assertEquals(TestData.tinyLlava(), c.get(1).args().modelNameOrPath(), "after a projector-only stage: the base model");
        assertEquals(tmp.resolve("out/pretrain/mm_projector.safetensors"), c.get(1).args().pretrainMmMlpAdapter());
        assertEquals(2e-5, c.get(1).args().learningRate());
        assertEquals(0.03, c.get(1).args().warmupRatio());
        assertTrue(c.get(1).args().gradientCheckpointing());
        assertEquals(2, c.get(1).args().perDeviceTrainBatchSize(), "the plan's args reach every stage");
        assertEquals(1.0, c.get(1).args().numTrainEpochs());
        assertEquals("layers 1..N", c.get(1).stage().trainability().llm().toString());
    }

    @Test
    void errorsNameTheStageAndTheKey() throws Exception {
        assertEquals(plan("max_steps: 2", "colour: blue").toString() + ": stage 'finetune': unknown key 'colour' (known: args, data_path, "
                + "epochs, image_folder, llm, lr, max_steps, name, projector, template, unfreeze, vision)", error(tmp.resolve("plan.yaml")));
        assertMessage(plan("max_steps: 2", "llm: frozen", "lr: {llm: 1e-5}"), "endsWith", "stage 'finetune': lr.llm: the llm is frozen in this stage");
        assertMessage(plan("max_steps: 2", "args: {learning_rate: 1e-5}"), "endsWith", "stage 'finetune': args.learning_rate: set by the stage's lr.llm, not by args");
        assertMessage(plan("max_steps: 2", "args: {no_such_flag: 1}"), "endsWith", "stage 'finetune': args.no_such_flag: not a flag of llava4j train");
        assertMessage(plan("max_steps: 2", "args: {per_device_train_batch_size: 0}"), "endsWith", "stage 'finetune': --per_device_train_batch_size must be >= 1, got 0");
        assertMessage(plan("max_steps: 2", "llm: layers 1..5"), "endsWith", "stage 'finetune': llm: layers 1..5, but the llm has 2 layers (0..1)");
        assertMessage(plan("max_steps: 2", "vision: layers 7..N"), "endsWith", "stage 'finetune': vision: layers 7..N, but the vision has 3 layers (0..2)");
        assertMessage(plan("max_steps: 2", "llm: some"), "contains", "stage 'finetune': llm: \"some\" is not frozen, full, layers k..N or");
        assertMessage(plan("max_steps: 2", "llm: full", "unfreeze: {every: 2}"), "contains", "stage 'finetune': unfreeze: the llm must start as 'layers k..N'");
        assertMessage(plan("max_steps: 2", "llm: layers 1..N", "unfreeze: {add: 1}"), "endsWith", "stage 'finetune': unfreeze.every: required");
        assertMessage(plan("max_steps: 2", "template: v9"), "contains", "stage 'finetune': template: ");
        assertMessage(plan("max_steps: 2", "image_folder: /no/such/folder"), "endsWith", "stage 'finetune': image_folder: no folder /no/such/folder");
        assertMessage(plan(), "endsWith", "stage 'finetune': give exactly one of max_steps and epochs");
        assertMessage(plan("max_steps: 2", "projector: frozen", "llm: frozen"), "endsWith", "stage 'finetune': vision, projector and llm are all frozen: nothing to train");
    }

    @Test
    void loraIsCheckedAndBecomesTrainsLoraFlags() throws Exception {
        assertTrue(error(plan("max_steps: 2", "llm: {lora: {r: 8, alpha: 16, dropout: 1.5}}"))
                .endsWith("stage 'finetune': llm.lora.dropout: must be in [0, 1), got 1.5"));
        assertMessage(plan("max_steps: 2", "llm: {lora: {r: 8, targets: [fc1]}}"), "contains", "llm.lora.targets: 'fc1' is not one of");
        // a valid lora stage becomes train's LoRA flags, with the plan's targets
        List<PlanRun.Checked> stages = PlanRun.check(plan("max_steps: 2", "llm: {lora: {r: 8, alpha: 16, dropout: 0.05, targets: [q_proj, v_proj]}}"));
        io.llava4j.train.LoraSpec lora = stages.get(1).args().lora();
        assertNotNull(lora);
        assertEquals(8, lora.r());
        assertEquals(2.0, lora.scale(), 1e-12);
        assertEquals(List.of("q_proj", "v_proj"), lora.targets());
        assertTrue(stages.get(1).flags().contains("--lora_enable"), stages.get(1).flags().toString());
        assertNull(stages.get(0).args().lora());
    }

    @Test
    void dryRunPrintsEveryStageAndEveryChangeOfTrainability() throws Exception {
        Path f = plan("max_steps: 6", "llm: layers 1..N", "unfreeze: {every: 3, add: 1, warmup: 2}");
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        PrintStream old = System.out;
        System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
        int rc;
        try {
            rc = Main.run("train", "--plan", f.toString(), "--dry_run", "True");
        } finally {
            System.setOut(old);
        }
        String out = buf.toString(StandardCharsets.UTF_8);
        assertEquals(0, rc, out);
        assertTrue(out.contains("== stage 1/2 'pretrain' (2 steps): vision frozen, projector full, llm frozen"), out);
        assertTrue(out.contains("== stage 2/2 'finetune' (6 steps): vision frozen, projector full, llm layers 1..N, unfreeze llm 1 layer(s) every 3 steps"), out);
        assertTrue(out.contains("--tune_mm_mlp_adapter True"), out);
        assertFalse(Files.exists(tmp.resolve("out")), "a dry run writes nothing");
        // the stage-2 schedule: step 0 (projector, layer 1, norm, head), step 3 (+ layer 0)
        List<String> rows = out.lines().filter(l -> l.matches("^\\d+ +\\d+ .*")).toList();
        assertEquals(3, rows.size(), out); // stage 1: step 0; stage 2: steps 0 and 3
        assertTrue(rows.get(1).startsWith("0 ") && rows.get(1).contains("projector, llm.layers 1, llm.norm, llm.lm_head"), rows.get(1));
        assertTrue(rows.get(2).startsWith("3 ") && rows.get(2).endsWith("llm.layers 0"), rows.get(2));
        assertTrue(out.contains("optimizer state"), out);
    }

    @Test
    void otherFlagsBesidePlanAreRefused() throws Exception {
        Path f = plan("max_steps: 2");
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream old = System.err;
        System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
        int rc;
        try {
            rc = Main.run("train", "--plan", f.toString(), "--max_steps", "3");
        } finally {
            System.setErr(old);
        }
        assertEquals(1, rc);
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("error: --max_steps with --plan: set it in the plan"), err.toString());
    }
}
