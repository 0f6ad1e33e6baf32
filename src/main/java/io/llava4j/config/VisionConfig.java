package io.llava4j.config;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonProperty;

/**
 * HF {@code CLIPVisionConfig} ({@code model_type: clip_vision_model}). Absent fields take transformers' defaults, as
 * HF checkpoints omit fields equal to the default.
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
        @JsonProperty("attention_dropout") Double attentionDropout) {

    public VisionConfig {
        hiddenSize = hiddenSize == null ? 768 : hiddenSize;
        intermediateSize = intermediateSize == null ? 3072 : intermediateSize;
        numHiddenLayers = numHiddenLayers == null ? 12 : numHiddenLayers;
        numAttentionHeads = numAttentionHeads == null ? 12 : numAttentionHeads;
        imageSize = imageSize == null ? 224 : imageSize;
        patchSize = patchSize == null ? 32 : patchSize;
        numChannels = numChannels == null ? 3 : numChannels;
        hiddenAct = hiddenAct == null ? "quick_gelu" : hiddenAct;
        layerNormEps = layerNormEps == null ? 1e-5 : layerNormEps;
        attentionDropout = attentionDropout == null ? 0.0 : attentionDropout;
    }

    /** Patches per image side squared: the number of patch features (without CLS). */
    public int numPatches() {
        int side = imageSize / patchSize;
        return side * side;
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
        Check.that(imageSize % patchSize == 0, where, "image_size",
                "image_size " + imageSize + " is not divisible by patch_size " + patchSize);
        Check.oneOf(where, "hidden_act", hiddenAct, Activations.NAMES);
        Check.that(layerNormEps > 0, where, "layer_norm_eps", "layer_norm_eps must be > 0, got " + layerNormEps);
        Check.that(attentionDropout == 0, where, "attention_dropout", "attention dropout is not implemented, got " + attentionDropout);
    }
}
