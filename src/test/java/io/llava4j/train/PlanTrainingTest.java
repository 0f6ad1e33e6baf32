package io.llava4j.train;

import io.llava4j.TestData;
import io.llava4j.cli.Main;
import io.llava4j.cli.TrainCommand;
import io.llava4j.engine.Tensors;
import io.llava4j.io.HostTensor;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/** Stage plans on the tiny reference model: LLaVA's two stages as a plan, and progressive unfreezing inside a stage. */
class PlanTrainingTest {

    /** LLaVA's two stages written as a plan give the weights of the two CLI calls. */
    @Test
    void twoStagePlanEqualsTwoCliCalls(@TempDir Path tmp) throws Exception {
        Path s1 = tmp.resolve("s1"), s2 = tmp.resolve("s2");
        List<String> f1 = TwoStageTrainingTest.stage1Flags(s1);
        TrainRuns.run(f1);
        List<String> f2 = TwoStageTrainingTest.common(s2);
        f2.addAll(List.of("--version", "v1", "--data_path", TestData.tinyData().resolve("finetune.json").toString(),
                "--pretrain_mm_mlp_adapter", s1.resolve("mm_projector.safetensors").toString(), "--max_steps", "2"));
        TrainRuns.run(f2);

        runPlan(tmp, "",
                stage("pretrain", "pretrain.json", "plain", 3, "vision: frozen", "projector: full", "llm: frozen", "lr: {projector: 1e-3}"),
                stage("finetune", "finetune.json", "v1", 2, "projector: full", "llm: full", "lr: {llm: 1e-3, projector: 1e-3}"));

        assertClose(s1.resolve("mm_projector.safetensors"), tmp.resolve("plan/pretrain/mm_projector.safetensors"));
        assertClose(s2.resolve("model.safetensors"), tmp.resolve("plan/finetune/model.safetensors"));
    }

    /** A plan stage with {@code llm: {lora: …}} trains the same adapters as the CLI's --lora_enable call. */
    @Test
    void loraStageEqualsTheLoraCliCall(@TempDir Path tmp) throws Exception {
        Path cli = tmp.resolve("cli");
        TrainRuns.run(LoraTest.parityFlags(cli));
        Path init = TestData.reference().resolveSibling("reference-lora").resolve("expected/init");
        runPlan(tmp, ", lora_weight_path: " + init,
                stage("lora", "finetune.json", "v1", 3, "projector: full", "llm: {lora: {r: 4, alpha: 8, dropout: 0}}",
                        "lr: {llm: 1e-2, projector: 2e-3}"));
        assertClose(cli.resolve("adapter_model.safetensors"), tmp.resolve("plan/lora/adapter_model.safetensors"));
    }

    /** Runs a plan on the tiny reference model writing to {@code tmp/plan/<stage>}; {@code moreArgs} go into its args. */
    private static void runPlan(Path tmp, String moreArgs, String... stages) throws Exception {
        Path planFile = tmp.resolve("plan.yaml");
        Files.writeString(planFile, String.join("\n",
                "model_name_or_path: " + TestData.tinyLlava(),
                "output_dir: " + tmp.resolve("plan"),
                "args: {per_device_train_batch_size: 2, lr_scheduler_type: constant, warmup_ratio: 0, weight_decay: 0,",
                "       max_grad_norm: 0, logging_steps: 1" + moreArgs + "}",
                "stages:",
                String.join("\n", stages), ""));
        assertEquals(0, Main.run("train", "--plan", planFile.toString()));
    }

    /** One stage of a plan on the tiny data: its name, data file, template, steps and further keys. */
    private static String stage(String name, String dataFile, String template, int steps, String... keys) {
        List<String> lines = new ArrayList<>(List.of("  - name: " + name,
                "    data_path: " + TestData.tinyData().resolve(dataFile),
                "    image_folder: " + TestData.tinyData().resolve("images"),
                "    template: " + template,
                "    max_steps: " + steps));
        for (String k : keys) lines.add("    " + k);
        return String.join("\n", lines);
    }

