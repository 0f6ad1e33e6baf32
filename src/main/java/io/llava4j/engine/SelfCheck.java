package io.llava4j.engine;

import org.bytedeco.pytorch.DoubleOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;

import java.util.Arrays;
import java.util.Random;

/**
 * Checks that libtorch loads and computes: {@link Engine#init()}, then a matmul and a causal scaled-dot-product
 * attention on small random inputs, each compared with a plain-Java computation. Prints {@code OK <threads>} and exits 0,
 * or prints what differs and exits 1. Run it with an empty {@code -Dorg.bytedeco.javacpp.cachedir} to check a first
 * start.
 */
public final class SelfCheck {
    private static final double TOL = 1e-4;

    private SelfCheck() {}

    public static void main(String[] args) {
        Engine.init();
        String problem = check();
        if (problem != null) {
            System.out.println("FAILED " + problem);
            System.exit(1);
        }
        System.out.println("OK " + Engine.threads());
    }

    /** Null when every computation matches, otherwise what did not. */
    static String check() {
        Random r = new Random(1234);

        // matmul [3, 5] x [5, 4]
        int m = 3, k = 5, n = 4;
        float[] a = random(r, m * k), b = random(r, k * n);
        float[] got = Tensors.toFloats(torch.matmul(Tensors.floats(a, m, k), Tensors.floats(b, k, n)));
        double[] want = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                for (int p = 0; p < k; p++) want[i * n + j] += (double) a[i * k + p] * b[p * n + j];
        String d = differs("matmul", got, want);
        if (d != null) return d;

        // causal attention [1 batch, 2 heads, 4 tokens, 8 dims]
        int h = 2, t = 4, e = 8;
        float[] q = random(r, h * t * e), kk = random(r, h * t * e), v = random(r, h * t * e);
        Tensor out = torch.scaled_dot_product_attention(Tensors.floats(q, 1, h, t, e), Tensors.floats(kk, 1, h, t, e),
                Tensors.floats(v, 1, h, t, e), new TensorOptional(), 0.0, true, new DoubleOptional(), false);
        got = Tensors.toFloats(out);
        want = new double[h * t * e];
        double scale = 1.0 / Math.sqrt(e);
        for (int hh = 0; hh < h; hh++)
            for (int i = 0; i < t; i++) {
                double[] s = new double[i + 1];
                double max = Double.NEGATIVE_INFINITY, sum = 0;
                for (int j = 0; j <= i; j++) {
                    for (int p = 0; p < e; p++) s[j] += (double) q[(hh * t + i) * e + p] * kk[(hh * t + j) * e + p];
                    s[j] *= scale;
                    max = Math.max(max, s[j]);
                }
                for (int j = 0; j <= i; j++) sum += s[j] = Math.exp(s[j] - max);
                for (int j = 0; j <= i; j++)
                    for (int p = 0; p < e; p++) want[(hh * t + i) * e + p] += s[j] / sum * v[(hh * t + j) * e + p];
            }
        return differs("scaled_dot_product_attention", got, want);
    }

    private static float[] random(Random r, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) r.nextGaussian();
        return x;
    }

    private static String differs(String what, float[] got, double[] want) {
        if (got.length != want.length) return what + ": " + got.length + " values, expected " + want.length;
        for (int i = 0; i < got.length; i++)
            if (!(Math.abs(got[i] - want[i]) <= TOL * (1 + Math.abs(want[i]))))
                return what + ": element " + i + " is " + got[i] + ", expected " + want[i] + " (got " + Arrays.toString(got) + ")";
        return null;
    }
}
