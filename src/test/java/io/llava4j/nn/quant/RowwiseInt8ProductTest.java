package io.llava4j.nn.quant;

import io.llava4j.engine.Engine;
import io.llava4j.engine.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Java's int8 product ({@link RowwiseInt8#multiply}: the codes read in place) against the exact product with the
 * dequantized rows, computed here in double: in fp32 each output within fp32 summation error of Σ x·q·(m/127); in bf16
 * (libtorch's int8 kernel's arithmetic) each output within one bf16 step of bf16(Σ bf16(x)·q·bf16(m/127)). Every row
 * count the decoding paths use (1–8: one input row, and up to four at a time), and widths that are not a multiple of
 * the vector (the tail loops).
 */
class RowwiseInt8ProductTest {

    @Test
    void theProductEqualsTheOneWithTheDequantizedRows() {
        Engine.init();
        Assumptions.assumeTrue(RowwiseInt8.javaProductAvailable(), "JVM without the jdk.incubator.vector module");
        java.util.Random r = new java.util.Random(11);
        for (int[] shape : new int[][]{{96, 160}, {37, 83}, {130, 7}}) {
            int out = shape[0], in = shape[1];
            float[] w = new float[out * in];
            for (int i = 0; i < w.length; i++) w[i] = (float) r.nextGaussian();
            try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
                RowwiseInt8 q = RowwiseInt8.quantize(Tensors.floats(w, out, in));
                float[] codes = Tensors.toFloats(q.codes().to(org.bytedeco.pytorch.global.torch.ScalarType.Float));
                float[] m = Tensors.toFloats(q.rowAbsmax());
                for (int rows = 1; rows <= 8; rows++) {
                    float[] x = new float[rows * in];
                    for (int i = 0; i < x.length; i++) x[i] = (float) r.nextGaussian();
                    for (boolean bf16 : new boolean[]{false, true}) {
                        float[] y = new float[rows * out];
                        float[] before = x.clone();
                        q.multiply(x, rows, y, bf16);
                        assertArrayEquals(before, x, "the input is not changed");
                        for (int row = 0; row < rows; row++)
                            for (int o = 0; o < out; o++) {
                                float scale = m[o] * (float) RowwiseInt8.INV127;
                                if (bf16) scale = bf16(scale);
                                double exact = 0, magnitude = 0;
                                for (int k = 0; k < in; k++) {
                                    double xv = bf16 ? bf16(x[row * in + k]) : x[row * in + k];
                                    exact += xv * codes[o * in + k];
                                    magnitude += Math.abs(xv * codes[o * in + k]);
                                }
                                exact *= scale;
                                magnitude *= scale;
                                float got = y[row * out + o];
                                String where = out + "x" + in + ", " + rows + " rows, " + (bf16 ? "bf16" : "fp32") + ", output [" + row + ", " + o + "]";
                                if (bf16) {
                                    assertEquals(bf16(got), got, where + ": a bf16 value");
                                    assertTrue(Math.abs(got - exact) <= Math.ulp((float) exact) * 65536 + 1e-6 * magnitude, // one bf16 step
                                            where + ": " + got + " against " + exact);
                                } else {
                                    assertEquals(exact, got, 1e-6 * magnitude + 1e-30, where);
                                }
                            }
                    }
                }
            }
        }
    }

    /** The nearest bf16, ties to even. */
    private static float bf16(float v) {
        int b = Float.floatToRawIntBits(v);
        b += 0x7fff + ((b >>> 16) & 1);
        return Float.intBitsToFloat(b & 0xffff0000);
    }
}
