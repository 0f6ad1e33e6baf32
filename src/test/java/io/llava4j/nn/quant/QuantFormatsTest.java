package io.llava4j.nn.quant;

import io.llava4j.engine.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * bitsandbytes' NF4 / FP4 block formats and LLM.int8's row-wise int8 storage: the code books against their definitions,
 * the block and nibble layout against hand-computed bytes, round trips and their error bounds.
 */
class QuantFormatsTest {

    /** NF4 as create_normal_map(offset=0.9677083, use_extra_value=True) defines it, from an independent normal quantile. */
    @Test
    void nf4CodeBookIsCreateNormalMap() {
        double offset = 0.9677083;
        double[] v = new double[16];
        int k = 0;
        for (int i = 0; i < 8; i++) v[k++] = probit(linspace(offset, 0.5, 9)[i]);   // 8 positive
        v[k++] = 0;
        for (int i = 0; i < 7; i++) v[k++] = -probit(linspace(offset, 0.5, 8)[i]);  // 7 negative
        Arrays.sort(v);
        double max = v[15];
        for (int i = 0; i < 16; i++) assertEquals(v[i] / max, Codebooks.NF4[i], 2e-7, "NF4 code " + i);
        assertEquals(-1.0f, Codebooks.NF4[0]);
        assertEquals(0.0f, Codebooks.NF4[7]);
        assertEquals(0.07958029955625534f, Codebooks.NF4[8]);
        assertEquals(1.0f, Codebooks.NF4[15]);
    }

    @Test
    void fp4AndDynamicCodeBooks() {
        // sign bit 3; 0b0011 = 12/12, 0b0010 = 8/12, 0b0001 = 0.0625/12, 0b1110 = -2/12
        assertEquals(1.0f, Codebooks.FP4[0b0011]);
        assertEquals(8f / 12, Codebooks.FP4[0b0010]);
        assertEquals(0.0625f / 12, Codebooks.FP4[0b0001]);
        assertEquals(-2f / 12, Codebooks.FP4[0b1110]);
        float[] d = Codebooks.dynamic();
        assertEquals(256, d.length);
        for (int i = 1; i < 256; i++) assertTrue(d[i] > d[i - 1], "sorted, distinct at " + i);
        assertEquals(1.0f, d[255]);
        assertEquals(-0.99296875f, d[0], 1e-7);  // -(0.98593750 + 1) / 2
        assertEquals(0.0f, d[127]);              // 127 negative values, then 0
        assertEquals(0.55e-6f, d[128], 1e-12);   // the smallest positive: midpoint of (0.1, 1) · 1e-6
    }

    /** Two blocks of 64, hand-coded: block 0 holds exact code values × 2, block 1 values between codes × 0.5. */
    @Test
    void nf4BlockAndNibbleLayout() {
        float[] w = new float[128];
        int[] codes0 = new int[64];
        for (int i = 0; i < 64; i++) {
            codes0[i] = (i * 7 + 3) % 16; // every code, code 15 (= 1.0) among them: absmax 2
            w[i] = 2f * Codebooks.NF4[codes0[i]];
        }
        // block 1, absmax 0.5 (w[64] = 0.5 → code 15); 0.5·0.12: 0.12 lies below the midpoint 0.1203 of codes 8 and 9
        w[64] = 0.5f;
        w[65] = 0.5f * 0.12f;   // → 8
        w[66] = 0.5f * 0.125f;  // → 9 (above 0.1203)
        w[67] = -0.5f * 0.95f;  // → 0 (-1; midpoint with -0.696 is -0.848)
        w[68] = -0.5f * 0.02f;  // → 7 (0; midpoint with -0.091 is -0.0455)
        w[69] = 0.5f * 0.03f;   // → 7 (0; midpoint with 0.0796 is 0.0398)
        // the rest of block 1 is 0 → code 7
        try (PointerScope s = new PointerScope()) {
            Blockwise4Bit q = Blockwise4Bit.quantize(Tensors.floats(w, 2, 64), QuantType.NF4, false);
            long[] packed = Tensors.toLongs(q.packed().to(ScalarType.Long));
            assertEquals(64, packed.length);
            for (int j = 0; j < 32; j++) assertEquals((codes0[2 * j] << 4) | codes0[2 * j + 1], packed[j], "byte " + j);
            assertEquals(0xF8, packed[32]); // codes 15 (high nibble: w[64]) and 8 (low: w[65])
            assertEquals(0x90, packed[33]); // 9, 0
            assertEquals(0x77, packed[34]); // 7, 7
            for (int j = 35; j < 64; j++) assertEquals(0x77, packed[j]);
            assertArrayEquals(new float[]{2f, 0.5f}, Tensors.toFloats(q.absmax()));
            float[] back = Tensors.toFloats(q.dequantize(ScalarType.Float));
            for (int i = 0; i < 64; i++) assertEquals(w[i], back[i], "exact code values come back exactly: " + i);
            assertEquals(0.5f * Codebooks.NF4[8], back[65]);
            assertEquals(0.5f * Codebooks.NF4[9], back[66]);
            assertEquals(-0.5f, back[67]);
            assertEquals(0f, back[68]);
        }
    }

