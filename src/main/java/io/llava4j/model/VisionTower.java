package io.llava4j.model;

import io.llava4j.nn.Scopes;
import org.bytedeco.pytorch.Module;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;

import java.util.List;
import java.util.function.Supplier;

/**
 * A LLaVA vision tower (registered as {@code vision_tower}): CLIP ({@link ClipVisionTower}) or SigLIP
 * ({@link SiglipVisionTower}), the same pre-LN encoder ({@link ClipVisionTower.EncoderLayer}) over different
 * embeddings. LLaVA models take a hidden state of the encoder, never the pooled output.
 */
public abstract class VisionTower extends Module {
    /**
     * Hidden state {@code layerIndex} of [embeddings, after layer 1, ..., after layer N], before any post-layernorm.
     *
     * @param pixels [B, C, H, W]
     * @return [B, T, h] (T = 1 + P for CLIP, P for SigLIP)
     */
    public abstract Tensor features(Tensor pixels, int layerIndex);

    /** Whether the embedding stage (stage 0: everything before encoder layer 1) has a parameter that trains. */
    abstract boolean embeddingStageTrains();

    /** The encoder layers. */
    abstract List<ClipVisionTower.EncoderLayer> layers();

    /** True when no parameter of the tower requires a gradient. */
    public boolean fullyFrozen() {
        return firstTrainableStage(layers().size()) > layers().size();
    }

    /**
     * Computes {@code embed} and the layers up to {@code layerIndex}. The frozen prefix — the patch and position
     * embeddings, and the first layers that hold nothing trainable — is computed inside a {@link NoGradGuard}, so no
     * autograd graph is built for it. Each layer's temporaries are freed as the layer ends (autograd keeps what the backward needs).
     */
    Tensor encode(Supplier<Tensor> embed, int layerIndex) {
        List<ClipVisionTower.EncoderLayer> layers = layers();
        int firstTrainable = firstTrainableStage(layerIndex);
        Tensor x;
        try (NoGradGuard g = firstTrainable > 0 ? new NoGradGuard() : null) {
            x = Scopes.keep(embed::get);
            for (int i = 0; i < Math.min(layerIndex, firstTrainable - 1); i++) x = layer(layers.get(i), x);
        }
        for (int i = Math.max(0, firstTrainable - 1); i < layerIndex; i++) x = layer(layers.get(i), x);
        return x;
    }

    private static Tensor layer(ClipVisionTower.EncoderLayer l, Tensor x) {
        return Scopes.keep(() -> l.forward(x));
    }

    /**
     * Stage 0 = the embedding stage, stage i = layer i (1-based). Returns the first stage, up to {@code lastStage},
     * holding a parameter that requires grad; {@code lastStage + 1} when none does.
     */
    int firstTrainableStage(int lastStage) {
        if (embeddingStageTrains()) return 0;
        for (int i = 0; i < lastStage; i++) if (anyRequiresGrad(layers().get(i))) return i + 1;
        return lastStage + 1;
    }

    static boolean anyRequiresGrad(Module m) {
        TensorVector ps = m.parameters(true);
        for (long i = 0; i < ps.size(); i++) if (ps.get(i).requires_grad()) return true;
        return false;
    }
}
