package io.llava4j.bench;

import io.llava4j.config.LlavaConfig;
import io.llava4j.config.TextConfig;
import io.llava4j.config.VisionConfig;

/**
 * Floating-point operations of one LLaVA training step counted from the shapes (2 per multiply-add of every GEMM and
 * attention product; norms, activations and the optimizer are left out, as model-FLOP counts do). Attention is counted
 * over the full L×L score matrix, as eager attention computes it. The backward costs one forward of a GEMM for the
 * input gradient where one is needed (everything above the lowest trainable module) and one more for the weight
 * gradient of a trainable weight; attention's backward costs twice its forward. Recomputation (gradient
 * checkpointing) is not model work and is counted separately ({@link Step#recompute}).
 */
public final class FlopCount {
    private FlopCount() {}

    /** The step's parts, FLOPs. {@code recompute}: the decoder layers' second forward when they are recomputed. */
    public record Step(double vision, double projector, double llm, double head, double recompute) {
        public double total() {
            return vision + projector + llm + head;
        }
    }

    /**
     * @param images     images in the step
     * @param batch      sequences in the step
     * @param length     merged positions of each sequence
     * @param supervised positions with a label (the LM head runs only there)
     * @param llmTrains  the LLM's weights train (stage 2); the projector always trains here, the vision tower never
     * @param recomputed decoder layers run their forward twice
     */
    public static Step trainStep(LlavaConfig c, int images, int batch, int length, long supervised, boolean llmTrains, boolean recomputed) {
        VisionConfig v = c.vision();
        TextConfig t = c.text();
        // vision tower, frozen: forward only, up to the selected layer
        double tv = v.numPatches() + 1, vh = v.hiddenSize();
        double conv = 2.0 * v.numPatches() * v.numChannels() * v.patchSize() * v.patchSize() * vh;
        double vLayer = 2 * tv * (4 * vh * vh + 2 * vh * v.intermediateSize()) + 4 * tv * tv * vh;
        double vision = images * (conv + c.featureLayerIndex() * vLayer);
        // projector: forward, weight gradients of every linear, input gradients of all but the first
        double rows = (double) images * c.imageFeatureTokens(), th = t.hiddenSize();
        double projFwd = 0, projBwd = 0;
        for (int i = 0; i < c.projectorDepth(); i++) {
            double g = 2 * rows * (i == 0 ? vh : th) * th;
            projFwd += g;
            projBwd += g + (i > 0 ? g : 0);
        }
        // decoder layers: forward, input gradients (the projector below trains), weight gradients in stage 2
        double n = (double) batch * length, q = (double) t.numAttentionHeads() * t.headDim(), kv = (double) t.numKeyValueHeads() * t.headDim();
        double linear = 2 * n * (th * q + 2 * th * kv + q * th + 3 * th * t.intermediateSize());
        double attention = 4.0 * batch * length * (double) length * q;
        double layerFwd = linear + attention;
        double layerBwd = linear + 2 * attention + (llmTrains ? linear : 0);
        double llm = t.numHiddenLayers() * (layerFwd + layerBwd);
        // LM head at the supervised positions: forward, input gradient, weight gradient in stage 2
        double head = 2.0 * supervised * th * t.vocabSize() * (llmTrains ? 3 : 2);
        return new Step(vision, projFwd + projBwd, llm, head, recomputed ? t.numHiddenLayers() * layerFwd : 0);
    }
}
