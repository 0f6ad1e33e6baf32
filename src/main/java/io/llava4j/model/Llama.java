package io.llava4j.model;

import io.llava4j.config.RopeScaling;
import io.llava4j.config.TextConfig;
import io.llava4j.nn.Autocast;
import io.llava4j.nn.Embedding;
import io.llava4j.nn.FusedProjection;
import io.llava4j.nn.Linear;
import io.llava4j.nn.RmsNorm;
import io.llava4j.nn.Scopes;
import org.bytedeco.pytorch.Module;
import org.bytedeco.pytorch.ModuleListImpl;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

import java.util.ArrayList;
import java.util.List;

/**
 * HF {@code LlamaForCausalLM}, {@code MistralForCausalLM} or {@code Qwen2ForCausalLM} — one architecture: Qwen2 only adds
 * biases to q/k/v ({@link TextConfig#qkvBias}) and usually ties the head to the embedding (registered as {@code language_model}: {@code model.embed_tokens}, {@code model.layers.N...},
 * {@code model.norm}, {@code lm_head}; no lm_head with tied embeddings).
 */
public class Llama extends Module {
    public final Model model;
    public final Linear lmHead; // [vocab, h]; null when tied to embed_tokens
    /** Called around each decoder layer in {@link #checkpointedBackward} (ZeRO stage 3 gathers its parameters there). */
    private LayerHooks layerHooks = LayerHooks.NONE;

    public Llama(TextConfig c) {
        model = register_module("model", new Model(c));
        lmHead = c.tieWordEmbeddings() ? null : register_module("lm_head", new Linear(c.hiddenSize(), c.vocabSize(), false));
    }

    /** [B, T, h] input embeddings → [B, T, vocab] logits. */
    public Tensor forward(Tensor embeds) {
        return head(model.forward(embeds));
    }

    /** Inference only: the tied head read in place from the embedding table by the vector loops, or null. */
    io.llava4j.nn.StreamedWeight tiedHead;

    /** [.., h] final hidden states → [.., vocab] logits (lm_head, or the tied embedding table). */
    public Tensor head(Tensor h) {
        if (lmHead != null) return lmHead.forward(h);
        return tiedHead != null ? tiedHead.linear(h, null) : Autocast.linear(h, model.embedTokens.weight, null);
    }

    /** How many of the lowest decoder layers {@link #checkpointedBackward} recomputes; those above keep their graph. */
    private int recomputedLayers = Integer.MAX_VALUE;

    /**
     * {@link #checkpointedBackward} recomputes only the lowest {@code n} decoder layers (all by default); the layers above
     * run with their graph in the forward and keep their activations, as without checkpointing (Megatron-LM's
     * {@code --recompute-num-layers}, block method): less recomputation for more memory. Not with {@link #layerHooks}.
     */
    public void recomputeLayers(int n) {
        if (n < 0) throw new IllegalArgumentException("layers to recompute must be >= 0, got " + n);
        this.recomputedLayers = n;
    }

    /** Sets what {@link #checkpointedBackward} calls around each decoder layer ({@link LayerHooks#NONE}: nothing). */
    public void layerHooks(LayerHooks hooks) {
        this.layerHooks = hooks;
    }

