package io.llava4j.bench;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * The GEMM rate this process gets from libtorch on this machine: the best of several {@code matmul}s of one
 * precision (the denominator of a benchmark's "fraction of peak"). The size is chosen from a small trial so that a
 * slow type (bf16 on a CPU without AVX-512 BF16 runs at well under 1 GFLOP/s) still finishes in about a second.
 */
public final class GemmPeak {
    private GemmPeak() {}

    /** Best GFLOP/s of an M×K by K×N product in {@code type}, M = 512, K = N = 2048 (K = N = 512, M = 128 at the least for a slow type). */
    public static double gflops(ScalarType type, double budgetSeconds) {
        double trial = rate(type, 256, 512, 512, 1); // GFLOP/s of a 134 MFLOP product
        long k = 2048, m = 512;
        while (k > 512 && 2.0 * m * k * k / (trial * 1e9) > budgetSeconds / 2) { // a product should take <= budget/2
            k /= 2;
            m = Math.max(128, m / 2);
        }
        double perProduct = 2.0 * m * k * k / (Math.max(trial, 1e-3) * 1e9);
        int reps = (int) Math.max(2, Math.min(8, budgetSeconds / Math.max(perProduct, 1e-6)));
        return Math.max(trial, rate(type, m, k, k, reps));
    }

    private static double rate(ScalarType type, long m, long k, long n, int reps) {
        try (PointerScope s = new PointerScope()) {
            Tensor a = torch.randn(m, k).to(type), b = torch.randn(k, n).to(type);
            a.matmul(b); // warm-up
            double best = Double.MAX_VALUE;
            for (int i = 0; i < reps; i++) {
                long t0 = System.nanoTime();
                a.matmul(b);
                best = Math.min(best, (System.nanoTime() - t0) / 1e9);
            }
            return 2.0 * m * k * n / best / 1e9;
        }
    }
}