    private static void assertClose(Path want, Path got) {
        Map<String, HostTensor> w = TestData.tensors(want), g = TestData.tensors(got);
        assertEquals(w.keySet(), g.keySet(), got.toString());
        for (String k : w.keySet()) {
            float[] a = w.get(k).toFloats(), b = g.get(k).toFloats();
            assertArrayEquals(a, b, 1e-6f, k);
        }
    }

    static List<String> progressiveFlags(Path out, int steps) {
        return new ArrayList<>(List.of("--model_name_or_path", TestData.tinyLlava().toString(),
                "--image_folder", TestData.tinyData().resolve("images").toString(), "--per_device_train_batch_size", "1",
                "--learning_rate", "1e-3", "--lr_scheduler_type", "constant", "--weight_decay", "0.1",
                "--logging_steps", "1", "--output_dir", out.toString(), "--version", "v1",
                "--data_path", TestData.tinyData().resolve("finetune.json").toString(), "--max_steps", String.valueOf(steps),
                "--save_steps", "1"));
    }

    /** LLM layer 1 with the norm and head from step 0, layer 0 from step 2 (warm-up 2); projector and tower frozen. */
    static final Trainability PROGRESSIVE = new Trainability(Trainability.Module.FROZEN, Trainability.Module.FROZEN,
            Trainability.Module.layers(1, Trainability.TOP), new Trainability.Unfreeze("llm", 2, 1, 2, 0));

    @Test
    void progressiveUnfreezingTrainsEachGroupFromItsStep(@TempDir Path out) throws Exception {
        Trainer t = new Trainer(TrainCommand.parse(progressiveFlags(out, 5).toArray(new String[0]))).trainability(PROGRESSIVE);
        Map<String, HostTensor> before = TestData.tensors(TestData.tinyLlava().resolve("model.safetensors"));
        List<String> failures = new ArrayList<>();
        Map<Long, Set<String>> stateAt = new HashMap<>();
        t.progress(new TrainProgress() {
            @Override public void start(long total, long startStep) {}
            @Override public void done() {}
            @Override public void update(long step, String fields) { // after the update of 0-based step `step - 1`
                FreezeSchedule s = t.freezeSchedule();
                FreezePlan now = s.at((int) step - 1);
                stateAt.put(step, new HashSet<>(t.optimizer().state().keySet()));
                for (Map.Entry<String, Tensor> e : t.parameters().entrySet()) {
                    String n = e.getKey();
                    if (e.getValue().requires_grad() != now.trains(n)) failures.add("step " + step + ": " + n + " requires_grad");
                    boolean same = e.getValue().equal(Tensors.fromHost(before.get(n)));
                    if (!now.trains(n) && !same) failures.add("step " + step + ": frozen " + n + " changed");
                    if (now.trains(n) && same) failures.add("step " + step + ": trainable " + n + " did not change");
                    AdamW.State st = t.optimizer().state().get(n);
                    if (now.trains(n) != (st != null)) failures.add("step " + step + ": " + n + " optimizer state " + (st != null));
                    if (st != null && st.step != step - s.since(n)) failures.add("step " + step + ": " + n + " state step " + st.step);
                }
            }
        });
        t.run();
        assertEquals(List.of(), failures);
        FreezeSchedule s = t.freezeSchedule();
        assertEquals(List.of(0, 2), s.changeSteps());
        String layer0 = "language_model.model.layers.0.self_attn.q_proj.weight", layer1 = "language_model.model.layers.1.mlp.up_proj.weight";
        assertEquals(0, s.since(layer1));
        assertEquals(2, s.since(layer0));
        assertNull(s.since("language_model.model.embed_tokens.weight"));
        assertFalse(stateAt.get(2L).contains(layer0), "no optimizer state before layer 0 unfreezes");
        assertTrue(stateAt.get(3L).contains(layer0));
        assertTrue(stateAt.get(1L).contains("language_model.lm_head.weight"));
        // warm-up of the group unfrozen at step 2: 1/2 at its first step, then 1
        assertEquals(0.5, s.lrFactor(layer0, 2));
        assertEquals(1.0, s.lrFactor(layer0, 3));
        assertEquals(1.0, s.lrFactor(layer1, 0));
        // never trained: bit-identical to the input
        for (String n : List.of("language_model.model.embed_tokens.weight", "multi_modal_projector.linear_1.weight"))
            assertTrue(t.parameters().get(n).equal(Tensors.fromHost(before.get(n))), n);
        // checkpoints record which tensors have optimizer state
        assertFalse(TestData.tensors(out.resolve("checkpoint-2/optimizer.safetensors")).containsKey(layer0 + ".step"), "checkpoint-2 has no state for layer 0");
        assertTrue(TestData.tensors(out.resolve("checkpoint-2/optimizer.safetensors")).containsKey(layer1 + ".step"));
        assertTrue(TestData.tensors(out.resolve("checkpoint-3/optimizer.safetensors")).containsKey(layer0 + ".step"));
    }