    /**
     * Gradient checkpointing (HF's {@code gradient_checkpointing_enable}, per decoder layer): the forward runs without a
     * graph, keeping only each layer's input [B, T, h]; the backward recomputes one layer at a time with its graph and
     * back-propagates through it, so activation memory is one layer's instead of all of them. Gradients equal those of
     * the plain backward. Layers below the lowest one that trains are recomputed only when {@code embeds} needs a
     * gradient (the projector, embed_tokens). With {@link #recomputeLayers} below the layer count, only that many of the
     * lowest layers go this way; the ones above run with their graph.
     *
     * @param embeds [B, T, h] input embeddings (with their graph to the projector / embedding table)
     * @param loss   final hidden states [B, T, h] (after the norm) → the scalar loss (the caller applies the head)
     * @param scale  the loss is multiplied by this before the backward (gradient accumulation)
     * @return the unscaled loss
     */
    public double checkpointedBackward(Tensor embeds, java.util.function.UnaryOperator<Tensor> loss, double scale) {
        List<DecoderLayer> layers = model.layers;
        int recomputed = layerHooks == LayerHooks.NONE ? Math.min(recomputedLayers, layers.size()) : layers.size();
        Tensor[] cosSin = model.rope.cosSin(embeds.size(1)); // [T, hd] each
        List<Tensor> inputs = new ArrayList<>();
        Tensor x = embeds.detach();
        try (org.bytedeco.pytorch.NoGradGuard g = new org.bytedeco.pytorch.NoGradGuard()) {
            for (int i = 0; i < recomputed; i++) {
                DecoderLayer layer = layers.get(i);
                inputs.add(x);
                Tensor in = x;
                layerHooks.gather(i);
                x = Scopes.keep(() -> layer.forward(in, cosSin[0], cosSin[1]));
                layerHooks.release(i);
            }
        }
        Tensor top = x.detach().requires_grad_(true); // [B, T, h], the leaf the kept layers' and the head's backward stops at
        double value;
        Tensor grad;
        {
            Tensor h = top;
            for (int i = recomputed; i < layers.size(); i++) { // the layers not recomputed, with their graph
                DecoderLayer layer = layers.get(i);
                Tensor in = h;
                h = Scopes.keep(() -> layer.forward(in, cosSin[0], cosSin[1]));
            }
            Tensor l = loss.apply(model.norm.forward(h));
            value = l.item_double();
            l.mul(new Scalar(scale)).backward();
            grad = new Tensor(top.grad());
        }
        int lowest = 0; // lowest layer the backward must reach
        if (!embeds.requires_grad()) {
            lowest = layers.size();
            for (int i = 0; i < layers.size(); i++) if (trains(layers.get(i))) { lowest = i; break; }
        }
        for (int i = recomputed - 1; i >= 0; i--) {
            layerHooks.gather(i);
            if (i < lowest) { // not recomputed: no gradient reaches it
                layerHooks.backwardDone(i);
                continue;
            }
            DecoderLayer layer = layers.get(i);
            Tensor in0 = inputs.get(i), gOut = grad;
            grad = Scopes.keep(() -> {
                // this layer's backward ends before the next one is recomputed: quantized weights reuse one buffer
                try (var reuse = io.llava4j.nn.quant.DequantBuffer.layerAtATime()) {
                    Tensor in = in0.detach().requires_grad_(true);
                    layer.forward(in, cosSin[0], cosSin[1]).backward(gOut, new org.bytedeco.pytorch.BoolOptional(), false,
                            new org.bytedeco.pytorch.TensorArrayRefOptional());
                    return new Tensor(in.grad());
                }
            });
            layerHooks.backwardDone(i);
        }
        if (embeds.requires_grad() && lowest == 0)
            embeds.backward(grad, new org.bytedeco.pytorch.BoolOptional(), false, new org.bytedeco.pytorch.TensorArrayRefOptional());
        return value;
    }

    private static boolean trains(Module m) {
        TensorVector ps = m.parameters(true);
        for (long i = 0; i < ps.size(); i++) if (ps.get(i).requires_grad()) return true;
        return false;
    }

    /**
     * Incremental decoding: runs {@code embeds} [B, T, h] as the positions after those already in {@code cache}, appends
     * their keys and values to it and returns the final hidden states [B, T, h] (after the norm; {@link #head} maps
     * them to the vocabulary). A prompt is run once (prefill, T = its length), then one position at a time (T = 1).
     *
     * @param positions [B, T] int64 rotary positions (a left-padded sample counts from its first real token); null =
     *                  {@code cache.length() + t} for every sample
     * @param keyValid  [B, cache.length() + T] bool, false at padding keys; null = no padding
     */
    public Tensor forwardCached(Tensor embeds, Tensor positions, Tensor keyValid, KvCache cache) {
        return model.forwardCached(embeds, positions, keyValid, cache);
    }

