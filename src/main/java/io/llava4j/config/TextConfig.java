package io.llava4j.config;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonProperty;

/** HF {@code LlamaConfig} ({@code model_type: llama}); absent fields take transformers' defaults. */
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
        @JsonProperty("mlp_bias") Boolean mlpBias) {

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
    }

    void validate(String where) {
        Check.oneOf(where, "model_type", modelType, java.util.List.of("llama", "mistral", "vicuna"));
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
        Check.oneOf(where, "hidden_act", hiddenAct, java.util.List.of("silu"));
        Check.that(!attentionBias, where, "attention_bias", "attention_bias=true is not supported (LLaMA has none)");
        Check.that(!mlpBias, where, "mlp_bias", "mlp_bias=true is not supported (LLaMA has none)");
    }
}
