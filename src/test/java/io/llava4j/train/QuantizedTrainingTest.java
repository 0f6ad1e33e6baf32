package io.llava4j.train;

import io.llava4j.TestData;
import io.llava4j.engine.Tensors;
import io.llava4j.io.HostTensor;
import io.llava4j.nn.quant.QuantSpec;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static io.llava4j.train.TwoStageTrainingTest.stage1Flags;
import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code train --bits 4|8}: a quantized run against the same run on a model whose weights are the dequantized values
 * (equal losses: the quantized run computes with exactly those values), the loss gap to the unquantized run
 * (printed), QLoRA, refusals, and outputs that stay in the file's dtype.
 */
class QuantizedTrainingTest {

    private static List<String> with(List<String> flags, String... extra) {
        List<String> f = new ArrayList<>(flags);
        f.addAll(List.of(extra));
        return f;
    }

    private static List<String> on(List<String> flags, Path model) {
        List<String> f = new ArrayList<>(flags);
        f.set(f.indexOf("--model_name_or_path") + 1, model.toString());
        return f;
    }

    private static Path dequantizedCopy(Path dir, QuantSpec spec) throws Exception {
        return io.llava4j.QuantFixtures.dequantizedCopy(dir, spec);
    }

    @Test
    void quantizedStage1EqualsTheRunOnDequantizedWeights(@TempDir Path tmp) throws Exception {
        Trainer plain = TrainRuns.run(stage1Flags(tmp.resolve("plain")));
        String[][] runs = {{"4", "nf4", "True"}, {"4", "fp4", "False"}, {"8", "nf4", "False"}};
        for (String[] r : runs) {
            QuantSpec spec = QuantSpec.of(Integer.parseInt(r[0]), r[1], Boolean.parseBoolean(r[2]));
            String tag = spec.describe();
            Trainer q = TrainRuns.run(with(stage1Flags(tmp.resolve("q" + r[0] + r[1])), "--bits", r[0], "--quant_type", r[1], "--double_quant", r[2]));
            Path deq = dequantizedCopy(tmp.resolve("deq" + r[0] + r[1]), spec);
            Trainer d = TrainRuns.run(on(stage1Flags(tmp.resolve("d" + r[0] + r[1])), deq));
            assertNotNull(q.model().quantized);
            assertTrue(q.model().quantized.describe(ScalarType.Float).contains(r[0] + " bits"));
            for (int i = 0; i < q.losses().size(); i++) {
                double gap = q.losses().get(i) - plain.losses().get(i);
                System.out.printf("stage 1, %s, step %d: loss %.6f; on the dequantized weights %.6f; unquantized %.6f (gap %+.2e, %.3f%%)%n",
                        tag, i + 1, q.losses().get(i), d.losses().get(i), plain.losses().get(i), gap, 100 * gap / plain.losses().get(i));
                assertEquals(d.losses().get(i), q.losses().get(i), 0.0, tag + ": step " + (i + 1) + " equals the run on the dequantized weights");
                assertEquals(plain.losses().get(i), q.losses().get(i), 0.05 * plain.losses().get(i), tag + ": close to the unquantized run");
            }
            assertNotEquals(plain.losses().get(0), q.losses().get(0), tag + ": the quantized weights are used");
            for (String n : q.plan().trainable())
                assertTrue(q.parameters().get(n).equal(d.parameters().get(n)), tag + ": " + n + " trained the same");
        }
    }

    /** --bf16: the quantized weights are dequantized into bf16 buffers; the reference stores the same values in bf16. */
    @Test
    void bf16Stage1EqualsTheRunOnDequantizedWeightsStoredInBf16(@TempDir Path tmp) throws Exception {
        System.setProperty("llava4j.bf16_gemm", "1"); // bf16 GEMMs, as on a CPU with AVX-512 BF16
        try {
            Trainer q = TrainRuns.run(with(stage1Flags(tmp.resolve("q")), "--bits", "4", "--bf16", "True", "--gradient_checkpointing", "True"));
            Path deq = dequantizedCopy(tmp.resolve("deq"), QuantSpec.of(4, "nf4", false));
            Trainer d = TrainRuns.run(on(with(stage1Flags(tmp.resolve("d")), "--bf16", "True", "--gradient_checkpointing", "True"), deq));
            for (int i = 0; i < q.losses().size(); i++) {
                System.out.printf("stage 1 bf16, 4 bits nf4, step %d: loss %.6f; on the dequantized weights in bf16 %.6f%n", i + 1, q.losses().get(i), d.losses().get(i));
                assertEquals(d.losses().get(i), q.losses().get(i), 0.0, "bf16 step " + (i + 1));
            }
        } finally {
            System.clearProperty("llava4j.bf16_gemm");
        }
    }

