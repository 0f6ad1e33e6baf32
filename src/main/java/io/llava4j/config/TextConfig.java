package io.llava4j.config;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.List;
import java.util.Map;

/**
 * HF {@code LlamaConfig} ({@code model_type: llama}), {@code MistralConfig} ({@code mistral}) or {@code Qwen2Config}
 * ({@code qwen2}, also Qwen1.5); absent fields take transformers' defaults (a Mistral or Qwen2 config's own defaults are
 * filled in by {@link #withFamilyDefaults} first). Qwen2 is LLaMA with biases on q/k/v ({@link #qkvBias}); its
 * {@code sliding_window} only applies when {@code use_sliding_window} is true (the published configs carry a number
 * with the flag false), and transformers 5's {@code rope_parameters.rope_theta} is read like {@code rope_theta}.
 *
 * @param ropeScaling   {@code rope_scaling}: null for none, else linear or dynamic (see {@link RopeScaling})
 * @param slidingWindow Mistral's {@code sliding_window}: null for none; positions attend to at most this many
 */
@JsonIgnoreProperties(ignoreUnknown = true)
public record TextConfig(
        @JsonProperty("model_type") String modelType,
        @JsonProperty("hidden_size") Integer hiddenSize,
        @JsonProperty("intermediate_size") Integer intermediateSize,
        @JsonProperty("num_hidden_layers") Integer numHiddenLayers,
        @JsonProperty("num_attention_heads") Integer numAttentionHeads,
        @JsonProperty("num_key_value_heads") Integer numKeyValueHeads,
        @JsonProperty("head_dim") Integer headDim,
        @JsonProperty("vocab_size") Integer vocabSize,
        @JsonProperty("rms_norm_eps") Double rmsNormEps,
        @JsonProperty("rope_theta") Double ropeTheta,
        @JsonProperty("max_position_embeddings") Integer maxPositionEmbeddings,
        @JsonProperty("hidden_act") String hiddenAct,
        @JsonProperty("tie_word_embeddings") Boolean tieWordEmbeddings,
        @JsonProperty("attention_bias") Boolean attentionBias,
        @JsonProperty("mlp_bias") Boolean mlpBias,
        @JsonProperty("rope_scaling") RopeScaling ropeScaling,
        @JsonProperty("sliding_window") Integer slidingWindow,
        @JsonProperty("attention_dropout") Double attentionDropout,
        @JsonProperty("use_sliding_window") Boolean useSlidingWindow,
        @JsonProperty("max_window_layers") Integer maxWindowLayers) {

    /** The LLaMA / Mistral fields only (no Qwen2 sliding-window flag). */
    public TextConfig(String modelType, Integer hiddenSize, Integer intermediateSize, Integer numHiddenLayers,
                      Integer numAttentionHeads, Integer numKeyValueHeads, Integer headDim, Integer vocabSize, Double rmsNormEps,
                      Double ropeTheta, Integer maxPositionEmbeddings, String hiddenAct, Boolean tieWordEmbeddings,
                      Boolean attentionBias, Boolean mlpBias, RopeScaling ropeScaling, Integer slidingWindow, Double attentionDropout) {
        this(modelType, hiddenSize, intermediateSize, numHiddenLayers, numAttentionHeads, numKeyValueHeads, headDim, vocabSize,
                rmsNormEps, ropeTheta, maxPositionEmbeddings, hiddenAct, tieWordEmbeddings, attentionBias, mlpBias, ropeScaling,
                slidingWindow, attentionDropout, null, null);
    }

    /** The language models llava4j runs. */
    public static final List<String> MODEL_TYPES = List.of("llama", "mistral", "vicuna", "qwen2");

    /** transformers 4.37's MistralConfig defaults that differ from LlamaConfig's. */
    private static final Map<String, Integer> MISTRAL_DEFAULTS = Map.of(
            "intermediate_size", 14336, "num_key_value_heads", 8, "max_position_embeddings", 4096 * 32, "sliding_window", 4096);

    private static final com.fasterxml.jackson.databind.ObjectMapper JSON = new com.fasterxml.jackson.databind.ObjectMapper();

    /** transformers' Qwen2Config defaults that differ from LlamaConfig's. */
    private static final Map<String, Object> QWEN2_DEFAULTS = Map.of(
            "vocab_size", 151936, "intermediate_size", 22016, "max_position_embeddings", 32768,
            "sliding_window", 4096, "max_window_layers", 28, "use_sliding_window", false, "tie_word_embeddings", false);

    /**
     * A copy of a {@code model_type: mistral} or {@code qwen2} config node with that config class's defaults for its
     * absent fields, and transformers 5's {@code rope_parameters} ({@code {"rope_theta": θ, "rope_type": "default"}})
     * read as {@code rope_theta} / {@code rope_scaling}.
     */
    static JsonNode withFamilyDefaults(JsonNode node) {
        if (!node.isObject()) return node;
        String type = node.path("model_type").asText();
        ObjectNode c = ((ObjectNode) node).deepCopy();
        if ("mistral".equals(type))
            MISTRAL_DEFAULTS.forEach((k, v) -> {
                if (!c.has(k)) c.put(k, v); // an explicit null stays null (sliding_window: null = no window)
            });
        if ("qwen2".equals(type))
            QWEN2_DEFAULTS.forEach((k, v) -> {
                if (!c.has(k)) c.set(k, JSON.valueToTree(v));
            });
        JsonNode rp = c.get("rope_parameters");
        if (rp != null && rp.isObject()) {
            if (rp.has("rope_theta") && !c.hasNonNull("rope_theta")) c.set("rope_theta", rp.get("rope_theta"));
            ObjectNode scaling = ((ObjectNode) rp).deepCopy();
            scaling.remove("rope_theta");
            if (!c.hasNonNull("rope_scaling") && scaling.size() > 0) c.set("rope_scaling", scaling);
        }
        return c;
    }

    /** Qwen2's attention has biases on q, k and v (not on o). */
    public boolean qkvBias() {
        return "qwen2".equals(modelType);
    }

    /** The sliding window in effect: Mistral's {@code sliding_window}; Qwen2's only when {@code use_sliding_window}. */
    public Integer effectiveSlidingWindow() {
        if ("qwen2".equals(modelType)) return Boolean.TRUE.equals(useSlidingWindow) ? slidingWindow : null;
        return slidingWindow;
    }

    public TextConfig {
        modelType = modelType == null ? "llama" : modelType;
        hiddenSize = hiddenSize == null ? 4096 : hiddenSize;
        intermediateSize = intermediateSize == null ? 11008 : intermediateSize;
        numHiddenLayers = numHiddenLayers == null ? 32 : numHiddenLayers;
        numAttentionHeads = numAttentionHeads == null ? 32 : numAttentionHeads;
        numKeyValueHeads = numKeyValueHeads == null ? numAttentionHeads : numKeyValueHeads;
        headDim = headDim == null ? (numAttentionHeads > 0 ? hiddenSize / numAttentionHeads : 0) : headDim;
        vocabSize = vocabSize == null ? 32000 : vocabSize;
        rmsNormEps = rmsNormEps == null ? 1e-6 : rmsNormEps;
        ropeTheta = ropeTheta == null ? 10000.0 : ropeTheta;
        maxPositionEmbeddings = maxPositionEmbeddings == null ? 2048 : maxPositionEmbeddings;
        hiddenAct = hiddenAct == null ? "silu" : hiddenAct;
        tieWordEmbeddings = tieWordEmbeddings != null && tieWordEmbeddings;
        attentionBias = attentionBias != null && attentionBias;
        mlpBias = mlpBias != null && mlpBias;
        attentionDropout = attentionDropout == null ? 0.0 : attentionDropout;
        if (ropeScaling != null && ropeScaling.isDefault()) ropeScaling = null;
    }

    /**
     * Refuses a sequence of {@code positions} that a Mistral sliding window would cut: llava4j attends over the whole
     * causal prefix, which equals the sliding window only while the sequence fits in it.
     */
    public void checkSequenceLength(int positions, String where) {
        Integer slidingWindow = effectiveSlidingWindow();
        Check.that(slidingWindow == null || slidingWindow >= positions, where, "sliding_window",
                "sliding-window attention is not implemented: the window of " + slidingWindow + " is shorter than the "
                        + positions + " positions of a sequence (--model_max_length); use --model_max_length " + slidingWindow + " or less");
    }

    void validate(String where) {
        Check.oneOf(where, "model_type", modelType, MODEL_TYPES);
        Check.positive(where, "hidden_size", hiddenSize);
        Check.positive(where, "intermediate_size", intermediateSize);
        Check.positive(where, "num_hidden_layers", numHiddenLayers);
        Check.positive(where, "num_attention_heads", numAttentionHeads);
        Check.positive(where, "num_key_value_heads", numKeyValueHeads);
        Check.positive(where, "head_dim", headDim);
        Check.positive(where, "vocab_size", vocabSize);
        Check.that(numAttentionHeads % numKeyValueHeads == 0, where, "num_key_value_heads",
                "num_attention_heads " + numAttentionHeads + " is not a multiple of num_key_value_heads " + numKeyValueHeads);
        Check.that(headDim % 2 == 0, where, "head_dim", "head_dim must be even for rotary embeddings, got " + headDim);
        Check.that(rmsNormEps > 0, where, "rms_norm_eps", "rms_norm_eps must be > 0, got " + rmsNormEps);
        Check.that(ropeTheta > 0, where, "rope_theta", "rope_theta must be > 0, got " + ropeTheta);
        Check.oneOf(where, "hidden_act", hiddenAct, List.of("silu"));
        Check.that(!attentionBias, where, "attention_bias", "attention_bias=true is not supported (LLaMA has none)");
        Check.that(!mlpBias, where, "mlp_bias", "mlp_bias=true is not supported (LLaMA has none)");
        Check.that(attentionDropout == 0, where, "attention_dropout", "attention dropout is not implemented, got " + attentionDropout);
        Check.that(effectiveSlidingWindow() == null || effectiveSlidingWindow() > 0, where, "sliding_window", "must be a positive integer or null, got " + slidingWindow);
        if (ropeScaling != null) ropeScaling.validate(where);
    }
}
