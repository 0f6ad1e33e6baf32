package io.llava4j.train;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code --bf16} with native bf16 GEMMs casts each fp32 weight once per step ({@code nn.WeightCasts}), its uses'
 * gradients flowing back through the one cast: the runs are bit for bit those that cast per use — stage 2 (projector
 * and LLM train), two accumulation steps (the casts reused by the second micro-batch), three optimizer steps (casts
 * renewed after each update), as one batch and as two halves at once. bf16 GEMMs are forced, so the path runs on CPUs
 * without AVX-512 BF16 too (slowly; the model is tiny).
 */
class WeightCastsTest {

    /** Losses and gradient norms as logged, and the trained weights' bits. */
    private record Run(List<Double> log, Map<String, float[]> weights) {}

    private static Run run(Path out, boolean castOncePerStep, String halves) throws Exception {
        Map<String, String> props = Map.of("llava4j.bf16_gemm", "1", "llava4j.weight_casts", castOncePerStep ? "1" : "0",
                "llava4j.sample_threads", halves);
        Map<String, String> before = new java.util.HashMap<>();
        props.forEach((k, v) -> {
            before.put(k, System.getProperty(k));
            System.setProperty(k, v);
        });
        try {
            List<String> f = FreezeAwareDataTest.stage1(out, "--gradient_accumulation_steps", "2", "--num_train_epochs", "3",
                    "--logging_steps", "1", "--bf16", "True");
            f.set(f.indexOf("--per_device_train_batch_size") + 1, "2");
            f.set(f.indexOf("--max_steps") + 1, "3");
            f.set(f.indexOf("--tune_mm_mlp_adapter") + 1, "False");
            f.set(f.indexOf("--data_path") + 1, TrainStepHalvesTest.data(out.getParent()).toString());
            Trainer t = TrainRuns.run(f);
            List<Double> log = new ArrayList<>();
            for (String line : Files.readAllLines(out.resolve("log.jsonl"))) {
                com.fasterxml.jackson.databind.JsonNode j = new com.fasterxml.jackson.databind.ObjectMapper().readTree(line);
                log.add(j.get("loss").asDouble());
                log.add(j.get("grad_norm").asDouble());
            }
            Map<String, float[]> w = new java.util.TreeMap<>();
            for (Map.Entry<String, org.bytedeco.pytorch.Tensor> e : io.llava4j.engine.Tensors.namedParameters(t.model()).entrySet())
                if (e.getKey().contains("mm_projector") || e.getKey().contains("layers.0.mlp") || e.getKey().contains("lm_head"))
                    w.put(e.getKey(), io.llava4j.engine.Tensors.toFloats(e.getValue()));
            return new Run(log, w);
        } finally {
            before.forEach((k, v) -> {
                if (v == null) System.clearProperty(k);
                else System.setProperty(k, v);
            });
        }
    }

    private static void same(Run perUse, Run once, String what) {
        assertEquals(6, perUse.log().size());
        assertEquals(perUse.log(), once.log(), what + ": losses and gradient norms");
        assertFalse(perUse.weights().isEmpty());
        for (String n : perUse.weights().keySet())
            assertArrayEquals(perUse.weights().get(n), once.weights().get(n), what + ": " + n);
    }

    @Test
    void oneCastPerStepTrainsAsCastsPerUse(@TempDir Path tmp) throws Exception {
        io.llava4j.engine.Engine.init();
        same(run(tmp.resolve("a"), false, "0"), run(tmp.resolve("b"), true, "0"), "one batch");
    }

    @Test
    void oneCastPerStepTrainsAsCastsPerUseInHalves(@TempDir Path tmp) throws Exception {
        io.llava4j.engine.Engine.init();
        same(run(tmp.resolve("a"), false, "force"), run(tmp.resolve("b"), true, "force"), "two halves");
    }
}