    @Test
    void fp4SignAndMagnitudeCodes() {
        float[] w = new float[64];
        w[0] = 3f;            // absmax 3 → 0b0011
        w[1] = -2f;           // -2/3 → 0b1010
        w[2] = 0.75f;         // 0.25 → 0b0111
        w[3] = -0.5f;         // -1/6 → 0b1110
        w[4] = 1.2f;          // 0.4: between 1/3 (0b100) and 1/2 (0b101), midpoint 5/12 = 0.4167 → 0b0100
        w[5] = -0.003f;       // -0.001: nearest magnitude 0, negative → 0b1000
        try (PointerScope s = new PointerScope()) {
            Blockwise4Bit q = Blockwise4Bit.quantize(Tensors.floats(w, 1, 64), QuantType.FP4, false);
            long[] p = Tensors.toLongs(q.packed().to(ScalarType.Long));
            assertEquals(0x3A, p[0]);
            assertEquals(0x7E, p[1]);
            assertEquals(0x48, p[2]);
            assertEquals(0x00, p[3]);
            float[] back = Tensors.toFloats(q.dequantize(ScalarType.Float));
            assertEquals(-2f, back[1], 1e-6);
            assertEquals(1f, back[4], 1e-6);
        }
    }

    /** A partial last block is scaled by its own maximum; an odd count leaves the last low nibble at code(0). */
    @Test
    void partialBlockAndOddCount() {
        float[] w = new float[67];
        for (int i = 0; i < 64; i++) w[i] = 1f;
        w[64] = 0.25f;
        w[65] = -0.25f;
        w[66] = 0.125f;
        try (PointerScope s = new PointerScope()) {
            Blockwise4Bit q = Blockwise4Bit.quantize(Tensors.floats(w, 67), QuantType.NF4, false);
            assertEquals(34, q.packed().numel());
            assertArrayEquals(new float[]{1f, 0.25f}, Tensors.toFloats(q.absmax()));
            long[] p = Tensors.toLongs(q.packed().to(ScalarType.Long));
            assertEquals(0xF0, p[32]); // 1.0 → 15, -1.0 → 0
            assertEquals(0xC7, p[33]); // 0.5: nearest 0.5626 → 12; padding → 7
        }
    }

    @Test
    void roundTripsStayWithinHalfTheLargestCodeGap() {
        Random r = new Random(7);
        float[] w = new float[96 * 80];
        for (int i = 0; i < w.length; i++) w[i] = (float) (r.nextGaussian() * 0.02 * (1 + (i / 80) % 5));
        w[123] = 0.9f; // an outlier sets its block's scale
        try (PointerScope s = new PointerScope()) {
            Tensor t = Tensors.floats(w, 96, 80);
            for (QuantType type : new QuantType[]{QuantType.NF4, QuantType.FP4}) {
                for (boolean dq : new boolean[]{false, true}) {
                    Blockwise4Bit q = Blockwise4Bit.quantize(t, type, dq);
                    float[] back = Tensors.toFloats(q.dequantize(ScalarType.Float));
                    float[] absmax = Tensors.toFloats(q.absmax());
                    double gap = type == QuantType.NF4 ? (-0.6961928009986877 + 1) / 2 : (1 - 8.0 / 12) / 2; // the widest gaps
                    for (int i = 0; i < w.length; i++) {
                        double m = Math.abs(absmax[i / 64]);
                        double bound = dq ? m * gap + Math.abs(absmax[i / 64] - trueAbsmax(w, i / 64)) + 1e-7 : m * gap * 1.000001;
                        assertTrue(Math.abs(w[i] - back[i]) <= bound, type + " dq=" + dq + " value " + i + ": " + w[i] + " → " + back[i]);
                    }
                    // the dequantized weights quantize to themselves
                    Blockwise4Bit again = Blockwise4Bit.quantize(q.dequantize(ScalarType.Float), type, false);
                    assertArrayEquals(back, Tensors.toFloats(again.dequantize(ScalarType.Float)), 0f, type + " idempotent");
                    assertEquals(q.packed().numel(), 96 * 80 / 2);
                }
            }
        }
    }

