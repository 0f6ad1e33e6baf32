package io.llava4j.bench;

import io.llava4j.config.VisionConfig;
import io.llava4j.engine.BlasThreads;
import io.llava4j.engine.Engine;
import io.llava4j.model.SiglipVisionTower;
import io.llava4j.nn.Activation;
import io.llava4j.nn.Autocast;
import io.llava4j.nn.LayerNorm;
import io.llava4j.nn.Precision;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.DoubleOptional;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.util.Arrays;
import java.util.function.Supplier;
import java.util.function.UnaryOperator;

/**
 * Where one SigLIP-so400m layer's time goes: {@code SiglipLayerTime [REPS] [zeros|random] [THREADS [BLAS_THREADS]]} times each part of an encoder layer
 * at real shape (one 384-px tile: 729 tokens, width 1152, MLP 4304, 16 heads of 72) and the patch-embedding conv, with
 * the calls the model makes ({@link Autocast#linear}, {@link Autocast#patchConv}, libtorch's fused attention as
 * {@code model.Attn} calls it,
 * {@link LayerNorm}, {@link Activation}), no gradient, in fp32 and with bf16-stored matrices under bf16 autocast (as
 * {@code --bf16 True} loads and runs the frozen tower). Each part: the median of REPS calls after one warm-up, its
 * GFLOP/s and the fraction of this process's GEMM peak ({@link GemmPeak}) in the same type. Then one whole layer
 * (the tower cut to one layer) and the embedding stage. {@code zeros}: all weights and pixels zero, as the sparse
 * real-size checkpoint's (checks no op takes a data-dependent path); otherwise N(0, 0.02) weights and N(0, 1) pixels.
 * THREADS (default 1): intra-op and OpenBLAS threads, BLAS_THREADS: OpenBLAS's apart; with both at 1 the times are the
 * computing thread's least CPU time, otherwise the process's mean CPU time (10 ms ticks).
 */
public final class SiglipLayerTime {
    private SiglipLayerTime() {}

    static final long T = 729, H = 1152, I = 4304, NH = 16, HD = 72, SIDE = 384, P = 14;
    static int reps = 5;
    static double peak32, peak16;

    public static void main(String[] args) {
        Engine.init();
        reps = args.length > 0 ? Integer.parseInt(args[0]) : 5;
        boolean zeros = args.length > 1 && args[1].equals("zeros");
        Engine.setThreads(args.length > 2 ? Integer.parseInt(args[2]) : 1, "THREADS");
        if (args.length > 3) BlasThreads.set(Integer.parseInt(args[3]));
        singleThread = Engine.threads() == 1 && BlasThreads.get() == 1;
        System.out.printf("intra-op threads %d, OpenBLAS threads %d (times: %s), OPENBLAS_CORETYPE=%s, avx512_bf16 gemm: %s, data: %s%n", torch.get_num_threads(), BlasThreads.get(),
                singleThread ? "least CPU time of the computing thread" : "mean process CPU time, 10 ms ticks", System.getenv("OPENBLAS_CORETYPE"), Precision.BF16.gemm(), zeros ? "zeros" : "random");
        peak32 = GemmPeak.gflops(ScalarType.Float, 2); peak16 = GemmPeak.gflops(ScalarType.BFloat16, 2);
        System.out.printf("GemmPeak (512x2048x2048, best wall): fp32 %.0f GFLOP/s, bf16 %.0f GFLOP/s%n", peak32, peak16);
        peak32 = Math.max(peak32, cpuPeak(ScalarType.Float));
        peak16 = Math.max(peak16, cpuPeak(ScalarType.BFloat16));
        System.out.printf("GEMM peak used below (the larger of the two): fp32 %.0f GFLOP/s, bf16 %.0f GFLOP/s%n", peak32, peak16);
        for (Precision p : new Precision[]{Precision.FP32, Precision.BF16})
            layer(p, p == Precision.FP32 ? peak32 : peak16, zeros);
    }

    /** GFLOP per CPU-second of the same 512x2048x2048 matmul, timed as the layer's parts are. */
    static double cpuPeak(ScalarType type) {
        try (PointerScope s = new PointerScope()) {
            Tensor a = torch.randn(512, 2048).to(type), b = torch.randn(2048, 2048).to(type);
            double flop = 2.0 * 512 * 2048 * 2048;
            return flop / time("matmul 512x2048x2048 " + type, flop, Double.NaN, () -> a.matmul(b)) / 1e6;
        }
    }

