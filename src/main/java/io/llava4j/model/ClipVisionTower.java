package io.llava4j.model;

import io.llava4j.config.VisionConfig;
import io.llava4j.nn.Activation;
import io.llava4j.nn.Autocast;
import io.llava4j.nn.Embedding;
import io.llava4j.nn.LayerNorm;
import io.llava4j.nn.Linear;
import org.bytedeco.pytorch.Module;
import org.bytedeco.pytorch.ModuleListImpl;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

import java.util.ArrayList;
import java.util.List;
import java.util.function.UnaryOperator;

/**
 * HF {@code CLIPVisionModel} (registered as {@code vision_tower}: parameters {@code vision_model.embeddings...},
 * {@code vision_model.pre_layrnorm}, {@code vision_model.encoder.layers.N...}, {@code vision_model.post_layernorm}).
 *
 * <p>{@link #features} returns the hidden state LLaVA selects; {@code post_layernorm} is loaded but never applied. Layers
 * after the selected one are not run (their output is never used). The frozen prefix of the tower (embeddings and the
 * leading layers whose parameters are all frozen) runs under {@link NoGradGuard}: no autograd graph is built for it.
 */
public class ClipVisionTower extends VisionTower {
    public final VisionModel visionModel;

    public ClipVisionTower(VisionConfig c) {
        visionModel = register_module("vision_model", new VisionModel(c));
    }

    /**
     * Hidden state {@code layerIndex} of [embeddings after pre_layrnorm, after layer 1, ..., after layer N].
     *
     * @param pixels [B, C, H, W]
     * @return [B, 1 + P, h]
     */
    @Override
    public Tensor features(Tensor pixels, int layerIndex) {
        VisionModel v = visionModel;
        return encode(() -> v.preLayrnorm.forward(v.embeddings.forward(pixels)), layerIndex);
    }

    /** Stage 0: the embeddings and pre_layrnorm. */
    @Override
    boolean embeddingStageTrains() {
        return anyRequiresGrad(visionModel.embeddings) || anyRequiresGrad(visionModel.preLayrnorm);
    }

    @Override
    List<EncoderLayer> layers() {
        return visionModel.layers;
    }

    public static class VisionModel extends Module {
        public final Embeddings embeddings;
        public final LayerNorm preLayrnorm;
        public final List<EncoderLayer> layers = new ArrayList<>();
        public final LayerNorm postLayernorm;

        VisionModel(VisionConfig c) {
            embeddings = register_module("embeddings", new Embeddings(c));
            preLayrnorm = register_module("pre_layrnorm", new LayerNorm(c.hiddenSize(), c.layerNormEps()));
            Module encoder = register_module("encoder", new Module());
            ModuleListImpl list = encoder.register_module("layers", new ModuleListImpl());
            for (int i = 0; i < c.numHiddenLayers(); i++) {
                EncoderLayer l = new EncoderLayer(c);
                list.push_back(l);
                layers.add(l);
            }
            postLayernorm = register_module("post_layernorm", new LayerNorm(c.hiddenSize(), c.layerNormEps()));
        }
    }

    /** class embedding + conv patch embedding (no bias) + learned position embedding. */
    public static class Embeddings extends Module {
        public final Tensor classEmbedding;   // [h]
        public final Tensor patchEmbedding;   // [h, C, p, p] (registered as patch_embedding.weight)
        public final Embedding positionEmbedding; // [1 + P, h]
        private final long patch;

        Embeddings(VisionConfig c) {
            classEmbedding = io.llava4j.nn.Params.register(this, "class_embedding", torch.empty(c.hiddenSize()));
            Module conv = register_module("patch_embedding", new Module());
            patchEmbedding = io.llava4j.nn.Params.register(conv, "weight",
                    torch.empty(c.hiddenSize(), c.numChannels(), c.patchSize(), c.patchSize()));
            positionEmbedding = register_module("position_embedding", new Embedding(c.numPatches() + 1, c.hiddenSize()));
            patch = c.patchSize();
        }

        /** [B, C, H, W] → [B, 1 + P, h] */
        Tensor forward(Tensor px) {
            long b = px.size(0);
            Tensor p = Autocast.patchConv(px, patchEmbedding, patch); // [B, h, H/p, W/p]
            p = p.flatten(2, -1).transpose(1, 2); // [B, P, h]
            Tensor cls = Autocast.values(classEmbedding).view(1, 1, -1).expand(b, 1, -1); // [B, 1, h]
            return torch.cat(new TensorVector(cls, p), 1).add(Autocast.values(positionEmbedding.weight)); // [B, 1 + P, h]
        }
    }

    /** Pre-LN transformer block: x = x + attn(ln1(x)); x = x + mlp(ln2(x)). */
    public static class EncoderLayer extends Module {
        final Attention selfAttn;
        final LayerNorm layerNorm1;
        final Mlp mlp;
        final LayerNorm layerNorm2;

        public EncoderLayer(VisionConfig c) {
            selfAttn = register_module("self_attn", new Attention(c));
            layerNorm1 = register_module("layer_norm1", new LayerNorm(c.hiddenSize(), c.layerNormEps()));
            mlp = register_module("mlp", new Mlp(c));
            layerNorm2 = register_module("layer_norm2", new LayerNorm(c.hiddenSize(), c.layerNormEps()));
        }

        Tensor forward(Tensor x) {
            x = x.add(selfAttn.forward(layerNorm1.forward(x)));
            return x.add(mlp.forward(layerNorm2.forward(x)));
        }
    }

    /** Multi-head attention with biased q/k/v/out projections, scale head_dim^-0.5, no mask. */
    static class Attention extends Module {
        final Linear qProj, kProj, vProj, outProj;
        final long heads, headDim;

        Attention(VisionConfig c) {
            long h = c.hiddenSize();
            kProj = register_module("k_proj", new Linear(h, h, true));
            vProj = register_module("v_proj", new Linear(h, h, true));
            qProj = register_module("q_proj", new Linear(h, h, true));
            outProj = register_module("out_proj", new Linear(h, h, true));
            heads = c.numAttentionHeads();
            headDim = c.headDim();
        }

        Tensor forward(Tensor x) {
            long b = x.size(0), t = x.size(1);
            Tensor q = qProj.forward(x).view(b, t, heads, headDim).transpose(1, 2); // [B, nh, T, hd]
            Tensor k = kProj.forward(x).view(b, t, heads, headDim).transpose(1, 2);
            Tensor v = vProj.forward(x).view(b, t, heads, headDim).transpose(1, 2);
            Tensor a = Attn.sdpa(q, k, v, false, false); // [B, nh, T, hd]
            return outProj.forward(a.transpose(1, 2).reshape(b, t, heads * headDim));
        }
    }

    static class Mlp extends Module {
        final Linear fc1, fc2;
        final UnaryOperator<Tensor> act;

        Mlp(VisionConfig c) {
            fc1 = register_module("fc1", new Linear(c.hiddenSize(), c.intermediateSize(), true));
            fc2 = register_module("fc2", new Linear(c.intermediateSize(), c.hiddenSize(), true));
            act = Activation.of(c.hiddenAct());
        }

        Tensor forward(Tensor x) {
            return fc2.forward(act.apply(fc1.forward(x)));
        }
    }
}