    /**
     * One batched decoding step: row r of {@code embeds} [M, 1, h] is the next token of the request whose cache is
     * {@code batch}'s row r, at that cache's position. The linear layers run once for all M rows; attention runs per
     * row against that row's own cache (no padding, no mask), so each row computes what {@link #forwardCached} computes
     * for it alone. Appends each row's key and value to its cache; returns the final hidden states [M, 1, h].
     */
    public Tensor forwardDecode(Tensor embeds, BatchKvCache batch) {
        return model.forwardDecode(embeds, batch);
    }

    /**
     * Inference only: every decoder projection and the untied head keep their weights in {@code type} in the layout
     * chosen for decoding ({@link Linear#packForInference}; their plain parameters are released), each layer's q/k/v and
     * gate/up projections stacked into one matrix each where they can be ({@link FusedProjection}). The embedding table
     * stays as it is; a tied head multiplies it in place with the vector loops where the table is bf16 and the JVM has
     * the vector API ({@link io.llava4j.nn.StreamedWeight#over}: Qwen2's 151,936-row table took 9 ms a decoding step
     * that way against 15 ms through libtorch's bf16 product, bench/README.md). Where every decoder projection is then
     * held so and the JVM has the vector API, one sequence's decoding steps run in Java ({@link LlamaDecodeStep}).
     *
     * @return bytes held in the inference layouts
     */
    public long packForInference(torch.ScalarType type) {
        return packForInference(type, path -> {});
    }

    /**
     * As {@link #packForInference(torch.ScalarType)}, telling {@code packed} each module path below this model whose
     * weight is now held packed ({@code model.layers.N.self_attn.q_proj}, …, {@code lm_head}), layer by layer as it goes.
     */
    public long packForInference(torch.ScalarType type, java.util.function.Consumer<String> packed) {
        long bytes = 0;
        java.util.Map<String, Linear> projections = layerProjections();
        for (int i = 0; i < model.layers.size(); i++) {
            DecoderLayer l = model.layers.get(i);
            bytes += l.selfAttn.fuseForInference(type) + l.mlp.fuseForInference(type);
            String prefix = "model.layers." + i + ".";
            for (var e : projections.entrySet()) {
                if (!e.getKey().startsWith(prefix)) continue;
                bytes += e.getValue().packForInference(type); // what did not fuse
                if (e.getValue().isPacked()) packed.accept(e.getKey());
            }
        }
        if (lmHead != null) {
            bytes += lmHead.packForInference(type);
            if (lmHead.isPacked()) packed.accept("lm_head");
        }
        if (lmHead == null && model.embedTokens.weight.scalar_type().intern() == torch.ScalarType.BFloat16)
            tiedHead = io.llava4j.nn.StreamedWeight.over(model.embedTokens.weight, type == torch.ScalarType.BFloat16);
        model.decodeStep = LlamaDecodeStep.of(model);
        return bytes;
    }

    /**
     * The decoder layers' linear projections by module path below this model, in layer order:
     * {@code model.layers.N.self_attn.{q,k,v,o}_proj} and {@code model.layers.N.mlp.{gate,up,down}_proj}.
     */
    public java.util.Map<String, Linear> layerProjections() {
        java.util.Map<String, Linear> out = new java.util.LinkedHashMap<>();
        for (int i = 0; i < model.layers.size(); i++) {
            DecoderLayer l = model.layers.get(i);
            String p = "model.layers." + i + ".";
            out.put(p + "self_attn.q_proj", l.selfAttn.qProj);
            out.put(p + "self_attn.k_proj", l.selfAttn.kProj);
            out.put(p + "self_attn.v_proj", l.selfAttn.vProj);
            out.put(p + "self_attn.o_proj", l.selfAttn.oProj);
            out.put(p + "mlp.gate_proj", l.mlp.gateProj);
            out.put(p + "mlp.up_proj", l.mlp.upProj);
            out.put(p + "mlp.down_proj", l.mlp.downProj);
        }
        return out;
    }

