package io.llava4j.generate;

import io.llava4j.QuantFixtures;
import io.llava4j.TestData;
import io.llava4j.data.Conversation.Template;
import io.llava4j.engine.Tensors;
import io.llava4j.nn.Precision;
import io.llava4j.nn.quant.QuantSpec;
import io.llava4j.nn.quant.QuantType;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code --load_8bit} / {@code --load_4bit}: greedy decoding with the LLM's linear weights quantized gives the tokens of
 * greedy decoding on a model holding the dequantized values; int8 decoding steps run libtorch's weight-only int8 kernel,
 * int4 weights its int4 kernel.
 */
class QuantizedDecodeTest {

    /** n greedy tokens without stopping (no stop token), so that every step is compared. */
    private static int[] greedy(Assistant a, Precision p, int n) {
        int[] ids = a.encode(Prompts.runLlava(Template.VICUNA_V1, "What shape is on top?", true), true);
        Tensor px = a.pixels(TestData.tinyData().resolve("images/img0.png"));
        return new Generator(a.model(), p).generate(px, ids, Sampling.greedy(n), null).tokens();
    }

    @Test
    void quantizedDecodingGivesTheTokensOfTheDequantizedWeights(@TempDir Path tmp) throws Exception {
        System.setProperty("llava4j.bf16_gemm", "1"); // --bf16 runs bf16 GEMMs (and the int8 kernel), as with AVX-512 BF16
        try {
            decoding(tmp);
        } finally {
            System.clearProperty("llava4j.bf16_gemm");
        }
    }

    private static void decoding(Path tmp) throws Exception {
        for (QuantSpec spec : new QuantSpec[]{new QuantSpec(QuantType.INT8, false), new QuantSpec(QuantType.NF4, true), new QuantSpec(QuantType.INT4, false)}) {
            for (Precision p : new Precision[]{Precision.BF16, Precision.FP32}) {
                Path deq = QuantFixtures.dequantizedCopy(tmp.resolve(spec.type() + "-" + p), spec);
                long kernelCalls = io.llava4j.nn.quant.QuantizedLinear.int8KernelCalls();
                try (Assistant q = Assistant.load(TestData.tinyLlava(), new Assistant.Options(null, p, spec));
                     Assistant d = Assistant.load(deq, new Assistant.Options(null, p));
                     Assistant plain = Assistant.load(TestData.tinyLlava(), new Assistant.Options(null, p))) {
                    int[] got = greedy(q, p, 24), want = greedy(d, p, 24), unquantized = greedy(plain, p, 24);
                    System.out.printf("%s, %s: %s%n  dequantized: %s%n  unquantized: %s%n", spec.describe(), p,
                            java.util.Arrays.toString(got), java.util.Arrays.toString(want), java.util.Arrays.toString(unquantized));
                    boolean kernel = spec.type() == QuantType.INT4 || spec.type() == QuantType.INT8 && p == Precision.BF16;
                    if (kernel) {
                        // the int8 / int4 kernels take bf16 activations and round their outputs to bf16: on this tiny
                        // random model, whose logits have near-ties, greedy paths may part after a while; the first 12 agree
                        int first = 0;
                        while (first < got.length && got[first] == want[first]) first++;
                        System.out.printf("  kernel decoding agrees for the first %d of %d tokens%n", first, got.length);
                        assertArrayEquals(java.util.Arrays.copyOf(want, 12), java.util.Arrays.copyOf(got, 12), spec.describe() + " " + p);
                    } else {
                        assertArrayEquals(want, got, spec.describe() + " " + p);
                    }
                    int[] ids = q.encode(Prompts.runLlava(Template.VICUNA_V1, "What shape is on top?", true), true);
                    Tensor px = q.pixels(TestData.tinyData().resolve("images/img0.png"));
                    float[] lq = q.generator().firstLogits(px, ids), ld = d.generator().firstLogits(px, ids);
                    double err = Tensors.relativeError(Tensors.floats(lq, lq.length), Tensors.floats(ld, ld.length));
                    // the prompt (prefill, many rows) runs on the dequantized layer, never the int8 kernel: same values;
                    // int4 weights always run their kernel (bf16 activations)
                    assertTrue(err < (p == Precision.FP32 && spec.type() != QuantType.INT4 ? 1e-6 : 1e-2), spec.describe() + " " + p + ": first logits rel err " + err);
                }
                long calls = io.llava4j.nn.quant.QuantizedLinear.int8KernelCalls() - kernelCalls;
                if (spec.type() == QuantType.INT8 && (p == Precision.BF16 || io.llava4j.nn.quant.RowwiseInt8.javaProductAvailable()))
                    assertTrue(calls >= 14L * 23, "int8 decoding steps multiplied the codes in place: " + calls);
                else assertEquals(0, calls);
            }
        }
    }

