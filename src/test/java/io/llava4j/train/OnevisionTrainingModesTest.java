package io.llava4j.train;

import io.llava4j.TestData;
import io.llava4j.cli.Main;
import io.llava4j.engine.Tensors;
import io.llava4j.io.HostTensor;
import io.llava4j.io.Layout;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The tiny OneVision model (SigLIP + Qwen2 + AnyRes) through the training modes llava4j has for LLaVA-1.5: the vision
 * feature cache (an entry per image holding all its tiles), LoRA on Qwen2's biased projections, and stage plans.
 */
class OnevisionTrainingModesTest {
    static final Path REF = TestData.onevision();
    static final Path MODEL = REF.resolve("tiny-onevision");

    static List<String> stage1(Path out, String... more) {
        List<String> f = OnevisionTrainingTest.common(out, "stage1.json", "mm_mlp_adapter", 5, 3);
        f.addAll(List.of(more));
        return f;
    }

    @Test
    void cachedTilesGiveTheReferenceLossesAndAreReused(@TempDir Path tmp) throws Exception {
        Path cache = tmp.resolve("cache");
        List<Double> first = TrainRuns.run(stage1(tmp.resolve("a"), "--cache_vision_features", cache.toString())).losses();
        List<String> entries;
        try (var l = Files.list(cache)) {
            entries = l.map(p -> p.getFileName().toString()).sorted().toList();
        }
        assertEquals(5, entries.size(), "one entry per image, with all its tiles: " + entries);
        List<Double> second = TrainRuns.run(stage1(tmp.resolve("b"), "--cache_vision_features", cache.toString())).losses();
        assertEquals(first, second, "features read back from the cache");
        TwoStageTrainingTest.assertLosses(new com.fasterxml.jackson.databind.ObjectMapper()
                .readTree(REF.resolve("expected/stage1/reference.json").toFile()), second);
    }

    @Test
    void loraOnQwen2TrainsOnlyAdaptersAndProjector(@TempDir Path out) throws Exception {
        List<String> f = OnevisionTrainingTest.common(out, "stage2.json", "mm_mlp_adapter,mm_language_model", 3, 2);
        f.addAll(List.of("--lora_enable", "True", "--lora_r", "4", "--lora_alpha", "8", "--lora_dropout", "0"));
        f.remove(f.indexOf("--mm_tunable_parts") + 1);
        f.remove("--mm_tunable_parts");
        Trainer t = TrainRuns.run(f);
        Map<String, HostTensor> before = TestData.tensors(MODEL.resolve("model.safetensors"));
        int adapters = 0;
        for (Map.Entry<String, Tensor> e : t.parameters().entrySet()) {
            String n = e.getKey();
            boolean lora = ModuleGroups.isLora(n), projector = n.startsWith("multi_modal_projector.");
            assertEquals(lora || projector, e.getValue().requires_grad(), n);
            if (lora) adapters++;
            if (!lora && !projector)
                assertTrue(e.getValue().equal(Tensors.fromHost(before.get(Layout.TRANSFORMERS.fileName(n, 2)))), n + " changed");
        }
        assertEquals(2 * 7 * 2, adapters, "A and B on the 7 projections of both layers");
        assertTrue(Files.isRegularFile(out.resolve("adapter_model.safetensors")));
        assertTrue(t.losses().get(1) < t.losses().get(0), "the adapters learn: " + t.losses());
    }

    /** LLaVA-NeXT's two stages as a plan give the weights of the two CLI calls. */
    @Test
    void twoStagePlanEqualsTwoCliCalls(@TempDir Path tmp) throws Exception {
        Path s1 = tmp.resolve("s1"), s2 = tmp.resolve("s2");
        TrainRuns.run(stage1(s1));
        List<String> f2 = OnevisionTrainingTest.common(s2, "stage2.json", "mm_mlp_adapter,mm_language_model", 3, 2);
        f2.addAll(List.of("--pretrain_mm_mlp_adapter", s1.resolve("mm_projector.safetensors").toString()));
        TrainRuns.run(f2);

        Path plan = tmp.resolve("plan.yaml");
        Files.writeString(plan, String.join("\n",
                "model_name_or_path: " + MODEL,
                "output_dir: " + tmp.resolve("plan"),
                "args: {lr_scheduler_type: constant, warmup_ratio: 0, weight_decay: 0, max_grad_norm: 0, logging_steps: 1}",
                "stages:",
                planStage("align", "stage1.json", 3, 5, "vision: frozen", "projector: full", "llm: frozen", "lr: {projector: 1e-3}"),
                planStage("tune", "stage2.json", 2, 3, "projector: full", "llm: full", "lr: {llm: 1e-3, projector: 1e-3}"), ""));
        assertEquals(0, Main.run("train", "--plan", plan.toString()));
        assertClose(s1.resolve("mm_projector.safetensors"), tmp.resolve("plan/align/mm_projector.safetensors"));
        assertClose(s2.resolve("model.safetensors"), tmp.resolve("plan/tune/model.safetensors"));
    }

