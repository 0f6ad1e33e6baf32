package io.llava4j.demo;

import io.llava4j.config.TextConfig;
import io.llava4j.engine.Engine;
import io.llava4j.engine.Tensors;
import io.llava4j.model.Llama;
import io.llava4j.model.Llava;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The LLM pre-training's length buckets change the padding, not the loss or its gradients. */
class PretrainingTest {
    private static final int VOCAB = 40;

    /** A 2-layer, 32-wide LLaMA of {@link #VOCAB} ids, initialised as the demo initialises its LLM. */
    private static Llama tinyLlama(long seed) {
        Engine.init();
        TextConfig tc = new TextConfig("llama", 32, 64, 2, 4, 4, null, VOCAB, 1e-5, 10000.0, 128, "silu", false, false, false,
                null, null, null);
        Llama lm = new Llama(tc);
        Pretraining.init(lm, seed);
        return lm;
    }

    /**
     * Two buckets run at once on two threads give the sequential loss and gradients bit for bit, with and without the
     * composed grid-word embedding, over repeated steps (whichever bucket's backward finishes first).
     */
    @Test
    void concurrentBucketsEqualSequentialBitForBit() {
        int vocab = VOCAB;
        Llama lm = tinyLlama(5);
        Map<String, Tensor> params = Tensors.namedParameters(lm);
        params.values().forEach(p -> p.requires_grad_(true));
        float[] c = new float[vocab * vocab];
        for (int i = 0; i < vocab; i++) c[i * vocab + i] = 1;
        c[30 * vocab + 30] = 0; // row 30 composed of 4 and 5, as a grid word of its parts
        c[30 * vocab + 4] = c[30 * vocab + 5] = 0.5f;
        Tensor compose = Tensors.floats(c, vocab, vocab);
        Random r = new Random(6);
        for (int trial = 0; trial < 6; trial++) {
            List<int[]> docs = new ArrayList<>();
            for (int i = 0; i < 9; i++) {
                int[] d = new int[3 + r.nextInt(40)];
                d[0] = 1;
                for (int j = 1; j < d.length; j++) d[j] = 3 + r.nextInt(vocab - 3);
                docs.add(d);
            }
            Tensor comp = trial % 2 == 0 ? null : compose;
            double seq = Pretraining.backwardInBuckets(lm, comp, docs, 0, false);
            Map<String, float[]> grads = new java.util.LinkedHashMap<>();
            params.forEach((k, p) -> grads.put(k, Tensors.toFloats(p.grad())));
            params.values().forEach(p -> p.mutable_grad().reset());
            double conc = Pretraining.backwardInBuckets(lm, comp, docs, 0, true);
            assertEquals(Double.doubleToLongBits(seq), Double.doubleToLongBits(conc), "loss " + seq + " vs " + conc);
            params.forEach((k, p) -> {
                float[] a = grads.get(k), b = Tensors.toFloats(p.grad());
                for (int i = 0; i < a.length; i++)
                    assertEquals(Float.floatToIntBits(a[i]), Float.floatToIntBits(b[i]), k + "[" + i + "]: " + a[i] + " vs " + b[i]);
            });
            params.values().forEach(p -> p.mutable_grad().reset());
        }
    }

    @Test
    void bucketedBackwardEqualsOnePaddedBatch() {
        int vocab = VOCAB;
        Llama lm = tinyLlama(3);
        Random r = new Random(4);
        List<int[]> docs = new ArrayList<>();
        for (int i = 0; i < 7; i++) { // lengths 3..30: the buckets pad differently from one batch
            int[] d = new int[3 + r.nextInt(28)];
            d[0] = 1;
            for (int j = 1; j < d.length; j++) d[j] = 3 + r.nextInt(vocab - 3);
            docs.add(d);
        }
        Map<String, Tensor> params = Tensors.namedParameters(lm);
        params.values().forEach(p -> p.requires_grad_(true));

        double bucketed = Pretraining.backwardInBuckets(lm, null, docs, 0, false);
        Map<String, float[]> grads = new java.util.LinkedHashMap<>();
        params.forEach((k, p) -> grads.put(k, Tensors.toFloats(p.grad())));
        params.values().forEach(p -> p.mutable_grad().reset());

        double whole; // one padded batch, mean over all predicted tokens
        try (PointerScope scope = new PointerScope()) {
            int T = docs.stream().mapToInt(d -> d.length).max().orElseThrow();
            long[] ids = new long[docs.size() * T], labels = new long[docs.size() * T];
            java.util.Arrays.fill(labels, Llava.IGNORE_INDEX);
            long n = 0;
            for (int b = 0; b < docs.size(); b++) {
                for (int j = 0; j < docs.get(b).length; j++) ids[b * T + j] = labels[b * T + j] = docs.get(b)[j];
                n += docs.get(b).length - 1;
            }
            Tensor logits = lm.forward(torch.embedding(lm.model.embedTokens.weight, Tensors.longs(ids, docs.size(), T)));
            Tensor loss = Llava.tokenLosses(logits, Tensors.longs(labels, docs.size(), T)).sum().div(new Scalar((double) n));
            loss.backward();
            whole = loss.item_double();
        }
        assertEquals(whole, bucketed, 1e-5);
        params.forEach((k, p) -> {
            float[] a = grads.get(k), b = Tensors.toFloats(p.grad());
            for (int i = 0; i < a.length; i++) assertEquals(b[i], a[i], 1e-6 + 1e-4 * Math.abs(b[i]), k + "[" + i + "]");
        });
    }
}
