package io.llava4j.model;

import io.llava4j.engine.CpuTeam;
import io.llava4j.engine.Tensors;
import io.llava4j.nn.Autocast;
import io.llava4j.nn.InferenceMatrix;
import io.llava4j.nn.Linear;
import io.llava4j.nn.RmsNorm;
import io.llava4j.nn.StreamedWeight;
import io.llava4j.nn.VectorGemv;
import io.llava4j.nn.quant.RowwiseInt8;
import org.bytedeco.pytorch.Tensor;

import java.nio.ByteBuffer;

/**
 * One decoding step of a {@link Llama} for one sequence — one new position against its {@link KvCache} — computed in
 * Java on Java arrays, as {@link Llama.Model#forwardCached} computes it with libtorch: per decoder layer RMSNorm, the
 * stacked q/k/v product (+ bias), rotary embeddings, the new key and value written into the cache, attention over every
 * cached position (grouped-query heads), o, the residual, RMSNorm, the stacked gate/up product, SiLU(gate)·up, down,
 * the residual; then the final norm. Activations stay fp32 as under autocast; the products round as libtorch's
 * products do ({@link StreamedWeight#multiply}).
 *
 * <p>Why: a step of a small model is some ninety small libtorch calls a layer, each with its own dispatch and, on two
 * threads, an OpenMP wake-up; for the 134 M bench LLM they took as long as streaming its weights (bench/README.md,
 * decode). Here a layer is four matrix products split over a {@link CpuTeam}, attention split over heads, and a few
 * loops, with no per-step allocation beyond a few small arrays.
 *
 * <p>Made by {@link Llama#packForInference} where every decoder projection is held for inference (row-major
 * {@link StreamedWeight}s multiply here; oneDNN's blocked matrices through a tensor each) and the JVM has the vector
 * API; the head and the embedding stay libtorch's.
 */
final class LlamaDecodeStep {
    private static final class Layer {
        float[] inputNorm, postNorm;   // [h]
        float inputEps, postEps;
        Product qkv, o, gateUp, down;  // qkv with its bias
    }

    /** y = W·x (+ b) for one row in Java arrays: the vector loops, or libtorch's product through a tensor. */
    private interface Product {
        void apply(float[] x, float[] y);
    }

    private static Product product(InferenceMatrix m, Tensor bias) {
        if (m instanceof StreamedWeight s) {
            float[] b = bias == null ? null : s.biasValues(bias);
            return (x, y) -> s.multiply(x, y, b);
        }
        return (x, y) -> { // oneDNN's blocked matrix: rounds as the vector loops do (bf16 in and out where it is bf16)
            try (var scope = new org.bytedeco.javacpp.PointerScope()) {
                float[] r = Tensors.toFloats(m.linear(Tensors.floats(x, 1, x.length), bias));
                System.arraycopy(r, 0, y, 0, r.length);
            }
        };
    }

    /**
     * One projection's product, or null where the step cannot run it: held for inference ({@link Linear#inferenceMatrix}),
     * or int8 codes ({@code --load_8bit}) multiplied in place ({@link RowwiseInt8#multiply}) or by libtorch's int8 kernel
     * through a tensor, as {@link RowwiseInt8#javaProduct} chooses (in bf16 where autocast's GEMMs are, the bias added
     * after, as {@code QuantizedLinear} adds it); not with an adapter or another format.
     */
    private static Product product(Linear l) {
        if (l.lora() != null) return null;
        if (l.inferenceMatrix() != null) return product(l.inferenceMatrix(), l.bias);
        if (l.quantized() == null || !(l.quantized().weight instanceof RowwiseInt8 q) || !RowwiseInt8.javaProductAvailable()) return null;
        float[] b = l.bias == null ? null : Tensors.toFloats(l.bias.to(org.bytedeco.pytorch.global.torch.ScalarType.Float));
        return (x, y) -> {
            boolean bf16 = Autocast.gemm() == org.bytedeco.pytorch.global.torch.ScalarType.BFloat16;
            if (!q.javaProduct(bf16)) {
                try (var scope = new org.bytedeco.javacpp.PointerScope()) {
                    float[] r = Tensors.toFloats(l.forward(Tensors.floats(x, 1, (int) l.weight.size(1))));
                    System.arraycopy(r, 0, y, 0, r.length);
                }
                return;
            }
            q.multiply(x, 1, y, bf16);
            if (b != null) for (int o = 0; o < b.length; o++) y[o] += b[o];
        };
    }

