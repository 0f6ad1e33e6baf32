package io.llava4j.model;

import io.llava4j.config.TextConfig;
import io.llava4j.nn.Embedding;
import io.llava4j.nn.Linear;
import io.llava4j.nn.RmsNorm;
import org.bytedeco.pytorch.Module;
import org.bytedeco.pytorch.ModuleListImpl;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

import java.util.ArrayList;
import java.util.List;

/**
 * HF {@code LlamaForCausalLM} (registered as {@code language_model}: {@code model.embed_tokens}, {@code model.layers.N...},
 * {@code model.norm}, {@code lm_head}; no lm_head with tied embeddings).
 */
public class Llama extends Module {
    public final Model model;
    public final Linear lmHead; // [vocab, h]; null when tied to embed_tokens

    public Llama(TextConfig c) {
        model = register_module("model", new Model(c));
        lmHead = c.tieWordEmbeddings() ? null : register_module("lm_head", new Linear(c.hiddenSize(), c.vocabSize(), false));
    }

    /** [B, T, h] input embeddings → [B, T, vocab] logits. */
    public Tensor forward(Tensor embeds) {
        Tensor h = model.forward(embeds);
        return lmHead != null ? lmHead.forward(h) : torch.linear(h, model.embedTokens.weight);
    }

    public static class Model extends Module {
        public final Embedding embedTokens; // [vocab, h]
        public final List<DecoderLayer> layers = new ArrayList<>();
        public final RmsNorm norm;
        private final Rope rope;

        Model(TextConfig c) {
            embedTokens = register_module("embed_tokens", new Embedding(c.vocabSize(), c.hiddenSize()));
            ModuleListImpl list = register_module("layers", new ModuleListImpl());
            for (int i = 0; i < c.numHiddenLayers(); i++) {
                DecoderLayer l = new DecoderLayer(c);
                list.push_back(l);
                layers.add(l);
            }
            norm = register_module("norm", new RmsNorm(c.hiddenSize(), c.rmsNormEps()));
            rope = new Rope(c.headDim(), c.ropeTheta());
        }

        /** [B, T, h] → [B, T, h] (after the final norm) */
        public Tensor forward(Tensor x) {
            Tensor[] cosSin = rope.cosSin(x.size(1)); // [T, hd] each
            for (DecoderLayer layer : layers) x = layer.forward(x, cosSin[0], cosSin[1]);
            return norm.forward(x);
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
    }

    /** Causal grouped-query attention with rotary position embeddings (HF's rotate-half layout). */
    static class Attention extends Module {
        final Linear qProj, kProj, vProj, oProj;
        final long heads, kvHeads, headDim;

        Attention(TextConfig c) {
            heads = c.numAttentionHeads();
            kvHeads = c.numKeyValueHeads();
            headDim = c.headDim();
            qProj = register_module("q_proj", new Linear(c.hiddenSize(), heads * headDim, false));
            kProj = register_module("k_proj", new Linear(c.hiddenSize(), kvHeads * headDim, false));
            vProj = register_module("v_proj", new Linear(c.hiddenSize(), kvHeads * headDim, false));
            oProj = register_module("o_proj", new Linear(heads * headDim, c.hiddenSize(), false));
        }

        Tensor forward(Tensor x, Tensor cos, Tensor sin) {
            long b = x.size(0), t = x.size(1);
            Tensor q = qProj.forward(x).view(b, t, heads, headDim).transpose(1, 2);   // [B, nh, T, hd]
            Tensor k = kProj.forward(x).view(b, t, kvHeads, headDim).transpose(1, 2); // [B, nkv, T, hd]
            Tensor v = vProj.forward(x).view(b, t, kvHeads, headDim).transpose(1, 2); // [B, nkv, T, hd]
            q = Rope.apply(q, cos, sin);
            k = Rope.apply(k, cos, sin);
            Tensor a = Attn.sdpa(q, k, v, true, kvHeads != heads); // [B, nh, T, hd]
            return oProj.forward(a.transpose(1, 2).reshape(b, t, heads * headDim));
        }
    }

    /** down(silu(gate(x)) · up(x)) */
    static class Mlp extends Module {
        final Linear gateProj, upProj, downProj;

        Mlp(TextConfig c) {
            gateProj = register_module("gate_proj", new Linear(c.hiddenSize(), c.intermediateSize(), false));
            upProj = register_module("up_proj", new Linear(c.hiddenSize(), c.intermediateSize(), false));
            downProj = register_module("down_proj", new Linear(c.intermediateSize(), c.hiddenSize(), false));
        }

        Tensor forward(Tensor x) {
            return downProj.forward(torch.silu(gateProj.forward(x)).mul(upProj.forward(x)));
        }
    }

    /** Rotary embeddings: inv_freq = θ^(-2i/d); cos/sin of pos·inv_freq duplicated over both halves. */
    static final class Rope {
        private final Tensor invFreq; // [hd/2]

        Rope(long headDim, double theta) {
            Tensor i = torch.arange(new Scalar(0), new Scalar(headDim), new Scalar(2)).to(torch.ScalarType.Float); // [hd/2]
            invFreq = torch.pow(new Scalar(theta), i.div(new Scalar((double) headDim))).reciprocal();
        }

        Tensor[] cosSin(long t) {
            Tensor pos = torch.arange(new Scalar(t)).to(torch.ScalarType.Float); // [T]
            Tensor fr = pos.unsqueeze(1).mul(invFreq.unsqueeze(0));                 // [T, hd/2]
            Tensor emb = torch.cat(new TensorVector(fr, fr), -1);                  // [T, hd]
            return new Tensor[]{emb.cos(), emb.sin()};
        }

        /** x·cos + rotate_half(x)·sin, x [B, n, T, hd] */
        static Tensor apply(Tensor x, Tensor cos, Tensor sin) {
            long half = x.size(-1) / 2;
            Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
            Tensor rot = torch.cat(new TensorVector(x2.neg(), x1), -1);
            return x.mul(cos).add(rot.mul(sin));
        }
    }
}
