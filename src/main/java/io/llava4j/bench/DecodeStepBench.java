package io.llava4j.bench;

import io.llava4j.engine.Engine;
import io.llava4j.engine.Tensors;
import io.llava4j.model.BatchKvCache;
import io.llava4j.model.KvCache;
import io.llava4j.model.Llama;
import io.llava4j.model.Llava;
import io.llava4j.nn.Autocast;
import io.llava4j.nn.Precision;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * What one batched decoding step costs ({@link Llama#forwardDecode} + the LM head, as continuous batching in
 * {@code serve} runs it) at M = 1, 2, 4, 8 rows on the benchmark model (seeded weights, no files): each row a request
 * with its own KV cache holding a prompt of {@code --prompt} positions plus the tokens decoded so far. Prints one JSON
 * line per M: the median step time and rows × steps / time, and the same for the step's linear layers and LM head
 * alone (the GEMMs batching shares; the rest is attention per row, norms, rotary embeddings and the copy to the host).
 * Besides wall time, the calling thread's CPU time: with {@code --threads 1} and {@code OPENBLAS_NUM_THREADS=1} every
 * kernel runs on that thread, so CPU time measures the work even where other processes load the machine.
 *
 * <p>Arguments: {@code [--threads N] [--prompt L] [--steps N] [--rows 1,2,4,8] [--bf16]}.
 */
public final class DecodeStepBench {
    private DecodeStepBench() {}

    private static final java.lang.management.ThreadMXBean THREADS = java.lang.management.ManagementFactory.getThreadMXBean();

    private static long cpuNanos() {
        return THREADS.getCurrentThreadCpuTime();
    }

    private static double median(long[] v) {
        long[] s = v.clone();
        Arrays.sort(s);
        return s[s.length / 2];
    }

    public static void main(String[] args) {
        int prompt = 229, steps = 32;
        int[] ms = {1, 2, 4, 8};
        Precision precision = Precision.FP32;
        Engine.init();
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--threads" -> org.bytedeco.pytorch.global.torch.set_num_threads(Integer.parseInt(args[++i]));
                case "--prompt" -> prompt = Integer.parseInt(args[++i]);
                case "--steps" -> steps = Integer.parseInt(args[++i]);
                case "--rows" -> ms = Arrays.stream(args[++i].split(",")).mapToInt(Integer::parseInt).toArray();
                case "--bf16" -> precision = Precision.BF16;
                default -> throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        Llava model = BenchModel.build(0, precision);
        Llama lm = model.languageModel;
        try (NoGradGuard g = new NoGradGuard(); Autocast ac = Autocast.enable(precision)) {
            for (int m : ms) {
                List<KvCache> caches = new ArrayList<>();
                for (int r = 0; r < m; r++) {
                    KvCache c = new KvCache(model.config.text(), 1, prompt + steps + 2);
                    try (PointerScope s = new PointerScope()) { // a prompt of random embeddings fills the cache
                        lm.forwardCached(org.bytedeco.pytorch.global.torch.randn(1, prompt, model.config.text().hiddenSize()), null, null, c);
                    }
                    caches.add(c);
                }
                long[] ids = new long[m];
                long[] wall = new long[steps], cpu = new long[steps], gemmWall = new long[steps], gemmCpu = new long[steps];
                Tensor x = org.bytedeco.pytorch.global.torch.randn(m, 1, model.config.text().hiddenSize()); // [M, 1, h]
                Tensor xi = org.bytedeco.pytorch.global.torch.randn(m, 1, model.config.text().intermediateSize()); // [M, 1, ffn]
                for (int step = 0; step < steps + 1; step++) {
                    for (int r = 0; r < m; r++) ids[r] = (step * 7919L + r * 104729L) % 31990 + 3;
                    long t0 = System.nanoTime(), c0 = cpuNanos();
                    try (PointerScope s = new PointerScope()) {
                        Tensor e = lm.model.embedTokens.forward(Tensors.longs(ids, m, 1)); // [M, 1, h]
                        Tensors.toFloats(lm.head(lm.forwardDecode(e, new BatchKvCache(caches)))); // [M, 1, V] to the host, as serve does
                    }
                    long t1 = System.nanoTime(), c1 = cpuNanos();
                    try (PointerScope s = new PointerScope()) { // the same step's linear layers and head alone
                        for (io.llava4j.nn.Linear l : lm.layerProjections().values()) l.forward(l.weight.size(1) == x.size(2) ? x : xi);
                        Tensors.toFloats(lm.head(x));
                    }
                    if (step > 0) { // step 0 warms up
                        wall[step - 1] = t1 - t0;
                        cpu[step - 1] = c1 - c0;
                        gemmWall[step - 1] = System.nanoTime() - t1;
                        gemmCpu[step - 1] = cpuNanos() - c1;
                    }
                }
                for (KvCache c : caches) c.close();
                double median = median(wall) / 1e6, best = Arrays.stream(wall).min().getAsLong() / 1e6;
                System.out.printf("{\"rows\": %d, \"precision\": \"%s\", \"threads\": %d, \"prompt_positions\": %d, \"steps\": %d, "
                                + "\"step_ms_median\": %.2f, \"step_ms_best\": %.2f, \"tokens_per_s_median\": %.1f, \"step_cpu_ms_median\": %.2f, "
                                + "\"tokens_per_cpu_s\": %.1f, \"gemm_ms_median\": %.2f, \"gemm_cpu_ms_median\": %.2f}%n",
                        m, precision.describe(), Engine.threads(), prompt, steps, median, best, m * 1000.0 / median,
                        median(cpu) / 1e6, m * 1e9 / median(cpu), median(gemmWall) / 1e6, median(gemmCpu) / 1e6);
            }
        }
    }
}
