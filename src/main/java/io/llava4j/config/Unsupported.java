package io.llava4j.config;

import com.fasterxml.jackson.databind.JsonNode;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The parts of LLaVA-family configs that llava4j does not implement, found in the raw config.json before anything is
 * parsed, so that a LLaVA-NeXT, Qwen2 or SigLIP model is refused by what it is, never by a later, unrelated check
 * (and never loaded as something else). One message lists every such part.
 */
final class Unsupported {
    static final String ANYRES = "LLaVA-NeXT anyres is not supported yet";
    private static final List<String> TEXT_MODELS = List.of("llama", "mistral", "vicuna");

    private Unsupported() {}

    /** @param folder the model folder: an {@code mm_vision_tower} found there (or as a path) is judged by its own config */
    static void refuse(JsonNode root, Path folder, String where) {
        List<String> parts = new ArrayList<>();
        String type = text(root, "model_type");

        List<String> anyres = new ArrayList<>();
        if (type != null && (type.startsWith("llava_next") || type.equals("llava_onevision")))
            anyres.add("model_type '" + type + "'");
        String aspect = text(root, "image_aspect_ratio");
        if (aspect != null && aspect.contains("anyres")) anyres.add("image_aspect_ratio '" + aspect + "'");
        String merge = text(root, "mm_patch_merge_type");
        if (merge != null && !merge.equals("flat")) anyres.add("mm_patch_merge_type '" + merge + "'");
        JsonNode pinpoints = root.get("image_grid_pinpoints");
        if (pinpoints != null && !pinpoints.isNull() && !(pinpoints.isArray() && pinpoints.isEmpty()))
            anyres.add("image_grid_pinpoints " + pinpoints);
        if (root.path("use_image_newline_parameter").asBoolean(false)) anyres.add("use_image_newline_parameter true (image_newline)");
        if (!anyres.isEmpty()) parts.add(ANYRES + " (" + String.join(", ", anyres) + ")");

        JsonNode textConfig = root.path("text_config");
        String textType = text(textConfig, "model_type");
        if ("llava_qwen".equals(type) || "qwen2".equals(type) || "qwen2".equals(textType))
            parts.add("Qwen2 is not supported as the language model (llava4j runs LLaMA / Vicuna / Mistral): "
                    + ("qwen2".equals(textType) ? "text_config.model_type 'qwen2'" : "model_type '" + type + "'"));
        else if (textType != null && !TEXT_MODELS.contains(textType))
            parts.add("language model text_config.model_type '" + textType + "' is not supported (llava4j runs " + TEXT_MODELS + ")");
        if ("llava_mistral".equals(type))
            parts.add("original LLaVA's Mistral model (model_type 'llava_mistral', LlavaMistralForCausalLM) is not supported:"
                    + " original LLaVA folders are read for LLaMA models (llava, llava_llama)");
        else if (type != null && type.startsWith("llava_") && !type.equals("llava_llama") && !type.equals("llava_qwen")
                && !type.startsWith("llava_next") && !type.equals("llava_onevision"))
            parts.add("model_type '" + type + "' is not supported (LLaVA variants read: llava, llava_llama)");

        String visionType = text(root.path("vision_config"), "model_type");
        String tower = text(root, "mm_vision_tower");
        if (visionType != null && visionType.startsWith("siglip"))
            parts.add("SigLIP is not supported as the vision tower (llava4j runs CLIP): vision_config.model_type '" + visionType + "'");
        else if (visionType != null && !visionType.equals("clip_vision_model"))
            parts.add("vision tower vision_config.model_type '" + visionType + "' is not supported (llava4j runs CLIP, clip_vision_model)");
        if (tower != null && tower.toLowerCase(Locale.ROOT).contains("siglip") && LlavaConfig.resolveLocal(folder, tower) == null)
            parts.add("SigLIP is not supported as the vision tower (llava4j runs CLIP): mm_vision_tower '" + tower + "'");
        if (text(root, "mm_resampler_type") != null)
            parts.add("vision resamplers are not supported: mm_resampler_type '" + text(root, "mm_resampler_type") + "'");

        for (String f : List.of("mm_use_im_start_end", "mm_use_im_patch_token"))
            if (root.path(f).asBoolean(false)) parts.add(f + " true is not supported (LLaVA-1.5 uses false)");
        if (root.has("multimodal_projector_bias") && !root.get("multimodal_projector_bias").asBoolean(true))
            parts.add("multimodal_projector_bias false is not supported (LLaVA's projector has biases)");

        if (!parts.isEmpty()) throw new ConfigException(where + ": not supported: " + String.join("; ", parts));
    }

    private static String text(JsonNode node, String field) {
        JsonNode v = node.get(field);
        return v == null || v.isNull() ? null : v.asText();
    }
}