    public static class Model extends Module {
        public final Embedding embedTokens; // [vocab, h]
        public final List<DecoderLayer> layers = new ArrayList<>();
        public final RmsNorm norm;
        final Rope rope;

        Model(TextConfig c) {
            embedTokens = register_module("embed_tokens", new Embedding(c.vocabSize(), c.hiddenSize()));
            ModuleListImpl list = register_module("layers", new ModuleListImpl());
            for (int i = 0; i < c.numHiddenLayers(); i++) {
                DecoderLayer l = new DecoderLayer(c);
                list.push_back(l);
                layers.add(l);
            }
            norm = register_module("norm", new RmsNorm(c.hiddenSize(), c.rmsNormEps()));
            rope = new Rope(c.headDim(), c.ropeTheta(), c.ropeScaling(), c.maxPositionEmbeddings());
        }

        /**
         * [B, T, h] → [B, T, h] (after the final norm). When {@code x} needs no gradient (projector and embed_tokens
         * frozen), the layers below the lowest one that trains run without a graph: the backward stops there.
         */
        public Tensor forward(Tensor x) {
            Tensor[] cosSin = rope.cosSin(x.size(1)); // [T, hd] each
            int lowest = 0; // lowest layer the backward must reach
            if (!x.requires_grad())
                while (lowest < layers.size() && !trains(layers.get(lowest))) lowest++;
            try (org.bytedeco.pytorch.NoGradGuard g = lowest > 0 ? new org.bytedeco.pytorch.NoGradGuard() : null) {
                for (int i = 0; i < lowest; i++) x = layer(i, x, cosSin);
            }
            for (int i = lowest; i < layers.size(); i++) x = layer(i, x, cosSin);
            return norm.forward(x);
        }

        private Tensor layer(int i, Tensor x, Tensor[] cosSin) {
            return Scopes.keep(() -> layers.get(i).forward(x, cosSin[0], cosSin[1]));
        }

        /** Inference only: one sequence's decoding step in Java ({@link LlamaDecodeStep}), or null. */
        LlamaDecodeStep decodeStep;

        Tensor forwardCached(Tensor x, Tensor positions, Tensor keyValid, KvCache cache) {
            long b = x.size(0), t = x.size(1), past = cache.length();
            if (decodeStep != null && b == 1 && t == 1 && positions == null && keyValid == null
                    && x.scalar_type().intern() == torch.ScalarType.Float && cache.javaReadable())
                return decodeStep.forward(x, cache);
            if (past + t > cache.capacity())
                throw new IllegalStateException("KV cache holds " + cache.capacity() + " positions; " + past + " used, " + t + " more asked");
            if (positions == null) positions = io.llava4j.engine.Device.place(torch.arange(new Scalar(past), new Scalar(past + t))).unsqueeze(0).expand(b, t);
            Tensor[] cosSin = rope.cosSin(positions, past + t); // [B, 1, T, hd] each
            Tensor mask = keyValid == null && (t == 1 || past == 0) ? null : attentionMask(keyValid, b, t, past);
            boolean causal = mask == null && t > 1;
            for (int i = 0; i < layers.size(); i++) { // each layer in its own scope: its temporaries go as it ends
                Tensor in = x, m = mask;
                int li = i;
                x = Scopes.keep(() -> layers.get(li).forwardCached(in, cosSin[0], cosSin[1], m, causal, cache.keys[li], cache.values[li], past));
            }
            cache.advance(t);
            return norm.forward(x);
        }