    /** The int8 kernel (bf16 GEMMs) computes bf16(x)·(q·bf16(m/127))ᵀ with fp32 sums, rounded to bf16: checked against that product. */
    @Test
    void int8KernelIsTheProductWithTheDequantizedRows() {
        System.setProperty("llava4j.bf16_gemm", "1");
        try {
            int8Kernel();
        } finally {
            System.clearProperty("llava4j.bf16_gemm");
        }
    }

    private static void int8Kernel() {
        java.util.Random r = new java.util.Random(5);
        float[] w = new float[96 * 160], x = new float[3 * 160];
        for (int i = 0; i < w.length; i++) w[i] = (float) r.nextGaussian();
        for (int i = 0; i < x.length; i++) x[i] = (float) r.nextGaussian();
        try (org.bytedeco.javacpp.PointerScope s = new org.bytedeco.javacpp.PointerScope();
             org.bytedeco.pytorch.NoGradGuard g = new org.bytedeco.pytorch.NoGradGuard()) {
            io.llava4j.nn.quant.RowwiseInt8 q = io.llava4j.nn.quant.RowwiseInt8.quantize(Tensors.floats(w, 96, 160));
            var lin = new io.llava4j.nn.quant.QuantizedLinear(q, "t", new io.llava4j.nn.quant.DequantBuffer());
            long before = io.llava4j.nn.quant.QuantizedLinear.int8KernelCalls();
            Tensor y;
            try (var ac = io.llava4j.nn.Autocast.enable(Precision.BF16)) {
                y = lin.forward(Tensors.floats(x, 1, 3, 160), null); // [1, 3, 96] fp32
            }
            assertEquals(before + 1, io.llava4j.nn.quant.QuantizedLinear.int8KernelCalls());
            var bf = org.bytedeco.pytorch.global.torch.ScalarType.BFloat16;
            var f32 = org.bytedeco.pytorch.global.torch.ScalarType.Float;
            Tensor scales = q.rowAbsmax().mul(new org.bytedeco.pytorch.Scalar(7.874015718698502e-3)).to(bf).to(f32);
            Tensor deq = q.codes().to(f32).mul(scales.unsqueeze(1)); // exact in fp32
            Tensor want = Tensors.floats(x, 3, 160).to(bf).to(f32).matmul(deq.t()).to(bf).to(f32);
            double maxDiff = y.view(3, 96).sub(want).abs().max().item_double();
            double maxVal = want.abs().max().item_double();
            assertTrue(maxDiff <= maxVal * Math.pow(2, -8), "int8 kernel vs product with the dequantized rows: " + maxDiff);
            // and the dequantized-weight path (a graph, or many rows) gives the fp32 product with bitsandbytes' values
            Tensor many = lin.forward(Tensors.floats(new float[20 * 160], 20, 160), null);
            assertEquals(before + 1, io.llava4j.nn.quant.QuantizedLinear.int8KernelCalls(), "20 rows: no kernel");
            assertEquals(0.0, many.abs().max().item_double());
        }
    }
}