    /** The layers' products one after another, their outputs side by side as a stacked matrix gives them; null if any is. */
    private static Product stacked(Linear... layers) {
        Product[] parts = new Product[layers.length];
        int[] outs = new int[layers.length];
        for (int i = 0; i < layers.length; i++) {
            parts[i] = product(layers[i]);
            if (parts[i] == null) return null;
            outs[i] = (int) layers[i].weight.size(0);
        }
        int widest = java.util.Arrays.stream(outs).max().getAsInt();
        ThreadLocal<float[]> buffer = ThreadLocal.withInitial(() -> new float[widest]); // steps may run on several threads
        return (x, y) -> {
            float[] part = buffer.get();
            for (int i = 0, at = 0; i < parts.length; at += outs[i], i++) {
                parts[i].apply(x, part);
                System.arraycopy(part, 0, y, at, outs[i]);
            }
        };
    }

    private final Llama.Model model;
    private final Layer[] layers;
    private final float[] finalNorm;   // [h]
    private final float finalEps;
    private final int h, heads, kvHeads, hd, inter;

    private LlamaDecodeStep(Llama.Model model, Layer[] layers, int h, int heads, int kvHeads, int hd, int inter) {
        this.model = model;
        this.layers = layers;
        this.finalNorm = Tensors.toFloats(model.norm.weight);
        this.finalEps = (float) model.norm.eps();
        this.h = h;
        this.heads = heads;
        this.kvHeads = kvHeads;
        this.hd = hd;
        this.inter = inter;
    }

    /**
     * The step for {@code model} as packed, or null where it cannot run here: a decoder projection not held for
     * inference ({@link Llama#packForInference}: an adapter, a quantized or plain weight), a JVM without the vector
     * API, or a model off the CPU.
     */
    static LlamaDecodeStep of(Llama.Model model) {
        if (!StreamedWeight.available() || !io.llava4j.engine.Device.isCpu() || model.layers.isEmpty()) return null;
        VectorGemv.warmUp();
        Layer[] ls = new Layer[model.layers.size()];
        Llama.Attention a0 = model.layers.get(0).selfAttn;
        int h = (int) model.norm.weight.size(0), heads = (int) a0.heads, kvHeads = (int) a0.kvHeads, hd = (int) a0.headDim;
        if (hd % 2 != 0 || heads % kvHeads != 0) return null;
        int inter = -1;
        for (int i = 0; i < ls.length; i++) {
            Llama.DecoderLayer l = model.layers.get(i);
            Llama.Attention a = l.selfAttn;
            Llama.Mlp m = l.mlp;
            Layer L = new Layer();
            L.qkv = a.qkv != null ? product(a.qkv.matrix(), a.qkv.bias()) : stacked(a.qProj, a.kProj, a.vProj);
            L.o = product(a.oProj);
            L.gateUp = m.gateUp != null ? product(m.gateUp.matrix(), null) : stacked(m.gateProj, m.upProj);
            L.down = product(m.downProj);
            if (L.qkv == null || L.o == null || L.gateUp == null || L.down == null) return null;
            L.inputNorm = Tensors.toFloats(l.inputLayernorm.weight);
            L.postNorm = Tensors.toFloats(l.postAttentionLayernorm.weight);
            L.inputEps = (float) l.inputLayernorm.eps();
            L.postEps = (float) l.postAttentionLayernorm.eps();
            inter = (int) m.gateProj.weight.size(0);
            ls[i] = L;
        }
        return new LlamaDecodeStep(model, ls, h, heads, kvHeads, hd, inter);
    }

