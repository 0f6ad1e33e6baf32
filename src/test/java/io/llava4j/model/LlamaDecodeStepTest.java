package io.llava4j.model;

import io.llava4j.config.TextConfig;
import io.llava4j.engine.Engine;
import io.llava4j.engine.Tensors;
import io.llava4j.nn.Linear;
import io.llava4j.nn.StreamedWeight;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The Java decoding step computes what libtorch's cached forward computes on the same packed weights: LLaMA-shaped
 * (grouped-query heads) and Qwen2-shaped (q/k/v biases), over a prompt and several new positions, the caches equal too.
 */
class LlamaDecodeStepTest {
    private static Llama packed(String type, long seed) {
        return packed(type, seed, torch.ScalarType.BFloat16);
    }

    private static Llama packed(String type, long seed, torch.ScalarType dtype) {
        torch.manual_seed(seed);
        Llama lm = new Llama(configOf(type));
        try (NoGradGuard g = new NoGradGuard()) {
            for (Tensor p : Tensors.namedParameters(lm).values()) p.copy_(torch.randn(p.sizes().vec().get()).mul(new org.bytedeco.pytorch.Scalar(0.5)));
        }
        lm.packForInference(dtype);
        return lm;
    }

    /** As {@link #packed}, the decoder projections first held in int8 ({@code --load_8bit}): the step multiplies the codes in place. */
    private static Llama int8(String type, long seed, torch.ScalarType dtype) {
        torch.manual_seed(seed);
        Llama lm = new Llama(configOf(type));
        io.llava4j.nn.quant.DequantBuffer buffer = new io.llava4j.nn.quant.DequantBuffer();
        try (NoGradGuard g = new NoGradGuard()) {
            for (Tensor p : Tensors.namedParameters(lm).values()) p.copy_(torch.randn(p.sizes().vec().get()).mul(new org.bytedeco.pytorch.Scalar(0.5)));
            lm.layerProjections().forEach((path, lin) -> lin.quantize(new io.llava4j.nn.quant.QuantizedLinear(
                    io.llava4j.nn.quant.RowwiseInt8.quantize(lin.weight), path.substring(path.indexOf('.', "model.layers.".length()) + 1), buffer)));
        }
        lm.packForInference(dtype);
        return lm;
    }

    @Test
    void stepsEqualLibtorchsCachedForward() {
        Engine.init();
        Assumptions.assumeTrue(StreamedWeight.available(), "JVM without the jdk.incubator.vector module");
        // bf16: every projection row-major (the vector loops); fp32: every projection in oneDNN's layout (products
        // through tensors)
        // int8: q/k/v and gate/up apart, each multiplied in place (in bf16 and in fp32 arithmetic), or in bf16 by
        // libtorch's int8 kernel through a tensor (as for matrices of 8 MiB and more)
        // "wide": heads of 64 values, as TinyLlama's and Qwen2-0.5B's (attention's weighted sum in four vectors); in fp32,
        // as in bf16 the two paths part by a bf16 rounding here and there at this width (0.6 % at step 0)
        for (String type : new String[]{"llama", "qwen2", "llama fp32", "qwen2 fp32", "llama int8", "qwen2 int8 fp32", "qwen2 int8 kernel", "wide fp32"}) {
            torch.ScalarType dtype = type.endsWith("fp32") ? torch.ScalarType.Float : torch.ScalarType.BFloat16;
            if (dtype == torch.ScalarType.Float && !io.llava4j.nn.PackedWeight.available()) continue;
            String model = type.split(" ")[0];
            boolean int8 = type.contains("int8");
            Llama fast = int8 ? int8(model, 31, dtype) : packed(model, 31, dtype), slow = int8 ? int8(model, 31, dtype) : packed(model, 31, dtype);
            assertNotNull(fast.model.decodeStep, type + ": every projection held for inference, so the step is used");
            slow.model.decodeStep = null;
            if (int8) System.setProperty("llava4j.bf16_gemm", "1"); // int8 in bf16: its products in bf16 arithmetic under autocast
            if (type.endsWith("kernel")) System.setProperty("llava4j.int8JavaBelowBytes", "0");
            try (NoGradGuard g = new NoGradGuard();
                 io.llava4j.nn.Autocast ac = int8 && dtype == torch.ScalarType.BFloat16 ? io.llava4j.nn.Autocast.enable(io.llava4j.nn.Precision.BF16) : null) {
                // 21 to 26 positions attended: the softmax's vector loop and its tail both run
                KvCache cf = new KvCache(configOf(model), 1, 32), cs = new KvCache(configOf(model), 1, 32);
                long width = configOf(model).hiddenSize();
                Tensor prompt = torch.randn(1, 20, width);
                assertTrue(Tensors.relativeError(fast.forwardCached(prompt, null, null, cf), slow.forwardCached(prompt, null, null, cs)) < 1e-6);
                for (int step = 0; step < 6; step++) {
                    Tensor e = torch.randn(1, 1, width);
                    Tensor a = fast.forwardCached(e, null, null, cf), b = slow.forwardCached(e, null, null, cs);
                    assertArrayEquals(Tensors.shape(b), Tensors.shape(a));
                    double err = Tensors.relativeError(a, b);
                    assertTrue(err < 1e-4, type + " step " + step + ": relative error " + err);
                    assertEquals(cs.length(), cf.length());
                }
                for (int l = 0; l < 2; l++) {
                    assertTrue(Tensors.relativeError(cf.keys[l], cs.keys[l]) < 1e-5, type + " layer " + l + " keys");
                    assertTrue(Tensors.relativeError(cf.values[l], cs.values[l]) < 1e-5, type + " layer " + l + " values");
                }
            } finally {
                System.clearProperty("llava4j.bf16_gemm");
                System.clearProperty("llava4j.int8JavaBelowBytes");
            }
        }
    }

