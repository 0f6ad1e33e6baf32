package io.llava4j.config;

import com.fasterxml.jackson.annotation.JsonCreator;
import com.fasterxml.jackson.annotation.JsonValue;
import com.fasterxml.jackson.databind.JsonNode;

import java.util.List;

/**
 * A LLaMA config's {@code rope_scaling}, as transformers' LlamaRotaryEmbedding variants read it:
 * <ul>
 *   <li>{@code linear} (LlamaLinearScalingRotaryEmbedding): positions divided by {@code factor};</li>
 *   <li>{@code dynamic} (LlamaDynamicNTKScalingRotaryEmbedding): for a sequence of T > max_position_embeddings
 *       positions, the base becomes θ·(factor·T/max − (factor − 1))^(d/(d−2)); shorter sequences are unscaled.</li>
 * </ul>
 * Written as {@code {"type": ..., "factor": ...}} (or {@code rope_type}, newer transformers). Any other type, or any
 * other key, is refused by {@link #validate}: llava4j would otherwise compute something else than the checkpoint expects.
 *
 * @param raw the object as read, written back unchanged
 */
public record RopeScaling(String type, Double factor, JsonNode raw) {
    public static final String LINEAR = "linear", DYNAMIC = "dynamic";
    private static final List<String> KEYS = List.of("type", "rope_type", "factor");

    @JsonCreator(mode = JsonCreator.Mode.DELEGATING)
    static RopeScaling of(JsonNode n) {
        if (n == null || n.isNull()) return null;
        String type = n.hasNonNull("rope_type") ? n.get("rope_type").asText() : n.hasNonNull("type") ? n.get("type").asText() : null;
        Double factor = n.path("factor").isNumber() ? n.get("factor").asDouble() : null;
        return new RopeScaling(type, factor, n);
    }

    @JsonValue
    JsonNode json() {
        return raw;
    }

    /** No scaling at all ({@code rope_type: default}). */
    public boolean isDefault() {
        return "default".equals(type);
    }

    void validate(String where) {
        Check.that(raw.isObject(), where, "rope_scaling", "expected an object like {\"type\": \"linear\", \"factor\": 2.0}, got " + raw);
        Check.that(type != null, where, "rope_scaling", "has no type (linear or dynamic): " + raw);
        if (isDefault()) return;
        Check.that(type.equals(LINEAR) || type.equals(DYNAMIC), where, "rope_scaling",
                "type '" + type + "' is not supported (llava4j implements linear and dynamic)");
        Check.that(factor != null && factor > 1, where, "rope_scaling",
                "factor must be a number > 1 (as transformers requires), got " + raw.get("factor"));
        raw.fieldNames().forEachRemaining(k -> Check.that(KEYS.contains(k), where, "rope_scaling",
                "key '" + k + "' is not supported (llava4j reads type and factor only)"));
    }
}
