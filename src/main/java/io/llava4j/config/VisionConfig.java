package io.llava4j.config;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonProperty;

/**
 * HF {@code CLIPVisionConfig} ({@code model_type: clip_vision_model}) or {@code SiglipVisionConfig}
 * ({@code siglip_vision_model}). Absent fields take that class's defaults in transformers, as HF checkpoints omit fields
 * equal to the default. SigLIP has no class token and no pre-layernorm, and its patch convolution is "valid": an image
 * side that is no multiple of the patch loses its last pixels (384 / 14 → 27 patches). Its pooling head
 * ({@code vision_use_head}) is never used by LLaVA models: its weights, when a file has them, are ignored.
 */
@JsonIgnoreProperties(ignoreUnknown = true)
public record VisionConfig(
        @JsonProperty("hidden_size") Integer hiddenSize,
        @JsonProperty("intermediate_size") Integer intermediateSize,
        @JsonProperty("num_hidden_layers") Integer numHiddenLayers,
        @JsonProperty("num_attention_heads") Integer numAttentionHeads,
        @JsonProperty("image_size") Integer imageSize,
        @JsonProperty("patch_size") Integer patchSize,
        @JsonProperty("num_channels") Integer numChannels,
        @JsonProperty("hidden_act") String hiddenAct,
        @JsonProperty("layer_norm_eps") Double layerNormEps,
        @JsonProperty("attention_dropout") Double attentionDropout,
        @JsonProperty("model_type") String modelType,
        @JsonProperty("vision_use_head") Boolean visionUseHead) {

    public static final String CLIP = "clip_vision_model", SIGLIP = "siglip_vision_model";

    /** A CLIP vision config. */
    public VisionConfig(Integer hiddenSize, Integer intermediateSize, Integer numHiddenLayers, Integer numAttentionHeads,
                        Integer imageSize, Integer patchSize, Integer numChannels, String hiddenAct, Double layerNormEps,
                        Double attentionDropout) {
        this(hiddenSize, intermediateSize, numHiddenLayers, numAttentionHeads, imageSize, patchSize, numChannels, hiddenAct,
                layerNormEps, attentionDropout, CLIP, null);
    }

    public VisionConfig {
        modelType = modelType == null ? CLIP : modelType;
        boolean siglip = SIGLIP.equals(modelType);
        hiddenSize = hiddenSize == null ? 768 : hiddenSize;
        intermediateSize = intermediateSize == null ? 3072 : intermediateSize;
        numHiddenLayers = numHiddenLayers == null ? 12 : numHiddenLayers;
        numAttentionHeads = numAttentionHeads == null ? 12 : numAttentionHeads;
        imageSize = imageSize == null ? 224 : imageSize;
        patchSize = patchSize == null ? (siglip ? 16 : 32) : patchSize;
        numChannels = numChannels == null ? 3 : numChannels;
        hiddenAct = hiddenAct == null ? (siglip ? "gelu_pytorch_tanh" : "quick_gelu") : hiddenAct;
        layerNormEps = layerNormEps == null ? (siglip ? 1e-6 : 1e-5) : layerNormEps;
        attentionDropout = attentionDropout == null ? 0.0 : attentionDropout;
        visionUseHead = siglip && (visionUseHead == null || visionUseHead);
    }

    /** SigLIP (no class token, no pre-layernorm) rather than CLIP. */
    public boolean isSiglip() {
        return SIGLIP.equals(modelType);
    }

    /** Patches per image side (the valid convolution's output side). */
    public int patchesPerSide() {
        return imageSize / patchSize;
    }

    /** Patches per image side squared: the number of patch features (without CLS). */
    public int numPatches() {
        int side = patchesPerSide();
        return side * side;
    }

    /** A copy with {@code layers} encoder layers (LLaVA-NeXT's SigLIP tower deletes the last one). */
    public VisionConfig withLayers(int layers) {
        return new VisionConfig(hiddenSize, intermediateSize, layers, numAttentionHeads, imageSize, patchSize, numChannels,
                hiddenAct, layerNormEps, attentionDropout, modelType, visionUseHead);
    }

    public int headDim() {
        return hiddenSize / numAttentionHeads;
    }

    void validate(String where) {
        Check.positive(where, "hidden_size", hiddenSize);
        Check.positive(where, "intermediate_size", intermediateSize);
        Check.positive(where, "num_hidden_layers", numHiddenLayers);
        Check.positive(where, "num_attention_heads", numAttentionHeads);
        Check.positive(where, "image_size", imageSize);
        Check.positive(where, "patch_size", patchSize);
        Check.positive(where, "num_channels", numChannels);
        Check.that(hiddenSize % numAttentionHeads == 0, where, "hidden_size",
                "hidden_size " + hiddenSize + " is not divisible by num_attention_heads " + numAttentionHeads);
        Check.oneOf(where, "model_type", modelType, java.util.List.of(CLIP, SIGLIP));
        Check.that(imageSize % patchSize == 0 || isSiglip() && imageSize >= patchSize, where, "image_size",
                "image_size " + imageSize + " is not divisible by patch_size " + patchSize);
        Check.oneOf(where, "hidden_act", hiddenAct, Activations.NAMES);
        Check.that(layerNormEps > 0, where, "layer_norm_eps", "layer_norm_eps must be > 0, got " + layerNormEps);
        Check.that(attentionDropout == 0, where, "attention_dropout", "attention dropout is not implemented, got " + attentionDropout);
    }
}
