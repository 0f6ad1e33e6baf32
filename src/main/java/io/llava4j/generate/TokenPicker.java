package io.llava4j.generate;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Picks the next token from one position's logits by a {@link Sampling}: argmax, or HF's temperature + top-p warpers;
 * before either, OpenAI's presence and frequency penalties over the tokens this picker has picked:
 * {@code logit[j] -= count[j] * frequency_penalty + (count[j] > 0) * presence_penalty}.
 */
final class TokenPicker {
    private final Sampling s;
    private final SplittableRandom rng;
    private final Map<Integer, Integer> counts = new HashMap<>();

    TokenPicker(Sampling s) {
        this.s = s;
        this.rng = new SplittableRandom(s.seed());
    }

    int pick(float[] logits) {
        if (s.hasPenalties()) penalize(logits);
        int next = s.isGreedy() ? argmax(logits) : sample(logits);
        if (s.hasPenalties()) counts.merge(next, 1, Integer::sum);
        return next;
    }

    private void penalize(float[] logits) {
        for (Map.Entry<Integer, Integer> e : counts.entrySet()) {
            int j = e.getKey();
            if (j < logits.length) logits[j] -= (float) (e.getValue() * s.frequencyPenalty() + s.presencePenalty());
        }
    }

    /** Index of the largest logit (the first one on ties, as torch.argmax). */
    static int argmax(float[] logits) {
        int best = 0;
        for (int i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }

    private int sample(float[] logits) {
        double[] p = nucleus(logits, s.temperature(), s.topP());
        double u = rng.nextDouble(), acc = 0;
        int last = 0;
        for (int i = 0; i < p.length; i++) {
            if (p[i] == 0) continue;
            acc += p[i];
            last = i;
            if (u < acc) return i;
        }
        return last;
    }

    /**
     * softmax(logits / T) with HF's TopPLogitsWarper applied: sorted ascending, a token is dropped while the cumulative
     * mass up to and including it is <= 1 - top_p (the most likely token always stays); renormalized.
     */
    static double[] nucleus(float[] logits, double temperature, double topP) {
        int n = logits.length;
        double max = Double.NEGATIVE_INFINITY;
        for (float l : logits) max = Math.max(max, l / temperature);
        double[] p = new double[n];
        double sum = 0;
        for (int i = 0; i < n; i++) sum += p[i] = Math.exp(logits[i] / temperature - max);
        for (int i = 0; i < n; i++) p[i] /= sum;
        if (topP < 1) {
            Integer[] order = new Integer[n];
            for (int i = 0; i < n; i++) order[i] = i;
            Arrays.sort(order, (a, b) -> Double.compare(p[a], p[b]));
            double cum = 0;
            for (int r = 0; r < n - 1; r++) {
                cum += p[order[r]];
                if (cum > 1 - topP) break;
                p[order[r]] = 0;
            }
            double kept = 0;
            for (double v : p) kept += v;
            for (int i = 0; i < n; i++) p[i] /= kept;
        }
        return p;
    }
}