    /** One qwen_1_5 stage of a plan on the tiny data, with its further keys. */
    private static String planStage(String name, String data, int steps, int batch, String... keys) {
        Path d = REF.resolve("tiny-data");
        List<String> lines = new ArrayList<>(List.of("  - name: " + name, "    data_path: " + d.resolve(data),
                "    image_folder: " + d.resolve("images"), "    template: qwen_1_5", "    max_steps: " + steps,
                "    args: {per_device_train_batch_size: " + batch + "}"));
        for (String k : keys) lines.add("    " + k);
        return String.join("\n", lines);
    }

    private static void assertClose(Path want, Path got) {
        Map<String, HostTensor> w = TestData.tensors(want), g = TestData.tensors(got);
        assertEquals(w.keySet(), g.keySet(), got.toString());
        for (String k : w.keySet()) assertArrayEquals(w.get(k).toFloats(), g.get(k).toFloats(), 1e-6f, k);
    }

    /** The data check counts each AnyRes image's own rows: a sample cut by --model_max_length is named with its length. */
    @Test
    void dataCheckCountsEachImagesRows() throws Exception {
        io.llava4j.config.LlavaConfig cfg = io.llava4j.config.LlavaConfig.load(MODEL, null, null);
        try (io.llava4j.data.LlavaTokenizer tok = io.llava4j.data.LlavaTokenizer.load(MODEL)) {
            io.llava4j.data.DataReport r = Batches.validate(tok, MODEL, cfg, REF.resolve("tiny-data/stage2.json"),
                    REF.resolve("tiny-data/images"), "qwen_1_5", null, 90, 1);
            // the reference's expanded lengths are 84, 85 and 99 (record 2: 54 ids, img2 of 64 x 40 becomes 46 rows);
            // one fixed count of 16 rows per image would put record 2 at 69 and find nothing
            var truncated = r.findings().stream().filter(f -> f.problem() == io.llava4j.data.DataProblem.TRUNCATED).toList();
            assertEquals(1, truncated.size(), r.findings().toString());
            assertEquals(2, truncated.get(0).index());
            assertTrue(truncated.get(0).message().contains("99 positions"), truncated.get(0).message());
        }
    }

    /** Layer recomputation gives the same run; bf16 (frozen weights in bf16, GEMMs in bf16 where the CPU has them) stays close. */
    @Test
    void gradientCheckpointingAndBf16(@TempDir Path tmp) throws Exception {
        List<String> base = OnevisionTrainingTest.common(tmp.resolve("a"), "stage2.json", "mm_mlp_adapter,mm_language_model", 3, 2);
        Trainer plain = TrainRuns.run(base);
        List<String> ckpt = OnevisionTrainingTest.common(tmp.resolve("b"), "stage2.json", "mm_mlp_adapter,mm_language_model", 3, 2);
        ckpt.addAll(List.of("--gradient_checkpointing", "True"));
        Trainer recomputed = TrainRuns.run(ckpt);
        for (int i = 0; i < 2; i++) assertEquals(plain.losses().get(i), recomputed.losses().get(i), 1e-5, "loss " + i);
        for (Map.Entry<String, Tensor> e : plain.parameters().entrySet()) {
            Tensor b = recomputed.parameters().get(e.getKey());
            double err = e.getValue().sub(b).norm().item_double() / Math.max(1e-12, e.getValue().norm().item_double());
            assertTrue(err < 1e-5, e.getKey() + " differs after recomputation: " + err);
        }
        List<String> bf = OnevisionTrainingTest.common(tmp.resolve("c"), "stage1.json", "mm_mlp_adapter", 5, 3);
        bf.addAll(List.of("--bf16", "True"));
        Trainer half = TrainRuns.run(bf);
        List<Double> fp32 = TrainRuns.run(stage1(tmp.resolve("d"))).losses();
        for (int i = 0; i < 3; i++)
            assertEquals(fp32.get(i), half.losses().get(i), 0.02 * fp32.get(i), "bf16 loss " + i + ": " + half.losses() + " vs " + fp32);
    }
}
