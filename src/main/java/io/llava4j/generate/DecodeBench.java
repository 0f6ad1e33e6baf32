package io.llava4j.generate;

import io.llava4j.engine.Engine;
import io.llava4j.engine.Tensors;
import io.llava4j.model.Checkpoints;
import io.llava4j.model.Llava;
import io.llava4j.nn.Precision;
import org.bytedeco.pytorch.Tensor;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;

/**
 * Decode benchmark (run by {@code bench/generate.sh}; bench/generate_ref.py is the PyTorch side): time to first token
 * (image encoding + prefill + first pick) and decode tokens/s of greedy KV-cache decoding that never stops early. The
 * prompt is BOS + one image + 32 text ids, made exactly as generate_ref.py makes them, so the first tokens agree in fp32.
 *
 * <p>Arguments: {@code MODEL_DIR [--bf16] [--packed_weights] [--threads N] [--new_tokens N] [--runs N] [--warmup N] [--load_8bit | --load_4bit | --load_4bit_nf4]}. Prints one JSON line.
 */
public final class DecodeBench {
    private DecodeBench() {}

    public static void main(String[] args) {
        Path model = Path.of(args[0]);
        boolean bf16 = false, packed = false;
        io.llava4j.nn.quant.QuantSpec quant = null; // generate's --load_8bit / --load_4bit
        int newTokens = 32, runs = 3, warmup = 1;
        for (int i = 1; i < args.length; i++) {
            switch (args[i]) {
                case "--bf16" -> bf16 = true;
                case "--packed_weights" -> packed = true;
                case "--load_8bit" -> quant = new io.llava4j.nn.quant.QuantSpec(io.llava4j.nn.quant.QuantType.INT8, false);
                case "--load_4bit" -> quant = new io.llava4j.nn.quant.QuantSpec(io.llava4j.nn.quant.QuantType.INT4, false);
                case "--load_4bit_nf4" -> quant = new io.llava4j.nn.quant.QuantSpec(io.llava4j.nn.quant.QuantType.NF4, true);
                case "--new_tokens" -> newTokens = Integer.parseInt(args[++i]);
                case "--runs" -> runs = Integer.parseInt(args[++i]);
                case "--warmup" -> warmup = Integer.parseInt(args[++i]);
                case "--threads" -> {
                    Engine.init();
                    org.bytedeco.pytorch.global.torch.set_num_threads(Integer.parseInt(args[++i]));
                }
                default -> throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        Precision precision = bf16 ? Precision.BF16 : Precision.FP32;
        InferenceWeights.warmUp(); // as generate loads it
        Llava m = Checkpoints.loadForInference(model, null, precision, quant, true).model();
        long packedBytes = packed ? InferenceWeights.prepare(m, precision) : 0; // as generate packs it
        Result r = measure(m, precision, newTokens, runs, warmup);
        long weightBytes = m.quantized == null ? weightBytesPerToken(m.config.text(), precision)  // a step streams the layers' codes and scales, and the head
                : m.quantized.bytes() + (long) m.config.text().vocabSize() * m.config.text().hiddenSize() * (precision == Precision.FP32 ? 4 : 2);
        long peakRss = peakRssMb(); // decoding's own peak, before the copy measurement's two 256 MiB buffers
        double copyGBs = copyBandwidthGBs();
        System.out.printf("{\"engine\": \"llava4j\", \"bf16\": %s, \"precision\": \"%s\", \"threads\": %d, \"prompt_positions\": %d, "
                        + "\"new_tokens\": %d, \"time_to_first_token_s\": %.4f, \"prompt_embedding_s\": %.4f, \"prefill_tokens_per_s\": %.1f, "
                        + "\"decode_tokens_per_s\": %.2f, "
                        + "\"best_time_to_first_token_s\": %.4f, \"best_decode_tokens_per_s\": %.2f, \"first_tokens\": %s, "
                        + "\"kv_cache_mb\": %.1f, \"peak_rss_mb\": %d, \"llm_weights\": \"%s\", \"openblas_kernels\": \"%s\", "
                        + "\"weight_gb_per_token\": %.4f, \"decode_weight_gb_per_s\": %.2f, \"copy_gb_per_s\": %.2f}%n",
                bf16, precision.describe(), Engine.threads(), r.promptPositions(), newTokens, r.timeToFirstTokenS(),
                r.promptEmbeddingS(), r.prefillTokensPerS(),
                r.decodeTokensPerS(), r.bestTimeToFirstTokenS(), r.bestDecodeTokensPerS(), Arrays.toString(r.firstTokens()),
                r.kvCacheMb(), peakRss, quant != null ? "quantized " + quant.describe() : InferenceWeights.describe(packedBytes, precision), io.llava4j.engine.BlasThreads.coreName(),
                weightBytes / 1e9, weightBytes * r.decodeTokensPerS() / 1e9, copyGBs);
    }

    /** Medians (and bests) over the runs; the first 8 generated tokens of the first run. */
    public record Result(long promptPositions, int newTokens, double timeToFirstTokenS, double decodeTokensPerS,
                         double bestTimeToFirstTokenS, double bestDecodeTokensPerS, int[] firstTokens, double kvCacheMb,
                         double promptEmbeddingS, double prefillS) {
        /** Prompt positions a second through the LLM (its pass over the prompt and the last position's logits, timed alone). */
        public double prefillTokensPerS() {
            return promptPositions / prefillS;
        }
    }

    /**
     * Greedy decoding of {@code newTokens} tokens (never stopping early) on BOS + one image + 32 text ids, as
     * generate_ref.py builds the prompt; {@code warmup} runs, then the median of {@code runs}.
     */
    public static Result measure(Llava m, Precision precision, int newTokens, int runs, int warmup) {
        int itok = (int) m.config.imageTokenIndex();
        int size = m.config.vision().imageSize();
        int[] ids = new int[34];
        ids[0] = 1;
        ids[1] = itok;
        for (int i = 0; i < 32; i++) ids[2 + i] = (int) ((i * 7919L) % (itok - 3) + 3);
        float[] px = new float[3 * size * size];
        for (int i = 0; i < px.length; i++) px[i] = (float) Math.sin(0.001 * i);
        Tensor pixels = Tensors.floats(px, 1, 3, size, size);
        Generator g = new Generator(m, precision); // no stop token
        Sampling s = Sampling.greedy(newTokens);
        for (int i = 0; i < warmup; i++) g.generate(pixels, ids, s, null);
        List<Generator.Result> res = new ArrayList<>();
        for (int i = 0; i < runs; i++) res.add(g.generate(pixels, ids, s, null));
        List<Long> ttft = new ArrayList<>(), dec = new ArrayList<>();
        for (Generator.Result r : res) {
            ttft.add(r.prefillNanos());
            dec.add(r.decodeNanos());
        }
        Collections.sort(ttft);
        Collections.sort(dec);
        Generator.Result r0 = res.get(0);
        // the part of the time to first token before the LLM (the tower, the projector and the prompt's embeddings),
        // and the LLM's pass over the prompt alone, each timed apart
        List<Long> embed = new ArrayList<>(), prefill = new ArrayList<>();
        long[] prompt = Arrays.stream(ids).asLongStream().toArray();
        for (int i = 0; i < Math.max(1, runs); i++)
            try (org.bytedeco.javacpp.PointerScope sc = new org.bytedeco.javacpp.PointerScope();
                 org.bytedeco.pytorch.NoGradGuard ng = new org.bytedeco.pytorch.NoGradGuard();
                 io.llava4j.nn.Autocast ac = io.llava4j.nn.Autocast.enable(precision)) {
                long t0 = System.nanoTime();
                Tensor embeds = m.embedPrompt(pixels, null, prompt); // [1, L, h]
                long t1 = System.nanoTime();
                try (io.llava4j.model.KvCache cache = new io.llava4j.model.KvCache(m.config.text(), 1, embeds.size(1) + 1)) {
                    Tensors.toFloats(m.languageModel.head(m.languageModel.forwardCached(embeds, null, null, cache).narrow(1, embeds.size(1) - 1, 1)));
                }
                embed.add(t1 - t0);
                prefill.add(System.nanoTime() - t1);
            }
        Collections.sort(prefill);
        Collections.sort(embed);
        return new Result(r0.promptLength(), newTokens, ttft.get(runs / 2) / 1e9, (newTokens - 1) / (dec.get(runs / 2) / 1e9),
                ttft.get(0) / 1e9, (newTokens - 1) / (dec.get(0) / 1e9), Arrays.copyOf(r0.tokens(), 8), r0.cacheBytes() / 1048576.0,
                embed.get(embed.size() / 2) / 1e9, prefill.get(prefill.size() / 2) / 1e9);
    }

    /**
     * Bytes of weight matrices one decoding step streams: every decoder projection and the head, in the storage type of
     * the LLM's matrices (the embedding lookup reads one row).
     */
    public static long weightBytesPerToken(io.llava4j.config.TextConfig c, Precision precision) {
        long h = c.hiddenSize(), q = c.numAttentionHeads() * c.headDim(), kv = c.numKeyValueHeads() * c.headDim();
        long perLayer = h * q + 2 * h * kv + q * h + 3 * h * c.intermediateSize();
        long elements = c.numHiddenLayers() * perLayer + c.vocabSize() * h;
        return elements * (precision == Precision.FP32 ? 4 : 2);
    }

    /**
     * STREAM-style copy bandwidth of this process (GB/s, bytes read + written): the best of 5 copies of a 256 MiB fp32
     * tensor with libtorch's threads — the rate a decoding step that streams its weights is bounded by.
     */
    public static double copyBandwidthGBs() {
        try (org.bytedeco.javacpp.PointerScope s = new org.bytedeco.javacpp.PointerScope()) {
            long n = 64L << 20;
            Tensor a = org.bytedeco.pytorch.global.torch.ones(n), b = org.bytedeco.pytorch.global.torch.zeros(n);
            b.copy_(a);
            long best = Long.MAX_VALUE;
            for (int i = 0; i < 5; i++) {
                long t0 = System.nanoTime();
                b.copy_(a);
                best = Math.min(best, System.nanoTime() - t0);
            }
            return 2.0 * n * 4 / best;
        }
    }

    /** VmHWM of this process (MiB), -1 where /proc is not there. */
    private static long peakRssMb() {
        try {
            for (String l : java.nio.file.Files.readAllLines(Path.of("/proc/self/status")))
                if (l.startsWith("VmHWM:")) return Long.parseLong(l.replaceAll("\\D", "")) / 1024;
        } catch (Exception e) {
            return -1;
        }
        return -1;
    }
}