        Tensor forwardDecode(Tensor x, BatchKvCache batch) {
            long m = x.size(0);
            if (x.size(1) != 1 || m != batch.rows())
                throw new IllegalArgumentException("a decoding step takes [" + batch.rows() + ", 1, h] embeddings, got " + java.util.Arrays.toString(x.sizes().vec().get()));
            Tensor[] cosSin = rope.cosSin(batch.lengths()); // [M, 1, 1, hd] each
            for (int i = 0; i < layers.size(); i++) {
                Tensor in = x;
                int li = i;
                x = Scopes.keep(() -> layers.get(li).forwardDecode(in, cosSin[0], cosSin[1], batch, li));
            }
            batch.advance();
            return norm.forward(x);
        }

        /**
         * [B, 1, T, past + T] bool: query i (position past + i) sees key j when j <= past + i and key j is not padding;
         * it always sees itself, so a padding query's row is never empty (its output is unused).
         */
        private static Tensor attentionMask(Tensor keyValid, long b, long t, long past) {
            Tensor q = io.llava4j.engine.Device.place(torch.arange(new Scalar(past), new Scalar(past + t))).unsqueeze(1); // [T, 1]
            Tensor k = io.llava4j.engine.Device.place(torch.arange(new Scalar(past + t))).unsqueeze(0); // [1, S]
            Tensor m = k.le(q).unsqueeze(0).expand(b, t, past + t);                     // [B, T, S]
            if (keyValid != null) m = m.logical_and(keyValid.unsqueeze(1));
            return m.logical_or(k.eq(q).unsqueeze(0)).unsqueeze(1);
        }
    }

    /** x = x + attn(input_layernorm(x)); x = x + mlp(post_attention_layernorm(x)) */
    public static class DecoderLayer extends Module {
        final Attention selfAttn;
        final Mlp mlp;
        final RmsNorm inputLayernorm, postAttentionLayernorm;

        DecoderLayer(TextConfig c) {
            selfAttn = register_module("self_attn", new Attention(c));
            mlp = register_module("mlp", new Mlp(c));
            inputLayernorm = register_module("input_layernorm", new RmsNorm(c.hiddenSize(), c.rmsNormEps()));
            postAttentionLayernorm = register_module("post_attention_layernorm", new RmsNorm(c.hiddenSize(), c.rmsNormEps()));
        }

        Tensor forward(Tensor x, Tensor cos, Tensor sin) {
            x = x.add(selfAttn.forward(inputLayernorm.forward(x), cos, sin));
            return x.add(mlp.forward(postAttentionLayernorm.forward(x)));
        }

        Tensor forwardCached(Tensor x, Tensor cos, Tensor sin, Tensor mask, boolean causal, Tensor kCache, Tensor vCache, long past) {
            x = x.add(selfAttn.forwardCached(inputLayernorm.forward(x), cos, sin, mask, causal, kCache, vCache, past));
            return x.add(mlp.forward(postAttentionLayernorm.forward(x)));
        }

        Tensor forwardDecode(Tensor x, Tensor cos, Tensor sin, BatchKvCache batch, int layer) {
            x = x.add(selfAttn.forwardDecode(inputLayernorm.forward(x), cos, sin, batch, layer));
            return x.add(mlp.forward(postAttentionLayernorm.forward(x)));
        }
    }

    /** Causal grouped-query attention with rotary position embeddings (HF's rotate-half layout). */
    static class Attention extends Module {
        final Linear qProj, kProj, vProj, oProj;
        final long heads, kvHeads, headDim;
        FusedProjection qkv; // inference only: q, k and v in one matrix, or null