    /** A warming-up tensor's AdamW update is its factor times the group's (first step: lr × factor × g/|g|). */
    @Test
    void perTensorWarmupFactorScalesTheUpdate() {
        io.llava4j.engine.Engine.init();
        Map<String, Tensor> ps = new java.util.LinkedHashMap<>();
        for (String n : List.of("a", "b")) {
            Tensor p = Tensors.floats(new float[]{1f, -2f, 3f}, 3).requires_grad_(true);
            p.mul(new org.bytedeco.pytorch.Scalar(2.0)).sum().backward(); // grad = 2
            ps.put(n, p);
        }
        AdamW opt = new AdamW(List.of(new AdamW.Group("g", ps, 0.1, 0.0)), 0.9, 0.999, 1e-8);
        opt.scaleParamLr("b", 0.25);
        opt.step();
        float[] a = Tensors.toFloats(ps.get("a")), b = Tensors.toFloats(ps.get("b"));
        assertEquals(1f - 0.1f, a[0], 1e-6f);
        assertEquals(1f - 0.025f, b[0], 1e-6f);
    }

    /** A run stopped right after the unfreezing step and resumed ends where the uninterrupted run ends. */
    @Test
    void resumeAcrossAnUnfreezingStepIsExact(@TempDir Path tmp) throws Exception {
        Path full = tmp.resolve("full"), cut = tmp.resolve("cut");
        Trainer a = new Trainer(TrainCommand.parse(progressiveFlags(full, 5).toArray(new String[0]))).trainability(PROGRESSIVE);
        a.run();
        new Trainer(TrainCommand.parse(progressiveFlags(cut, 5).toArray(new String[0]))).trainability(PROGRESSIVE).stopAfterStep(3).run();
        List<String> resume = progressiveFlags(cut, 5);
        resume.addAll(List.of("--resume_from_checkpoint", "True"));
        Trainer b = new Trainer(TrainCommand.parse(resume.toArray(new String[0]))).trainability(PROGRESSIVE);
        b.run();
        assertEquals(a.losses().subList(3, 5), b.losses());
        for (Map.Entry<String, Tensor> e : a.parameters().entrySet())
            assertTrue(e.getValue().equal(b.parameters().get(e.getKey())), e.getKey());
        // the checkpoint of another schedule is refused: state for layer 0 where this one never trains it
        List<String> other = progressiveFlags(cut, 5);
        other.addAll(List.of("--resume_from_checkpoint", cut.resolve("checkpoint-3").toString()));
        Trainability layer1Only = new Trainability(Trainability.Module.FROZEN, Trainability.Module.FROZEN,
                Trainability.Module.layers(1, Trainability.TOP), new Trainability.Unfreeze("llm", 4, 1, 0, 0));
        Exception e = assertThrows(IllegalArgumentException.class,
                () -> new Trainer(TrainCommand.parse(other.toArray(new String[0]))).trainability(layer1Only).run());
        assertTrue(e.getMessage().contains("layers.0") && e.getMessage().contains("first trains at step 4"), e.getMessage());
    }
}
