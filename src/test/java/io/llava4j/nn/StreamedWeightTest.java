package io.llava4j.nn;

import io.llava4j.engine.Engine;
import io.llava4j.engine.Tensors;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The row-major bf16 matrix gives libtorch's bf16 product as the bf16 GEMM rounds it (input and output in bf16, fp32
 * sums: each output within one bf16 step of the exact sum), for every row count on both paths (vector loops up to 8
 * rows, libtorch's GEMM above), widths that are not a multiple of the vector length, and matrices read through several
 * buffers.
 */
class StreamedWeightTest {
    private static final long[][] SHAPES = {{64, 48}, {37, 50}, {130, 33}, {16, 256}};
    private static final int[] ROWS = {1, 2, 3, 4, 5, 8, 9, 20};

    @Test
    void productRoundsAsTheBf16GemmForEveryRowCount() {
        Engine.init();
        Assumptions.assumeTrue(StreamedWeight.available(), "JVM without the jdk.incubator.vector module");
        torch.manual_seed(22);
        for (long[] s : SHAPES) {
            int out = (int) s[0], in = (int) s[1];
            Tensor w = torch.randn(out, in), b = torch.randn(out);
            StreamedWeight m = StreamedWeight.of(w);
            float[] wv = Tensors.toFloats(w.to(ScalarType.BFloat16).to(ScalarType.Float)), bv = Tensors.toFloats(b.to(ScalarType.BFloat16).to(ScalarType.Float));
            for (int rows : ROWS) for (boolean biased : new boolean[]{false, true}) {
                String what = java.util.Arrays.toString(s) + ", " + rows + " rows" + (biased ? ", bias" : "");
                Tensor x = torch.randn(rows, 1, in);
                float[] xv = Tensors.toFloats(x.to(ScalarType.BFloat16).to(ScalarType.Float));
                Tensor yt = m.linear(x, biased ? b : null);
                assertArrayEquals(new long[]{rows, 1, out}, Tensors.shape(yt), what);
                assertEquals(ScalarType.Float, yt.scalar_type().intern(), "fp32 in, fp32 out: " + what);
                float[] y = Tensors.toFloats(yt);
                for (int r = 0; r < rows; r++)
                    for (int o = 0; o < out; o++) {
                        double exact = biased ? bv[o] : 0;
                        for (int k = 0; k < in; k++) exact += (double) wv[o * in + k] * xv[r * in + k];
                        float got = y[r * out + o];
                        assertEquals(0, Float.floatToRawIntBits(got) & 0xffff, "a bf16 value, row " + r + " output " + o + ": " + what);
                        double ulp = Math.ulp(Float.intBitsToFloat(Float.floatToRawIntBits((float) exact) & 0xffff0000)) * 65536;
                        assertEquals(exact, got, ulp, what + ", row " + r + " output " + o);
                    }
                Tensor lib = biased ? torch.linear(x.to(ScalarType.BFloat16), w.to(ScalarType.BFloat16), new TensorOptional(b.to(ScalarType.BFloat16)))
                        : torch.linear(x.to(ScalarType.BFloat16), w.to(ScalarType.BFloat16));
                assertTrue(Tensors.relativeError(yt, lib.to(ScalarType.Float)) < 1e-2, what);
            }
            Tensor xb = torch.randn(2, in).to(ScalarType.BFloat16);
            assertEquals(ScalarType.BFloat16, m.linear(xb, null).scalar_type().intern(), "bf16 in, bf16 out");
        }
    }

    /**
     * bf16 weights in fp32 arithmetic (bf16 storage on a CPU without bf16 arithmetic): each output the exact sum of the
     * bf16 weights times the unrounded input, up to fp32 summation error, and not rounded to bf16; vector loops and the
     * up-cast GEMM alike.
     */
    @Test
    void upcastingMultipliesBf16WeightsInFp32() {
        Engine.init();
        Assumptions.assumeTrue(StreamedWeight.available(), "JVM without the jdk.incubator.vector module");
        torch.manual_seed(25);
        for (long[] s : SHAPES) {
            int out = (int) s[0], in = (int) s[1];
            Tensor w = torch.randn(out, in).to(ScalarType.BFloat16), b = torch.randn(out);
            StreamedWeight m = StreamedWeight.upcasting(w);
            float[] wv = Tensors.toFloats(w), bv = Tensors.toFloats(b);
            for (int rows : ROWS) {
                String what = java.util.Arrays.toString(s) + ", upcasting, " + rows + " rows";
                Tensor x = torch.randn(rows, in);
                float[] xv = Tensors.toFloats(x);
                Tensor yt = m.linear(x, b);
                assertEquals(ScalarType.Float, yt.scalar_type().intern(), what);
                float[] y = Tensors.toFloats(yt);
                boolean unrounded = false;
                for (int r = 0; r < rows; r++)
                    for (int o = 0; o < out; o++) {
                        double exact = bv[o], magnitude = Math.abs(exact);
                        for (int k = 0; k < in; k++) {
                            exact += (double) wv[o * in + k] * xv[r * in + k];
                            magnitude += Math.abs((double) wv[o * in + k] * xv[r * in + k]);
                        }
                        assertEquals(exact, y[r * out + o], 1e-6 * magnitude, what + ", row " + r + " output " + o);
                        unrounded |= (Float.floatToRawIntBits(y[r * out + o]) & 0xffff) != 0;
                    }
                assertTrue(unrounded, what + ": outputs kept in fp32, not rounded to bf16");
                if (rows == 1) {
                    float[] step = new float[out];
                    m.multiply(xv, step, m.biasValues(b));
                    assertArrayEquals(y, step, 1e-5f * in, what + ": multiply on Java arrays, the input not rounded");
                }
            }
        }
    }

    @Test
    void aMatrixReadThroughSeveralBuffersGivesTheSameValues() {
        Engine.init();
        Assumptions.assumeTrue(StreamedWeight.available(), "JVM without the jdk.incubator.vector module");
        torch.manual_seed(23);
        Tensor w = torch.randn(37, 50);
        StreamedWeight whole = StreamedWeight.of(w), chunked = StreamedWeight.of(w, 3 * 50 * 2, true); // 3-row buffers
        for (int rows : new int[]{1, 4, 6}) {
            Tensor x = torch.randn(rows, 50);
            Tensor a = whole.linear(x, null), c = chunked.linear(x, null);
            assertTrue(torch.equal(a, c), rows + " rows: " + java.util.Arrays.toString(Tensors.toFloats(a.sub(c))));
        }
    }

    @Test
    void roundingToBf16IsTiesToEven() {
        float[] v = {1f + 0x1p-8f, 1f + 0x3p-8f, 1f + 0x1p-7f + 0x1p-9f, Float.NaN, Float.POSITIVE_INFINITY, -2.5f};
        StreamedWeight.roundToBf16(v);
        assertEquals(1f, v[0], "halfway rounds to the even 1.0");
        assertEquals(1f + 0x1p-6f, v[1], "halfway rounds to the even neighbour above");
        assertEquals(1f + 0x1p-7f, v[2], "below halfway rounds down");
        assertTrue(Float.isNaN(v[3]));
        assertEquals(Float.POSITIVE_INFINITY, v[4]);
        assertEquals(-2.5f, v[5]);
    }
}