        Attention(TextConfig c) {
            heads = c.numAttentionHeads();
            kvHeads = c.numKeyValueHeads();
            headDim = c.headDim();
            boolean bias = c.qkvBias(); // Qwen2: q/k/v biased, o not
            qProj = register_module("q_proj", new Linear(c.hiddenSize(), heads * headDim, bias));
            kProj = register_module("k_proj", new Linear(c.hiddenSize(), kvHeads * headDim, bias));
            vProj = register_module("v_proj", new Linear(c.hiddenSize(), kvHeads * headDim, bias));
            oProj = register_module("o_proj", new Linear(heads * headDim, c.hiddenSize(), false));
        }

        /** x [.., h] → its queries [.., nh·hd], keys and values [.., nkv·hd]. */
        private Tensor[] project(Tensor x) {
            return qkv != null ? qkv.forward(x) : new Tensor[]{qProj.forward(x), kProj.forward(x), vProj.forward(x)};
        }

        /** Inference only: q, k and v stacked into one blocked matrix ({@link FusedProjection}); bytes packed, 0 where they stay apart. */
        long fuseForInference(torch.ScalarType type) {
            qkv = FusedProjection.pack(type, qProj, kProj, vProj);
            return qkv == null ? 0 : qkv.bytes();
        }

        Tensor forward(Tensor x, Tensor cos, Tensor sin) {
            long b = x.size(0), t = x.size(1);
            Tensor[] p = project(x);
            Tensor q = p[0].view(b, t, heads, headDim).transpose(1, 2);   // [B, nh, T, hd]
            Tensor k = p[1].view(b, t, kvHeads, headDim).transpose(1, 2); // [B, nkv, T, hd]
            Tensor v = p[2].view(b, t, kvHeads, headDim).transpose(1, 2); // [B, nkv, T, hd]
            q = Rope.apply(q, cos, sin);
            k = Rope.apply(k, cos, sin);
            Tensor a = Attn.sdpa(q, k, v, true, kvHeads != heads); // [B, nh, T, hd]
            return oProj.forward(a.transpose(1, 2).reshape(b, t, heads * headDim));
        }

        /** As {@link #forward}, with this step's keys/values written to the cache [B, nkv, capacity, hd] at {@code past}. */
        Tensor forwardCached(Tensor x, Tensor cos, Tensor sin, Tensor mask, boolean causal, Tensor kCache, Tensor vCache, long past) {
            long b = x.size(0), t = x.size(1);
            Tensor[] p = project(x);
            Tensor q = p[0].view(b, t, heads, headDim).transpose(1, 2);   // [B, nh, T, hd]
            Tensor k = p[1].view(b, t, kvHeads, headDim).transpose(1, 2); // [B, nkv, T, hd]
            Tensor v = p[2].view(b, t, kvHeads, headDim).transpose(1, 2); // [B, nkv, T, hd]
            q = Rope.apply(q, cos, sin);
            kCache.narrow(2, past, t).copy_(Rope.apply(k, cos, sin));
            vCache.narrow(2, past, t).copy_(v);
            Tensor keys = kCache.narrow(2, 0, past + t), vals = vCache.narrow(2, 0, past + t); // [B, nkv, past + T, hd]
            Tensor a = Attn.sdpa(q, keys, vals, mask, causal, kvHeads != heads); // [B, nh, T, hd]
            return oProj.forward(a.transpose(1, 2).reshape(b, t, heads * headDim));
        }

