package io.llava4j.generate;

import io.llava4j.engine.Tensors;
import io.llava4j.model.KvCache;
import io.llava4j.model.Llama;
import io.llava4j.model.Llava;
import io.llava4j.nn.Autocast;
import io.llava4j.nn.Precision;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Autoregressive decoding of a LLaVA with a KV cache: the prompt (image rows merged in) is run once, then one new
 * token at a time against the cached keys and values. The cache is sized to the request (prompt + max new tokens) and
 * freed when it ends. Stops after a stop token (kept in the output, as HF's generate keeps it) or at the limit.
 *
 * <p>Not thread-safe: one request at a time per model (the server queues requests in front of one generator).
 */
public final class Generator {

    /** Called with each new token as soon as it is picked; return false to stop (the result says "cancelled"). */
    @FunctionalInterface
    public interface TokenListener {
        boolean onToken(int token);
    }

    /**
     * @param tokens        the generated ids (the stop token included when one ended generation)
     * @param stopReason    "stop" (a stop token), "length" (max new tokens) or "cancelled" (the listener said so)
     * @param promptLength  positions of the prompt after merging the image rows
     * @param prefillNanos  time from the call to the first token (image encoding and prefill included)
     * @param decodeNanos   time of the remaining tokens
     * @param cacheBytes    size of the KV cache the request used
     */
    public record Result(int[] tokens, String stopReason, long promptLength, long prefillNanos, long decodeNanos, long cacheBytes) {
        /** Decode speed after the first token (tokens/s), NaN with fewer than two tokens. */
        public double decodeTokensPerSecond() {
            return tokens.length < 2 ? Double.NaN : (tokens.length - 1) / (decodeNanos / 1e9);
        }
    }

    private final Llava model;
    private final Precision precision;
    private final int[] stopTokens;

    /** fp32 generation; {@code stopTokens}: ids that end generation (LLaVA: the tokenizer's {@code </s>}). */
    public Generator(Llava model, int... stopTokens) {
        this(model, Precision.FP32, stopTokens);
    }

    /** @param precision the GEMM precision of {@link Autocast} for the model's half-precision weights (as loaded) */
    public Generator(Llava model, Precision precision, int... stopTokens) {
        this.model = model;
        this.precision = precision;
        this.stopTokens = stopTokens.clone();
    }

    /** The ids that end generation. */
    public int[] stopTokens() {
        return stopTokens.clone();
    }

    /** The same model without stop tokens: always {@code maxNewTokens} tokens (vLLM's {@code ignore_eos}). */
    public Generator ignoringStopTokens() {
        return new Generator(model, precision);
    }

    public Llava model() {
        return model;
    }

    /**
     * Generates for one prompt.
     *
     * @param pixels   [1, C, H, W] preprocessed image, or null for a prompt without an image token
     * @param prompt   token ids with one image token where the image goes (none without an image)
     * @param listener told each token as it is produced (null = none)
     */
    public Result generate(Tensor pixels, int[] prompt, Sampling sampling, TokenListener listener) {
        return generate(pixels, null, prompt, sampling, listener);
    }

    /**
     * As above for any model: {@code pixels} [tiles, C, P, P] (an AnyRes image's base tile and grid, one tile
     * otherwise) and {@code imageSizes} the image's original {@code {{height, width}}} (AnyRes; null otherwise).
     */
    public Result generate(Tensor pixels, int[][] imageSizes, int[] prompt, Sampling sampling, TokenListener listener) {
        long t0 = System.nanoTime();
        TokenPicker picker = new TokenPicker(sampling);
        List<Integer> out = new ArrayList<>();
        String reason = "length";
        long t1, promptLength, cacheBytes;
        Llama lm = model.languageModel;
        try (PointerScope request = new PointerScope(); NoGradGuard ng = new NoGradGuard(); Autocast ac = Autocast.enable(precision)) {
            Tensor embeds = model.embedPrompt(pixels, imageSizes, longs(prompt)); // [1, L, h]
            promptLength = embeds.size(1);
            try (KvCache cache = new KvCache(model.config.text(), 1, promptLength + sampling.maxNewTokens())) {
                cacheBytes = cache.bytes();
                float[] logits = lastLogits(lm.forwardCached(embeds, null, null, cache));
                t1 = System.nanoTime();
                while (true) {
                    int next = picker.pick(logits);
                    out.add(next);
                    if (listener != null && !listener.onToken(next)) { reason = "cancelled"; break; }
                    if (isStop(next)) { reason = "stop"; break; }
                    if (out.size() >= sampling.maxNewTokens()) break;
                    try (PointerScope step = new PointerScope()) {
                        Tensor e = lm.model.embedTokens.forward(Tensors.longs(new long[]{next}, 1, 1)); // [1, 1, h]
                        logits = lastLogits(lm.forwardCached(e, null, null, cache));
                    }
                }
            }
        }
        long t2 = System.nanoTime();
        return new Result(out.stream().mapToInt(Integer::intValue).toArray(), reason, promptLength, t1 - t0, t2 - t1, cacheBytes);
    }

    /** The logits of the prompt's last position as the cached prefill computes them (what the first token is picked from). */
    public float[] firstLogits(Tensor pixels, int[] prompt) {
        return firstLogits(pixels, null, prompt);
    }

    /** As above with the image's original (height, width) for an AnyRes model (null otherwise). */
    public float[] firstLogits(Tensor pixels, int[][] imageSizes, int[] prompt) {
        try (PointerScope request = new PointerScope(); NoGradGuard ng = new NoGradGuard(); Autocast ac = Autocast.enable(precision)) {
            Tensor embeds = model.embedPrompt(pixels, imageSizes, longs(prompt));
            try (KvCache cache = new KvCache(model.config.text(), 1, embeds.size(1))) {
                return lastLogits(model.languageModel.forwardCached(embeds, null, null, cache));
            }
        }
    }

    /**
     * Greedy decoding of several prompts in one batch (for evaluation): prompts are left-padded to the longest, padding
     * is masked out of attention and each sample's rotary positions start at its first real token, so every sample gets
     * the tokens it would get alone. A sample that has stopped is fed its stop token until all have stopped or the
     * limit is reached; its output ends at the stop token.
     *
     * @param pixels per prompt [1, C, H, W] or null
     */
    public List<int[]> greedyBatch(List<Tensor> pixels, List<int[]> prompts, int maxNewTokens) {
        if (pixels.size() != prompts.size())
            throw new IllegalArgumentException(pixels.size() + " images for " + prompts.size() + " prompts");
        if (maxNewTokens < 1) throw new IllegalArgumentException("max_new_tokens must be >= 1, got " + maxNewTokens);
        int b = prompts.size();
        List<List<Integer>> out = new ArrayList<>();
        Llama lm = model.languageModel;
        try (PointerScope request = new PointerScope(); NoGradGuard ng = new NoGradGuard(); Autocast ac = Autocast.enable(precision)) {
            List<Tensor> rows = new ArrayList<>();
            long maxLen = 0;
            for (int i = 0; i < b; i++) {
                Tensor e = model.embedPrompt(pixels.get(i), longs(prompts.get(i))); // [1, L_i, h]
                rows.add(e);
                maxLen = Math.max(maxLen, e.size(1));
                out.add(new ArrayList<>());
            }
            long h = rows.get(0).size(2), capacity = maxLen + maxNewTokens;
            long[] valid = new long[Math.toIntExact(b * capacity)]; // [B, capacity] 1 = real key
            long[] positions = new long[Math.toIntExact(b * maxLen)];
            long[] length = new long[b];
            TensorVector padded = new TensorVector();
            for (int i = 0; i < b; i++) {
                Tensor e = rows.get(i);
                long len = e.size(1), pad = maxLen - len;
                length[i] = len;
                padded.push_back(pad == 0 ? e : torch.cat(new TensorVector(io.llava4j.engine.Device.place(torch.zeros(1, pad, h)), e), 1));
                Arrays.fill(valid, Math.toIntExact(i * capacity + pad), Math.toIntExact((i + 1) * capacity), 1);
                for (long j = pad; j < maxLen; j++) positions[Math.toIntExact(i * maxLen + j)] = j - pad;
            }
            Tensor keyValid = Tensors.longs(valid, b, capacity).to(torch.ScalarType.Bool); // [B, capacity]
            boolean[] done = new boolean[b];
            try (KvCache cache = new KvCache(model.config.text(), b, capacity)) {
                Tensor hidden = lm.forwardCached(torch.cat(padded, 0), Tensors.longs(positions, b, maxLen),
                        keyValid.narrow(1, 0, maxLen), cache); // [B, maxLen, h]
                long[] ids = argmax(hidden);
                for (int step = 0; ; step++) {
                    boolean all = true;
                    for (int i = 0; i < b; i++) {
                        if (done[i]) { ids[i] = out.get(i).get(out.get(i).size() - 1); continue; }
                        out.get(i).add((int) ids[i]);
                        done[i] = isStop((int) ids[i]);
                        all &= done[i];
                    }
                    if (all || step + 1 >= maxNewTokens) break;
                    try (PointerScope s = new PointerScope()) {
                        long[] pos = new long[b];
                        for (int i = 0; i < b; i++) pos[i] = length[i] + step;
                        Tensor e = lm.model.embedTokens.forward(Tensors.longs(ids, b, 1)); // [B, 1, h]
                        Tensor hid = lm.forwardCached(e, Tensors.longs(pos, b, 1), keyValid.narrow(1, 0, cache.length() + 1), cache);
                        ids = argmax(hid);
                    }
                }
            }
        }
        List<int[]> result = new ArrayList<>();
        for (List<Integer> o : out) result.add(o.stream().mapToInt(Integer::intValue).toArray());
        return result;
    }

    /** The argmax token of each sample's last position: [B, T, h] → B ids. */
    private long[] argmax(Tensor hidden) {
        Tensor last = hidden.narrow(1, hidden.size(1) - 1, 1); // [B, 1, h]
        return Tensors.toLongs(model.languageModel.head(last).squeeze(1).argmax(new org.bytedeco.pytorch.LongOptional(-1), false));
    }

    private float[] lastLogits(Tensor hidden) {
        Tensor last = hidden.narrow(1, hidden.size(1) - 1, 1); // [1, 1, h]
        return Tensors.toFloats(model.languageModel.head(last));
    }

    private boolean isStop(int token) {
        for (int s : stopTokens) if (s == token) return true;
        return false;
    }

    private static long[] longs(int[] ids) {
        long[] l = new long[ids.length];
        for (int i = 0; i < ids.length; i++) l[i] = ids[i];
        return l;
    }
}