    /** Double quantization: absmax − mean coded in blocks of 256 with the dynamic map; small relative error. */
    @Test
    void doubleQuantizedScales() {
        Random r = new Random(3);
        float[] a = new float[600];
        for (int i = 0; i < a.length; i++) a[i] = 0.01f + r.nextFloat() * 0.05f;
        try (PointerScope s = new PointerScope()) {
            DynamicBlockwise8Bit q = DynamicBlockwise8Bit.quantize(Tensors.floats(a, a.length));
            double mean = 0;
            for (float v : a) mean += v;
            assertEquals(mean / a.length, q.offset(), 1e-6);
            assertEquals(3, q.blockAbsmax().numel());
            float[] back = Tensors.toFloats(q.dequantize());
            float[] m = Tensors.toFloats(q.blockAbsmax());
            for (int i = 0; i < a.length; i++) // the dynamic map's codes near ±1 are 1/64 apart at most
                assertTrue(Math.abs(a[i] - back[i]) <= m[i / 256] * 0.008 + 1e-7, i + ": " + a[i] + " → " + back[i]);
            assertEquals(600 + 12 + 4, q.bytes());
        }
    }

    /** Row [1, -2, 0.5, 4]: absmax 4, codes round(x·127/4) = 32, -64 (−63.5 to even), 16, 127. */
    @Test
    void int8RowsHandComputed() {
        try (PointerScope s = new PointerScope()) {
            RowwiseInt8 q = RowwiseInt8.quantize(Tensors.floats(new float[]{1f, -2f, 0.5f, 4f, 0f, 0f, 0f, 0f}, 2, 4));
            assertArrayEquals(new long[]{32, -64, 16, 127, 0, 0, 0, 0}, Tensors.toLongs(q.codes().to(ScalarType.Long)));
            assertArrayEquals(new float[]{4f, 0f}, Tensors.toFloats(q.rowAbsmax()));
            float[] back = Tensors.toFloats(q.dequantize(ScalarType.Float));
            assertEquals((float) (32 * 4f * 7.874015718698502e-3), back[0], 1e-7);
            assertEquals(4f, back[3], 1e-6);
            assertEquals(0f, back[5]); // a zero row stays zero
            assertEquals(8 + 8, q.bytes());
        }
    }

    @Test
    void int8RoundTripBound() {
        Random r = new Random(11);
        float[] w = new float[64 * 48];
        for (int i = 0; i < w.length; i++) w[i] = (float) r.nextGaussian();
        try (PointerScope s = new PointerScope()) {
            RowwiseInt8 q = RowwiseInt8.quantize(Tensors.floats(w, 64, 48));
            float[] back = Tensors.toFloats(q.dequantize(ScalarType.Float));
            float[] m = Tensors.toFloats(q.rowAbsmax());
            for (int i = 0; i < w.length; i++)
                assertTrue(Math.abs(w[i] - back[i]) <= m[i / 48] / 127 / 2 * 1.0001, i + ": " + w[i] + " → " + back[i]);
            // dequantizing into a bf16 buffer rounds the same fp32 values
            Tensor bf = q.dequantize(ScalarType.BFloat16);
            assertArrayEquals(Tensors.toFloats(q.dequantize(ScalarType.Float).to(ScalarType.BFloat16)), Tensors.toFloats(bf), 0f);
        }
    }

    private static double trueAbsmax(float[] w, int block) {
        double m = 0;
        for (int i = block * 64; i < Math.min(w.length, block * 64 + 64); i++) m = Math.max(m, Math.abs(w[i]));
        return m;
    }

    /** torch.linspace(a, b, n) in double. */
    private static double[] linspace(double a, double b, int n) {
        double[] out = new double[n];
        for (int i = 0; i < n; i++) out[i] = a + (b - a) * i / (n - 1);
        return out;
    }

    /** The standard normal quantile (Acklam's rational approximation, relative error below 1.2e-9). */
    private static double probit(double p) {
        double[] a = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00};
        double[] b = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01};
        double[] c = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00};
        double[] d = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00};
        double lo = 0.02425, hi = 1 - lo;
        if (p < lo) {
            double q = Math.sqrt(-2 * Math.log(p));
            return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
        }
        if (p > hi) {
            double q = Math.sqrt(-2 * Math.log(1 - p));
            return -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
        }
        double q = p - 0.5, r = q * q;
        return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    }
}