        /**
         * One token per row, x [M, 1, h]: the projections for all rows at once, then each row's key and value written to
         * its own cache (layer {@code layer}) at its length and its query attending to that cache alone.
         */
        Tensor forwardDecode(Tensor x, Tensor cos, Tensor sin, BatchKvCache batch, int layer) {
            long m = x.size(0);
            Tensor[] p = project(x);
            Tensor q = Rope.apply(p[0].view(m, 1, heads, headDim).transpose(1, 2), cos, sin);   // [M, nh, 1, hd]
            Tensor k = Rope.apply(p[1].view(m, 1, kvHeads, headDim).transpose(1, 2), cos, sin); // [M, nkv, 1, hd]
            Tensor v = p[2].view(m, 1, kvHeads, headDim).transpose(1, 2);                      // [M, nkv, 1, hd]
            Tensor a = Attn.oneBlasThread(() -> { // OpenBLAS's thread count set once for the rows, not once per row
                TensorVector rows = new TensorVector();
                for (int r = 0; r < m; r++) {
                    KvCache c = batch.row(r);
                    long past = c.length();
                    c.keys[layer].narrow(2, past, 1).copy_(k.narrow(0, r, 1));
                    c.values[layer].narrow(2, past, 1).copy_(v.narrow(0, r, 1));
                    Tensor keys = c.keys[layer].narrow(2, 0, past + 1), vals = c.values[layer].narrow(2, 0, past + 1); // [1, nkv, past + 1, hd]
                    rows.push_back(Attn.sdpa(q.narrow(0, r, 1), keys, vals, null, false, kvHeads != heads)); // [1, nh, 1, hd]
                }
                return torch.cat(rows, 0); // [M, nh, 1, hd]
            });
            return oProj.forward(a.transpose(1, 2).reshape(m, 1, heads * headDim));
        }
    }

    /** down(silu(gate(x)) · up(x)) */
    static class Mlp extends Module {
        final Linear gateProj, upProj, downProj;
        FusedProjection gateUp; // inference only: gate and up in one matrix, or null

        Mlp(TextConfig c) {
            gateProj = register_module("gate_proj", new Linear(c.hiddenSize(), c.intermediateSize(), false));
            upProj = register_module("up_proj", new Linear(c.hiddenSize(), c.intermediateSize(), false));
            downProj = register_module("down_proj", new Linear(c.intermediateSize(), c.hiddenSize(), false));
        }

        Tensor forward(Tensor x) {
            Tensor[] gu = gateUp != null ? gateUp.forward(x) : new Tensor[]{gateProj.forward(x), upProj.forward(x)};
            return downProj.forward(torch.silu(gu[0]).mul(gu[1]));
        }

        /** Inference only: gate and up stacked into one blocked matrix ({@link FusedProjection}); bytes packed, 0 where they stay apart. */
        long fuseForInference(torch.ScalarType type) {
            gateUp = FusedProjection.pack(type, gateProj, upProj);
            return gateUp == null ? 0 : gateUp.bytes();
        }
    }

    /**
     * Rotary embeddings: inv_freq = θ^(-2i/d); cos/sin of pos·inv_freq duplicated over both halves (the sin table's
     * first half negated, as {@link #apply} takes it). With
     * {@code rope_scaling} as HF's LlamaRotaryEmbedding variants: {@code linear} divides the positions by the factor;
     * {@code dynamic} (NTK) uses the base θ·(factor·T/max − (factor − 1))^(d/(d−2)) for a sequence of T > max positions.
     */
    static final class Rope {
        private final long headDim;
        private final double theta;
        private final RopeScaling scaling;  // null: none
        private final long maxPositions;    // max_position_embeddings, for dynamic scaling
        private final Tensor invFreq;       // [hd/2]

        Rope(long headDim, double theta) {
            this(headDim, theta, null, 0);
        }

        Rope(long headDim, double theta, RopeScaling scaling, long maxPositions) {
            this.headDim = headDim;
            this.theta = theta;
            this.scaling = scaling;
            this.maxPositions = maxPositions;
            invFreq = invFreq(theta);
        }

        private Tensor invFreq(double base) {
            Tensor i = torch.arange(new Scalar(0), new Scalar(headDim), new Scalar(2)).to(torch.ScalarType.Float); // [hd/2]
            return torch.pow(new Scalar(base), i.div(new Scalar((double) headDim))).reciprocal();
        }