    static Tensor weight(long out, long in, Precision p, boolean zeros) {
        Tensor w = zeros ? torch.zeros(out, in) : torch.randn(out, in).mul(new Scalar(0.02));
        return w.to(p.storage);
    }

    static Tensor vec(long n, boolean zeros) {
        return zeros ? torch.zeros(n) : torch.randn(n).mul(new Scalar(0.02));
    }

    static void layer(Precision p, double peak, boolean zeros) {
        System.out.printf("%n== %s (matrices stored %s, GEMMs in %s)%n", p, p.storage, p.gemm());
        try (PointerScope outer = new PointerScope(); NoGradGuard g = new NoGradGuard(); Autocast ac = Autocast.enable(p)) {
            Tensor x = zeros ? torch.zeros(1, T, H) : torch.randn(1, T, H);
            Tensor wq = weight(H, H, p, zeros), wo = weight(H, H, p, zeros), w1 = weight(I, H, p, zeros), w2 = weight(H, I, p, zeros);
            Tensor bq = vec(H, zeros), b1 = vec(I, zeros);
            LayerNorm ln = new LayerNorm(H, 1e-6);
            UnaryOperator<Tensor> gelu = Activation.of("gelu_pytorch_tanh");
            Tensor q = Autocast.linear(x, wq, bq).view(1, T, NH, HD).transpose(1, 2); // [1, nh, T, hd]
            Tensor a = torch.scaled_dot_product_attention(q, q, q, new TensorOptional(), 0.0, false, new DoubleOptional(), false);
            Tensor h1 = Autocast.linear(x, w1, b1);                                     // [1, T, I]
            Tensor px = zeros ? torch.zeros(1, 3, SIDE, SIDE) : torch.randn(1, 3, SIDE, SIDE);
            Tensor wp = zeros ? torch.zeros(H, 3, P, P).to(p.storage) : torch.randn(H, 3, P, P).mul(new Scalar(0.02)).to(p.storage);
            long patches = (SIDE / P) * (SIDE / P);
            double gemm = 2.0 * T * H * H;
            double[] ms = new double[9];
            ms[0] = time("layer_norm [729,1152]", 0, peak, () -> ln.forward(x));
            ms[1] = time("q/k/v/out projection (one) 1152->1152", gemm, peak, () -> Autocast.linear(x, wq, bq));
            ms[2] = time("sdpa 16x729x72 (fused; OpenBLAS at 1, as Attn)", 4.0 * NH * T * T * HD, peak,
                    () -> BlasThreads.single(() -> torch.scaled_dot_product_attention(q, q, q, new TensorOptional(), 0.0, false, new DoubleOptional(), false)));
            time("  variant: sdpa, OpenBLAS threads as set", 4.0 * NH * T * T * HD, peak,
                    () -> torch.scaled_dot_product_attention(q, q, q, new TensorOptional(), 0.0, false, new DoubleOptional(), false));
            Tensor qb = q.to(ScalarType.BFloat16);
            time("  variant: sdpa, q/k/v cast to bf16", 4.0 * NH * T * T * HD, peak16,
                    () -> torch.scaled_dot_product_attention(qb, qb, qb, new TensorOptional(), 0.0, false, new DoubleOptional(), false));
            Tensor qc = q.contiguous(), qbc = qb.contiguous();
            time("  variant: sdpa bf16, contiguous [1,nh,T,hd]", 4.0 * NH * T * T * HD, peak16,
                    () -> torch.scaled_dot_product_attention(qbc, qbc, qbc, new TensorOptional(), 0.0, false, new DoubleOptional(), false));
            time("  variant: sdpa fp32, contiguous [1,nh,T,hd]", 4.0 * NH * T * T * HD, peak32,
                    () -> torch.scaled_dot_product_attention(qc, qc, qc, new TensorOptional(), 0.0, false, new DoubleOptional(), false));
            time("  variant: math attention fp32", 4.0 * NH * T * T * HD, peak32,
                    () -> torch.softmax(qc.matmul(qc.transpose(-2, -1)).mul(new Scalar(1 / Math.sqrt(HD))), -1).matmul(qc));
            time("  variant: math attention bf16 (softmax fp32)", 4.0 * NH * T * T * HD, peak16,
                    () -> torch.softmax(qbc.matmul(qbc.transpose(-2, -1)).to(ScalarType.Float).mul(new Scalar(1 / Math.sqrt(HD))), -1)
                            .to(ScalarType.BFloat16).matmul(qbc));
            ms[3] = time("heads -> [T, h] reshape", 0, peak, () -> a.transpose(1, 2).reshape(1, T, H));
            ms[4] = time("fc1 1152->4304", 2.0 * T * H * I, peak, () -> Autocast.linear(x, w1, b1));
            ms[5] = time("gelu_pytorch_tanh [729,4304]", 0, peak, () -> gelu.apply(h1));
            ms[6] = time("fc2 4304->1152", 2.0 * T * I * H, peak, () -> Autocast.linear(h1, w2, bq));
            ms[7] = time("residual add", 0, peak, () -> x.add(x));
            double convFlop = 2.0 * patches * H * 3 * P * P;
            ms[8] = time("patch conv 3x384x384 -> 1152 (k=s=14)", convFlop, peak, () -> Autocast.patchConv(px, wp, P));
            double sum = 2 * ms[0] + 4 * ms[1] + ms[2] + ms[3] + ms[4] + ms[5] + ms[6] + 2 * ms[7];
            double layerFlop = 4 * gemm + 4.0 * NH * T * T * HD + 4.0 * T * H * I;
            System.out.printf("sum of parts for one layer (2 LN, 4 proj, sdpa, reshape, fc1, gelu, fc2, 2 adds): %.1f ms, %.1f GFLOP, %.0f GFLOP/s%n",
                    sum, layerFlop / 1e9, layerFlop / sum / 1e6);
            VisionConfig c = new VisionConfig((int) H, (int) I, 1, (int) NH, (int) SIDE, (int) P, 3, "gelu_pytorch_tanh", 1e-6, 0.0,
                    VisionConfig.SIGLIP, false);
            SiglipVisionTower tower = new SiglipVisionTower(c);
            for (var e : io.llava4j.engine.Tensors.namedParameters(tower).entrySet()) {
                Tensor t = e.getValue();
                t.requires_grad_(false);
                Tensor v = zeros ? torch.zeros_like(t) : torch.randn_like(t).mul(new Scalar(0.02));
                io.llava4j.engine.Tensors.assign(t, t.dim() >= 2 && !e.getKey().contains("position") ? v.to(p.storage) : v);
            }
            double emb = time("embedding stage (tower, 0 layers)", convFlop, peak, () -> tower.features(px, 0));
            double one = time("embedding + 1 layer (tower)", convFlop + layerFlop, peak, () -> tower.features(px, 1));
            System.out.printf("one layer in the tower: %.1f ms -> 26 layers + embedding ≈ %.1f s per tile, %.0f GFLOP/s%n",
                    one - emb, (26 * (one - emb) + emb) / 1e3, (26 * layerFlop + convFlop) / (26 * (one - emb) + emb) / 1e6);
        }
    }

