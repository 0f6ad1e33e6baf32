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
 * line per M: the median step time and rows × steps / time.
 *
 * <p>Arguments: {@code [--threads N] [--prompt L] [--steps N] [--rows 1,2,4,8] [--bf16]}.
 */
public final class DecodeStepBench {
    private DecodeStepBench() {}

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
                long[] nanos = new long[steps];
                for (int step = 0; step < steps + 1; step++) {
                    for (int r = 0; r < m; r++) ids[r] = (step * 7919L + r * 104729L) % 31990 + 3;
                    long t0 = System.nanoTime();
                    try (PointerScope s = new PointerScope()) {
                        Tensor e = lm.model.embedTokens.forward(Tensors.longs(ids, m, 1)); // [M, 1, h]
                        Tensors.toFloats(lm.head(lm.forwardDecode(e, new BatchKvCache(caches)))); // [M, 1, V] to the host, as serve does
                    }
                    if (step > 0) nanos[step - 1] = System.nanoTime() - t0; // step 0 warms up
                }
                for (KvCache c : caches) c.close();
                long[] sorted = nanos.clone();
                Arrays.sort(sorted);
                double median = sorted[steps / 2] / 1e6, best = sorted[0] / 1e6;
                System.out.printf("{\"rows\": %d, \"precision\": \"%s\", \"threads\": %d, \"prompt_positions\": %d, \"steps\": %d, "
                                + "\"step_ms_median\": %.2f, \"step_ms_best\": %.2f, \"tokens_per_s_median\": %.1f}%n",
                        m, precision.describe(), Engine.threads(), prompt, steps, median, best, m * 1000.0 / median);
            }
        }
    }
}