    /** x [1, 1, h] fp32 (the new position's input embedding) → [1, 1, h] final hidden state; the cache advances by one. */
    Tensor forward(Tensor x, KvCache cache) {
        long past = cache.length();
        if (past + 1 > cache.capacity())
            throw new IllegalStateException("KV cache holds " + cache.capacity() + " positions; " + past + " used, 1 more asked");
        float[] cos, sin; // [hd] each: the new position's rotary tables, as libtorch's path makes them
        try (var scope = new org.bytedeco.javacpp.PointerScope()) {
            Tensor[] cs = model.rope.cosSin(Tensors.longs(new long[]{past}, 1, 1), past + 1);
            cos = Tensors.toFloats(cs[0]);
            sin = Tensors.toFloats(cs[1]);
        }
        float[] xs = Tensors.toFloats(x);                  // [h] the residual stream
        float[] n = new float[h], attn = new float[heads * hd], o = new float[h], act = new float[inter];
        float[] qkv = new float[(heads + 2 * kvHeads) * hd], gu = new float[2 * inter];
        CpuTeam team = CpuTeam.of(io.llava4j.engine.Engine.threads());
        int pos = (int) past, capacity = (int) cache.capacity();
        for (int i = 0; i < layers.length; i++) {
            Layer L = layers[i];
            rmsNorm(xs, L.inputNorm, L.inputEps, n);
            L.qkv.apply(n, qkv);
            for (int head = 0; head < heads + kvHeads; head++) rotate(qkv, head * hd, cos, sin); // q heads, then k heads
            ByteBuffer keys = cache.keyBuffer(i), values = cache.valueBuffer(i);
            int kAt = heads * hd, vAt = (heads + kvHeads) * hd;
            for (int g = 0; g < kvHeads; g++) {
                int row = ((g * capacity) + pos) * hd * 4; // batch row 0: [nkv, capacity, hd]
                for (int e = 0; e < hd; e++) {
                    keys.putFloat(row + 4 * e, qkv[kAt + g * hd + e]);
                    values.putFloat(row + 4 * e, qkv[vAt + g * hd + e]);
                }
            }
            attend(team, qkv, keys, values, pos + 1, capacity, attn);
            L.o.apply(attn, o);
            for (int e = 0; e < h; e++) xs[e] += o[e];
            rmsNorm(xs, L.postNorm, L.postEps, n);
            L.gateUp.apply(n, gu);
            VectorGemv.siluTimesUp(gu, inter, act);
            L.down.apply(act, o);
            for (int e = 0; e < h; e++) xs[e] += o[e];
        }
        cache.advance(1);
        rmsNorm(xs, finalNorm, finalEps, n);
        return Tensors.floats(n, 1, 1, h);
    }

    /** out = w · x · rsqrt(mean(x²) + eps), in fp32 (HF's LlamaRMSNorm). */
    private static void rmsNorm(float[] x, float[] w, float eps, float[] out) {
        float ss = 0;
        for (float v : x) ss += v * v;
        float r = (float) (1.0 / Math.sqrt(ss / x.length + eps));
        for (int e = 0; e < x.length; e++) out[e] = w[e] * (x[e] * r);
    }

    /** One head's rotary embedding in place: x·cos + rotate_half(x)·sin, with sin's first half negated as the tables hold it. */
    private void rotate(float[] v, int at, float[] cos, float[] sin) {
        int half = hd / 2;
        for (int e = 0; e < half; e++) {
            float a = v[at + e], b = v[at + half + e];
            v[at + e] = a * cos[e] + b * sin[e];
            v[at + half + e] = b * cos[half + e] + a * sin[half + e];
        }
    }

    /** Each team member's scores buffer, reused from step to step (no garbage per layer). */
    private static final ThreadLocal<float[][]> SCORES = ThreadLocal.withInitial(() -> new float[][]{new float[0]});

    private static float[] scores(int length) {
        float[][] b = SCORES.get();
        if (b[0].length < length) b[0] = new float[Math.max(length, 2 * b[0].length)];
        return b[0];
    }

    /** Each query head against the cached keys and values of its key/value head, positions [0, length). */
    private void attend(CpuTeam team, float[] qkv, ByteBuffer keys, ByteBuffer values, int length, int capacity, float[] out) {
        float scale = (float) (1.0 / Math.sqrt(hd));
        int group = heads / kvHeads;
        team.run(heads, 1, (from, to) -> {
            float[] p = scores(length);
            for (int head = from; head < to; head++) {
                int base = (head / group) * capacity * hd * 4, q = head * hd;
                float max = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < length; j++) {
                    p[j] = VectorGemv.dot(qkv, q, keys, base + j * hd * 4, hd) * scale;
                    max = Math.max(max, p[j]);
                }
                float sum = VectorGemv.expShifted(p, length, max);
                if (VectorGemv.weightedRowsFit(hd)) {
                    VectorGemv.weightedRows(p, length, 1f / sum, values, base, hd * 4, out, head * hd, hd);
                } else {
                    java.util.Arrays.fill(out, head * hd, head * hd + hd, 0f);
                    for (int j = 0; j < length; j++) VectorGemv.axpy(p[j] / sum, values, base + j * hd * 4, out, head * hd, hd);
                }
            }
        });
    }
}