    /** QLoRA: base weights in 4 bits, adapters and projector train; equal to LoRA on the dequantized base. */
    @Test
    void qloraEqualsLoraOnTheDequantizedBase(@TempDir Path tmp) throws Exception {
        List<String> lora = List.of("--lora_enable", "True", "--lora_r", "4", "--lora_alpha", "8", "--lora_dropout", "0");
        Trainer q = TrainRuns.run(with(with(PrecisionAndCheckpointingTest.stage2Flags(tmp.resolve("q")), lora.toArray(new String[0])),
                "--bits", "4", "--double_quant", "True"));
        Path deq = dequantizedCopy(tmp.resolve("deq"), QuantSpec.of(4, "nf4", true));
        Trainer d = TrainRuns.run(on(with(PrecisionAndCheckpointingTest.stage2Flags(tmp.resolve("d")), lora.toArray(new String[0])), deq));
        assertTrue(q.plan().trainable().stream().anyMatch(n -> n.contains("lora_B")));
        for (int i = 0; i < q.losses().size(); i++) {
            System.out.printf("QLoRA step %d: loss %.6f; LoRA on the dequantized base %.6f%n", i + 1, q.losses().get(i), d.losses().get(i));
            assertEquals(d.losses().get(i), q.losses().get(i), 1e-12 * d.losses().get(i), "QLoRA step " + (i + 1));
        }
        for (String n : q.plan().trainable())
            assertEquals(0.0, Tensors.relativeError(q.parameters().get(n), d.parameters().get(n)), 1e-6, n);
        assertTrue(Files.isRegularFile(tmp.resolve("q").resolve("adapter_model.safetensors")));

        // merge --bits: the adapters go onto the dequantized base, written in the base's dtype (fp32 here)
        String lp = tmp.resolve("q").toString();
        assertEquals(0, io.llava4j.cli.Main.run("merge", "--lora_path", lp, "--model_name_or_path", TestData.tinyLlava().toString(),
                "--output_dir", tmp.resolve("m-q").toString(), "--bits", "4", "--double_quant", "True"));
        assertEquals(0, io.llava4j.cli.Main.run("merge", "--lora_path", lp, "--model_name_or_path", deq.toString(),
                "--output_dir", tmp.resolve("m-deq").toString()));
        assertEquals(0, io.llava4j.cli.Main.run("merge", "--lora_path", lp, "--model_name_or_path", TestData.tinyLlava().toString(),
                "--output_dir", tmp.resolve("m-plain").toString()));
        Map<String, HostTensor> mq = TestData.tensors(tmp.resolve("m-q").resolve("model.safetensors"));
        Map<String, HostTensor> md = TestData.tensors(tmp.resolve("m-deq").resolve("model.safetensors"));
        Map<String, HostTensor> mp = TestData.tensors(tmp.resolve("m-plain").resolve("model.safetensors"));
        assertEquals(md.keySet(), mq.keySet());
        for (String n : md.keySet()) {
            assertEquals(md.get(n).dtype(), mq.get(n).dtype(), n);
            assertArrayEquals(md.get(n).toFloats(), mq.get(n).toFloats(), 0f, n + ": merged into the dequantized base");
        }
        String w = "language_model.model.layers.0.self_attn.q_proj.weight";
        assertFalse(java.util.Arrays.equals(mp.get(w).toFloats(), mq.get(w).toFloats()), "merge --bits differs from the merge into the original weights");
    }

    @Test
    void flagsThatTrainTheQuantizedWeightsAreRefused(@TempDir Path tmp) {
        var e = assertThrows(IllegalArgumentException.class,
                () -> TrainRuns.run(PrecisionAndCheckpointingTest.stage2Flags(tmp.resolve("s2"), "--bits", "8")));
        assertTrue(e.getMessage().contains("--bits 8") && e.getMessage().contains("decoder layers"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> TrainRuns.run(with(stage1Flags(tmp.resolve("x")), "--bits", "3")));
        assertThrows(IllegalArgumentException.class, () -> TrainRuns.run(with(stage1Flags(tmp.resolve("y")), "--bits", "4", "--quant_type", "int4")));
        assertThrows(IllegalArgumentException.class, () -> TrainRuns.run(with(stage1Flags(tmp.resolve("z")), "--bits", "8", "--double_quant", "True")));
        assertFalse(Files.exists(tmp.resolve("s2")));
    }

    /** A whole model written by a quantized run (lm_head trained) holds the frozen layers as the input file has them. */
    @Test
    void savedModelKeepsTheFilesDtypeNotTheQuantizedValues(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("s2");
        Trainer t = TrainRuns.run(PrecisionAndCheckpointingTest.stage2Flags(out, "--freeze_backbone", "True", "--bits", "4"));
        assertTrue(t.plan().trainable().stream().anyMatch(n -> n.contains("lm_head")));
        Map<String, HostTensor> in = TestData.tensors(TestData.tinyLlava().resolve("model.safetensors"));
        Map<String, HostTensor> written = TestData.tensors(out.resolve("model.safetensors"));
        String q = "language_model.model.layers.1.mlp.down_proj.weight";
        assertEquals(in.get(q).dtype(), written.get(q).dtype());
        assertArrayEquals(in.get(q).toFloats(), written.get(q).toFloats(), 0f, "the file's values, not the 4-bit ones");
        assertFalse(Tensors.fromHost(written.get("language_model.lm_head.weight")).equal(Tensors.fromHost(in.get("language_model.lm_head.weight"))));
    }
}