    private static final java.lang.management.ThreadMXBean THREAD = java.lang.management.ManagementFactory.getThreadMXBean();

    private static final com.sun.management.OperatingSystemMXBean OS =
            (com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean();
    static boolean singleThread;

    /** CPU ns of this thread (the only one that computes with one intra-op and one OpenBLAS thread), else of the process. */
    static long cpuNow() {
        return singleThread ? THREAD.getCurrentThreadCpuTime() : OS.getProcessCpuTime();
    }

    /**
     * The least CPU time (ms; user + system, so page faults count) of {@link #reps} calls after a warm-up — on a shared
     * machine wall time measures the other jobs as much as the op — with the median wall time beside it; prints GFLOP/s per CPU-second and the
     * fraction of {@code peak}.
     */
    static double time(String what, double flop, double peak, Supplier<Tensor> op) {
        double[] cpu = new double[reps], wall = new double[reps];
        try (PointerScope s = new PointerScope()) {
            op.get();
        }
        for (int i = 0; i < reps; i++) {
            try (PointerScope s = new PointerScope()) {
                long t0 = System.nanoTime(), c0 = cpuNow();
                op.get();
                cpu[i] = (cpuNow() - c0) / 1e6;
                wall[i] = (System.nanoTime() - t0) / 1e6;
            }
        }
        double ms = singleThread ? Arrays.stream(cpu).min().getAsDouble() : Arrays.stream(cpu).average().getAsDouble();
        Arrays.sort(wall);
        if (flop > 0) System.out.printf("  %-44s %8.2f ms CPU (wall %8.2f)  %6.1f GFLOP/s  %5.1f%% of peak%n", what, ms, wall[reps / 2],
                flop / ms / 1e6, 100 * flop / ms / 1e6 / peak);
        else System.out.printf("  %-44s %8.2f ms CPU (wall %8.2f)%n", what, ms, wall[reps / 2]);
        return ms;
    }
}
