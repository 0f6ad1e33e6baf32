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
 * The row-major matrix's vector loops give libtorch's product: fp32 to rounding, bf16 as the bf16 GEMM rounds (input
 * and output in bf16, fp32 sums), for every row count on both paths, widths that are not a multiple of the vector
 * length, and matrices read through several buffers.
 */
class StreamedWeightTest {
    private static final long[][] SHAPES = {{64, 48}, {37, 50}, {130, 33}, {16, 256}};
    private static final int[] ROWS = {1, 2, 3, 4, 5, 8, 9, 20};

    @Test
    void fp32ProductIsLibtorchsForEveryRowCount() {
        Engine.init();
        Assumptions.assumeTrue(StreamedWeight.available(), "JVM without the jdk.incubator.vector module");
        torch.manual_seed(21);
        for (long[] s : SHAPES) {
            Tensor w = torch.randn(s[0], s[1]), b = torch.randn(s[0]);
            StreamedWeight m = StreamedWeight.of(w, ScalarType.Float);
            for (int rows : ROWS) for (boolean biased : new boolean[]{false, true}) {
                Tensor x = torch.randn(rows, 1, s[1]);
                Tensor ref = biased ? torch.linear(x, w, new TensorOptional(b)) : torch.linear(x, w);
                Tensor y = m.linear(x, biased ? b : null);
                String what = java.util.Arrays.toString(s) + ", " + rows + " rows" + (biased ? ", bias" : "");
                assertArrayEquals(Tensors.shape(ref), Tensors.shape(y), what);
                assertEquals(ScalarType.Float, y.scalar_type().intern(), what);
                double err = Tensors.relativeError(y, ref);
                assertTrue(err < 1e-6, what + ": relative error " + err);
            }
        }
    }

    @Test
    void bf16ProductRoundsAsTheBf16Gemm() {
        Engine.init();
        Assumptions.assumeTrue(StreamedWeight.available(), "JVM without the jdk.incubator.vector module");
        torch.manual_seed(22);
        for (long[] s : SHAPES) {
            Tensor w = torch.randn(s[0], s[1]), b = torch.randn(s[0]);
            StreamedWeight m = StreamedWeight.of(w, ScalarType.BFloat16);
            float[] wv = Tensors.toFloats(w.to(ScalarType.BFloat16).to(ScalarType.Float)), bv = Tensors.toFloats(b.to(ScalarType.BFloat16).to(ScalarType.Float));
            for (int rows : new int[]{1, 3, 5}) {
                Tensor x = torch.randn(rows, s[1]);
                float[] xv = Tensors.toFloats(x.to(ScalarType.BFloat16).to(ScalarType.Float));
                float[] y = Tensors.toFloats(m.linear(x, b));
                for (int r = 0; r < rows; r++)
                    for (int o = 0; o < s[0]; o++) {
                        double exact = bv[o];
                        for (int k = 0; k < s[1]; k++) exact += (double) wv[o * (int) s[1] + k] * xv[r * (int) s[1] + k];
                        float got = y[r * (int) s[0] + o];
                        assertEquals(0, Float.floatToRawIntBits(got) & 0xffff, "a bf16 value, row " + r + " output " + o);
                        double ulp = Math.ulp(Float.intBitsToFloat(Float.floatToRawIntBits((float) exact) & 0xffff0000)) * 65536;
                        assertEquals(exact, got, ulp, java.util.Arrays.toString(s) + " row " + r + " output " + o);
                    }
                Tensor lib = torch.linear(x.to(ScalarType.BFloat16), w.to(ScalarType.BFloat16), new TensorOptional(b.to(ScalarType.BFloat16)));
                assertTrue(Tensors.relativeError(m.linear(x, b), lib.to(ScalarType.Float)) < 1e-2);
            }
            Tensor xb = torch.randn(2, s[1]).to(ScalarType.BFloat16);
            assertEquals(ScalarType.BFloat16, m.linear(xb, null).scalar_type().intern(), "bf16 in, bf16 out");
        }
    }

    @Test
    void aMatrixReadThroughSeveralBuffersGivesTheSameValues() {
        Engine.init();
        Assumptions.assumeTrue(StreamedWeight.available(), "JVM without the jdk.incubator.vector module");
        torch.manual_seed(23);
        for (ScalarType t : new ScalarType[]{ScalarType.Float, ScalarType.BFloat16}) {
            Tensor w = torch.randn(37, 50);
            long rowBytes = 50L * (t == ScalarType.Float ? 4 : 2);
            StreamedWeight whole = StreamedWeight.of(w, t), chunked = StreamedWeight.of(w, t, 3 * rowBytes);
            for (int rows : new int[]{1, 4, 6}) {
                Tensor x = torch.randn(rows, 50);
                Tensor a = whole.linear(x, null), c = chunked.linear(x, null);
                assertTrue(torch.equal(a, c), t + ", " + rows + " rows: " + java.util.Arrays.toString(Tensors.toFloats(a.sub(c))) + " vs ref err " + Tensors.relativeError(c, torch.linear(x, w.to(t).to(ScalarType.Float))));
            }
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