        /**
         * pos · inv_freq for positions [..., 1] (fp32) in a sequence of {@code length} positions, with rope_scaling:
         * linear divides the positions by the factor; dynamic (NTK) raises the base once the length passes
         * max_position_embeddings, as HF's LlamaDynamicNTKScalingRotaryEmbedding does.
         */
        private Tensor frequencies(Tensor pos, long length) {
            Tensor inv = invFreq;
            if (scaling != null && scaling.type().equals(RopeScaling.LINEAR)) {
                pos = pos.div(new Scalar(scaling.factor()));
            } else if (scaling != null && scaling.type().equals(RopeScaling.DYNAMIC) && length > maxPositions) {
                double f = scaling.factor();
                inv = invFreq(theta * Math.pow(f * length / maxPositions - (f - 1), headDim / (headDim - 2.0)));
            }
            return pos.mul(io.llava4j.engine.Device.place(inv));
        }

        Tensor[] cosSin(long t) {
            Tensor pos = io.llava4j.engine.Device.place(torch.arange(new Scalar(t)).to(torch.ScalarType.Float)); // [T]
            Tensor fr = frequencies(pos.unsqueeze(1), t);                         // [T, hd/2]
            Tensor emb = torch.cat(new TensorVector(fr, fr), -1);                  // [T, hd]
            return new Tensor[]{emb.cos(), signedSin(emb)};
        }

        /**
         * cos/sin at given positions: [B, T] → [B, 1, T, hd] each (broadcast over heads); {@code length} = the sequence
         * length so far, which dynamic scaling depends on (as HF recomputes its table once the length passes the limit).
         */
        Tensor[] cosSin(Tensor positions, long length) {
            Tensor fr = frequencies(positions.to(torch.ScalarType.Float).unsqueeze(2), length); // [B, T, hd/2]
            Tensor emb = torch.cat(new TensorVector(fr, fr), -1).unsqueeze(1);          // [B, 1, T, hd]
            return new Tensor[]{emb.cos(), signedSin(emb)};
        }

        /** sin(emb) with its first half negated, the factor {@link #apply} multiplies the rolled x by. */
        private Tensor signedSin(Tensor emb) {
            Tensor s = emb.sin();
            long half = headDim / 2;
            return torch.cat(new TensorVector(s.narrow(-1, 0, half).neg(), s.narrow(-1, half, half)), -1);
        }

        /**
         * cos/sin of one new position per row, each row at its own {@code lengths[r]} (its cache length): [M, 1, 1, hd]
         * each, the values {@link #cosSin(Tensor, long)} gives that row alone (dynamic scaling per row's length).
         */
        Tensor[] cosSin(long[] lengths) {
            int m = lengths.length;
            boolean perRow = scaling != null && scaling.type().equals(RopeScaling.DYNAMIC);
            if (!perRow) {
                Tensor pos = io.llava4j.engine.Tensors.longs(lengths, m, 1); // [M, 1]
                return cosSin(pos, 0);
            }
            TensorVector cos = new TensorVector(), sin = new TensorVector();
            for (long l : lengths) {
                Tensor[] cs = cosSin(io.llava4j.engine.Tensors.longs(new long[]{l}, 1, 1), l + 1); // [1, 1, 1, hd]
                cos.push_back(cs[0]);
                sin.push_back(cs[1]);
            }
            return new Tensor[]{torch.cat(cos, 0), torch.cat(sin, 0)};
        }

        /**
         * x·cos + rotate_half(x)·sin, x [B, n, T, hd], with {@code signedSin} = (−sin₁, sin₂) from {@link #cosSin}:
         * rotate_half(x)·sin = (−x₂·sin₁, x₁·sin₂) = roll(x, hd/2)·(−sin₁, sin₂), bit for bit (negation is exact), in
         * four kernels instead of six (a decoding step is this small: each kernel's fixed cost counts).
         */
        static Tensor apply(Tensor x, Tensor cos, Tensor signedSin) {
            long half = x.size(-1) / 2;
            return x.mul(cos).add(x.roll(new long[]{half}, new long[]{-1}).mul(signedSin));
        }
    }
}