    /**
     * bf16 weights on a CPU without bf16 arithmetic ({@code llava4j.bf16_gemm=0}), packed for fp32 arithmetic: over a
     * prompt, both the Java step's model and libtorch's path on the packed matrices give the hidden states of the
     * unpacked model, whose GEMMs up-cast each bf16 weight to fp32; decoding steps, the Java step equals libtorch's path
     * on the same matrices.
     */
    @Test
    void bf16WeightsWithoutBf16ArithmeticDecodeAsTheUpcastingPath() {
        Engine.init();
        Assumptions.assumeTrue(StreamedWeight.available(), "JVM without the jdk.incubator.vector module");
        System.setProperty("llava4j.bf16_gemm", "0");
        try {
            Llama[] m = new Llama[3]; // the Java step, libtorch's path on the same packing, unpacked
            for (int i = 0; i < 3; i++) {
                torch.manual_seed(37);
                m[i] = new Llama(configOf("qwen2"));
                try (NoGradGuard g = new NoGradGuard()) {
                    for (Tensor p : Tensors.namedParameters(m[i]).values()) p.copy_(torch.randn(p.sizes().vec().get()).mul(new org.bytedeco.pytorch.Scalar(0.5)));
                    for (Linear l : m[i].layerProjections().values()) l.weight.set_data(l.weight.to(torch.ScalarType.BFloat16));
                }
                if (i < 2) m[i].packForInference(io.llava4j.nn.Precision.BF16.gemm()); // fp32 here
            }
            assertEquals(torch.ScalarType.Float, io.llava4j.nn.Precision.BF16.gemm());
            assertNotNull(m[0].model.decodeStep, "bf16 rows multiplied in fp32: the step runs");
            m[1].model.decodeStep = null;
            try (NoGradGuard g = new NoGradGuard(); io.llava4j.nn.Autocast ac = io.llava4j.nn.Autocast.enable(io.llava4j.nn.Precision.BF16)) {
                KvCache[] c = new KvCache[3];
                for (int i = 0; i < 3; i++) c[i] = new KvCache(configOf("qwen2"), 1, 32);
                Tensor prompt = torch.randn(1, 20, 64);
                Tensor[] h = new Tensor[3];
                for (int i = 0; i < 3; i++) h[i] = m[i].forwardCached(prompt, null, null, c[i]);
                for (int i = 0; i < 2; i++) assertTrue(Tensors.relativeError(h[i], h[2]) < 1e-5, "prompt, model " + i);
                for (int step = 0; step < 4; step++) {
                    Tensor e = torch.randn(1, 1, 64);
                    for (int i = 0; i < 3; i++) h[i] = m[i].forwardCached(e, null, null, c[i]);
                    double same = Tensors.relativeError(h[0], h[1]), unpacked = Tensors.relativeError(h[0], h[2]);
                    assertTrue(same < 1e-5, "step " + step + ": the Java step against libtorch's path on the same matrices: " + same);
                    // the unpacked path multiplies one row against bf16 weights as a bf16 matrix-vector product
                    // (Autocast.linear: rounded to bf16), where the packed matrices keep fp32: bf16-sized differences
                    assertTrue(unpacked < 2e-2, "step " + step + ": against the unpacked path: " + unpacked);
                }
            }
        } finally {
            System.clearProperty("llava4j.bf16_gemm");
        }
    }

    @Test
    void aTiedHeadReadsTheEmbeddingTableInPlace() {
        Engine.init();
        Assumptions.assumeTrue(StreamedWeight.available(), "JVM without the jdk.incubator.vector module");
        TextConfig c = new TextConfig("qwen2", 64, 96, 2, 4, 2, null, 300, 1e-6, 10000.0, 256, "silu", true, null, null,
                null, null, null);
        torch.manual_seed(41);
        Llama lm = new Llama(c);
        try (NoGradGuard g = new NoGradGuard()) {
            for (Tensor p : Tensors.namedParameters(lm).values()) p.copy_(torch.randn(p.sizes().vec().get()));
            lm.model.embedTokens.weight.set_data(lm.model.embedTokens.weight.to(torch.ScalarType.BFloat16));
            Tensor table = lm.model.embedTokens.weight;
            lm.packForInference(torch.ScalarType.BFloat16);
            assertNotNull(lm.tiedHead, "bf16 table, vector API: the head reads it in place");
            for (long rows : new long[]{1, 3, 12}) {
                Tensor h = torch.randn(1, rows, 64);
                Tensor ref = io.llava4j.nn.Autocast.linear(h, table, null); // libtorch's bf16 product on the same table
                double err = Tensors.relativeError(lm.head(h), ref);
                assertTrue(err < 1e-2, rows + " rows: relative error " + err);
            }
        }
    }

    private static TextConfig configOf(String type) {
        if (type.equals("wide")) return new TextConfig("llama", 256, 384, 2, 4, 2, null, 50, 1e-6, 10000.0, 256, "silu", false, null, null, null, null, null);
        return new TextConfig(type, 64, 96, 2, 4, 2, null, 50, 1e-6, 10000.0, 256, "silu", false, null, null, null, null, null);
    }
}
