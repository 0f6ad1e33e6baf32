package io.llava4j.model;

import io.llava4j.config.VisionConfig;
import io.llava4j.nn.Autocast;
import io.llava4j.nn.Embedding;
import io.llava4j.nn.LayerNorm;
import io.llava4j.nn.Params;
import org.bytedeco.pytorch.Module;
import org.bytedeco.pytorch.ModuleListImpl;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.util.ArrayList;
import java.util.List;

/**
 * HF {@code SiglipVisionModel} (registered as {@code vision_tower}: {@code vision_model.embeddings.patch_embedding.{weight,bias}},
 * {@code vision_model.embeddings.position_embedding.weight}, {@code vision_model.encoder.layers.N...},
 * {@code vision_model.post_layernorm}). Unlike CLIP: no class token, no pre-layernorm, a biased patch convolution that
 * drops the pixels past the last whole patch, {@code gelu_pytorch_tanh}. The encoder layer is CLIP's
 * ({@link ClipVisionTower.EncoderLayer}: same names, same pre-LN block).
 *
 * <p>LLaVA models take a hidden state before {@code post_layernorm}, which is loaded (the files carry it) but never
 * applied; the pooling head ({@code vision_use_head}) is not built. Layers after the selected one are not run. As for
 * CLIP, the frozen prefix runs under {@link org.bytedeco.pytorch.NoGradGuard}.
 */
public class SiglipVisionTower extends VisionTower {
    public final VisionModel visionModel;

    public SiglipVisionTower(VisionConfig c) {
        visionModel = register_module("vision_model", new VisionModel(c));
    }

    /**
     * @param pixels [B, C, H, W]
     * @return [B, P, h]: hidden state {@code layerIndex} of [embeddings, after layer 1, ..., after layer N]
     */
    @Override
    public Tensor features(Tensor pixels, int layerIndex) {
        return encode(() -> visionModel.embeddings.forward(pixels), layerIndex);
    }

    @Override
    boolean embeddingStageTrains() {
        return anyRequiresGrad(visionModel.embeddings);
    }

    @Override
    List<ClipVisionTower.EncoderLayer> layers() {
        return visionModel.layers;
    }

    public static class VisionModel extends Module {
        public final Embeddings embeddings;
        public final List<ClipVisionTower.EncoderLayer> layers = new ArrayList<>();
        public final LayerNorm postLayernorm;

        VisionModel(VisionConfig c) {
            embeddings = register_module("embeddings", new Embeddings(c));
            Module encoder = register_module("encoder", new Module());
            ModuleListImpl list = encoder.register_module("layers", new ModuleListImpl());
            for (int i = 0; i < c.numHiddenLayers(); i++) {
                ClipVisionTower.EncoderLayer l = new ClipVisionTower.EncoderLayer(c);
                list.push_back(l);
                layers.add(l);
            }
            postLayernorm = register_module("post_layernorm", new LayerNorm(c.hiddenSize(), c.layerNormEps()));
        }

    }

    /** Biased conv patch embedding (stride = kernel = patch, no padding) + learned position embedding, no class token. */
    public static class Embeddings extends Module {
        public final Tensor patchWeight;              // [h, C, p, p] (patch_embedding.weight)
        public final Tensor patchBias;                // [h]          (patch_embedding.bias)
        public final Embedding positionEmbedding;     // [P, h]
        private final long patch;

        Embeddings(VisionConfig c) {
            Module conv = register_module("patch_embedding", new Module());
            patchWeight = Params.register(conv, "weight", torch.empty(c.hiddenSize(), c.numChannels(), c.patchSize(), c.patchSize()));
            patchBias = Params.register(conv, "bias", torch.empty(c.hiddenSize()));
            positionEmbedding = register_module("position_embedding", new Embedding(c.numPatches(), c.hiddenSize()));
            patch = c.patchSize();
        }

        /** [B, C, H, W] → [B, P, h] */
        Tensor forward(Tensor px) {
            Tensor p = Autocast.patchConv(px, patchWeight, patch);                 // [B, h, H/p, W/p]
            p = p.add(Autocast.values(patchBias).view(1, -1, 1, 1));
            p = p.flatten(2, -1).transpose(1, 2);                                   // [B, P, h]
            return p.add(Autocast.values(positionEmbedding.weight));               // [B, P, h]
        }
    }
}
