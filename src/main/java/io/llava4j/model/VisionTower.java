package io.llava4j.model;

import org.bytedeco.pytorch.Module;
import org.bytedeco.pytorch.Tensor;

/**
 * A LLaVA vision tower (registered as {@code vision_tower}): CLIP ({@link ClipVisionTower}) or SigLIP
 * ({@link SiglipVisionTower}). LLaVA models take a hidden state of the encoder, never the pooled output.
 */
public abstract class VisionTower extends Module {
    /**
     * Hidden state {@code layerIndex} of [embeddings, after layer 1, ..., after layer N], before any post-layernorm.
     *
     * @param pixels [B, C, H, W]
     * @return [B, T, h] (T = 1 + P for CLIP, P for SigLIP)
     */
    public abstract Tensor features(Tensor pixels, int layerIndex);

    /** True when no parameter of the tower requires a gradient. */
    public abstract boolean fullyFrozen();
}
