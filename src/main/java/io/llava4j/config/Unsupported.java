package io.llava4j.config;

import com.fasterxml.jackson.databind.JsonNode;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The parts of LLaVA-family configs that llava4j does not implement, found in the raw config.json before anything is
 * parsed, so that such a model is refused by what it is, never by a later, unrelated check (and never loaded as
 * something else). One message lists every such part.
 *
 * <p>Read: LLaMA / Vicuna / Mistral / Qwen2 (and Qwen1.5) language models, CLIP and SigLIP towers, LLaVA-1.5, LLaVA-NeXT
 * AnyRes ({@code anyres}, {@code anyres_max_N}, {@code spatial_unpad}), OneVision and TinyLLaVA (Qwen2 / LLaMA LLM,
 * linear or mlpNx_gelu connector, square or pad images). Refused by name: Phi, Gemma, OpenELM and other language models
 * (TinyLLaVA's Phi-2, Gemma, OpenELM, StableLM variants too); Idefics3 / SmolVLM and other VLM types; resamplers and
 * TinyLLaVA's resampler / qformer / MoF connectors and second tower; TinyLLaVA with AnyRes; other patch-merge types.
 */
final class Unsupported {
    private static final List<String> TEXT_MODELS = TextConfig.MODEL_TYPES;
    /** Original-layout model types whose LLM is not one llava4j runs. */
    private static final List<String> ORIGINAL_OTHER_LLMS = List.of("llava_phi", "llava_gemma", "llava_mixtral", "llava_mpt");

    private Unsupported() {}

    /** @param folder the model folder: an {@code mm_vision_tower} found there (or as a path) is judged by its own config */
    static void refuse(JsonNode root, Path folder, String where) {
        List<String> parts = new ArrayList<>();
        String type = text(root, "model_type");
        String arch = String.valueOf(root.path("architectures")).toLowerCase(Locale.ROOT);

        if (type != null && (type.equals("idefics3") || type.equals("smolvlm") || type.equals("idefics2") || type.equals("idefics")))
            parts.add("model_type '" + type + "' (Idefics3 / SmolVLM: pixel-shuffle projector and image splitting) is not supported");
        else if ("tinyllava".equals(type))
            tinyLlava(root, parts);
        else if (type != null && type.startsWith("llava_next_video") || type != null && type.contains("video"))
            parts.add("video models (model_type '" + type + "') are not supported");
        else if (type != null && ORIGINAL_OTHER_LLMS.contains(type))
            parts.add("model_type '" + type + "': its language model is not supported (llava4j runs " + TEXT_MODELS + ")");
        else if (type != null && type.startsWith("llava_") && !LlavaConfig.ORIGINAL_TYPES.contains(type) && !LlavaConfig.HF_TYPES.contains(type))
            parts.add("model_type '" + type + "' is not supported (LLaVA variants read: " + LlavaConfig.HF_TYPES + ", "
                    + LlavaConfig.ORIGINAL_TYPES + ")");
        for (String name : List.of("phi", "gemma", "openelm"))
            if (arch.contains(name) && !(type != null && type.equals("tinyllava")))
                parts.add("architectures " + root.path("architectures") + ": " + name + " language models are not supported");
        if (type != null && (type.equals("phi") || type.equals("phi3") || type.startsWith("gemma") || type.equals("openelm")))
            parts.add("model_type '" + type + "': " + type + " language models are not supported (llava4j runs " + TEXT_MODELS + ")");

        String textType = text(root.path("text_config"), "model_type");
        if (textType != null && !TEXT_MODELS.contains(textType) && !"tinyllava".equals(type))
            parts.add("language model text_config.model_type '" + textType + "' is not supported (llava4j runs " + TEXT_MODELS + ")");

        String aspect = text(root, "image_aspect_ratio");
        if (aspect != null && !List.of("square", "pad", "anyres").contains(aspect) && !aspect.matches("anyres_max_\\d+"))
            parts.add("image_aspect_ratio '" + aspect + "' is not supported (square, pad, anyres, anyres_max_N)");
        String visionAspect = text(root, "vision_aspect_ratio");
        if (visionAspect != null && !visionAspect.equals("anyres") && !visionAspect.matches("anyres_max_\\d+"))
            parts.add("vision_aspect_ratio '" + visionAspect + "' is not supported (anyres, anyres_max_N)");
        String merge = text(root, "mm_patch_merge_type");
        boolean anyres = aspect != null && aspect.startsWith("anyres");
        if (merge != null && anyres && !merge.equals("spatial_unpad"))
            parts.add("mm_patch_merge_type '" + merge + "' with AnyRes is not supported (spatial_unpad)");
        if (merge != null && !anyres && !merge.equals("flat") && !merge.equals("spatial_unpad"))
            parts.add("mm_patch_merge_type '" + merge + "' is not supported (flat, spatial_unpad)");
        JsonNode layer = root.get("vision_feature_layer");
        if (layer != null && layer.isArray()) parts.add("vision_feature_layer " + layer + ": several feature layers are not supported");

        String visionType = text(root.path("vision_config"), "model_type");
        String tower = text(root, "mm_vision_tower");
        if (visionType != null && !visionType.equals(VisionConfig.CLIP) && !visionType.equals(VisionConfig.SIGLIP))
            parts.add("vision tower vision_config.model_type '" + visionType + "' is not supported (llava4j runs "
                    + VisionConfig.CLIP + ", " + VisionConfig.SIGLIP + ")");
        if (tower != null && LlavaConfig.resolveLocal(folder, tower) == null) {
            String t = tower.toLowerCase(Locale.ROOT);
            if (t.contains("siglip") && !t.contains("siglip-so400m-patch14-384"))
                parts.add("mm_vision_tower '" + tower + "': not a local folder, and llava4j knows only siglip-so400m-patch14-384's"
                        + " config by heart; pass --vision_tower DIR");
            else if (!t.contains("clip") && !t.contains("siglip"))
                parts.add("mm_vision_tower '" + tower + "': only CLIP and SigLIP towers are supported");
        }
        if (text(root, "mm_resampler_type") != null)
            parts.add("vision resamplers are not supported: mm_resampler_type '" + text(root, "mm_resampler_type") + "'");
        if (root.path("add_faster_video").asBoolean(false)) parts.add("add_faster_video true (video) is not supported");

        for (String f : List.of("mm_use_im_start_end", "mm_use_im_patch_token"))
            if (root.path(f).asBoolean(false)) parts.add(f + " true is not supported (LLaVA-1.5 uses false)");
        if (root.has("multimodal_projector_bias") && !root.get("multimodal_projector_bias").asBoolean(true))
            parts.add("multimodal_projector_bias false is not supported (LLaVA's projector has biases)");

        if (!parts.isEmpty()) throw new ConfigException(where + ": not supported: " + String.join("; ", parts));
    }

    /**
     * What of a TinyLLaVA config llava4j does not run. TinyLlavaConfig writes {@code resampler_hidden_size},
     * {@code num_queries} and {@code num_resampler_layers} into every config (null or not), so a resampler is recognised
     * by {@code connector_type} only.
     */
    private static void tinyLlava(JsonNode root, List<String> parts) {
        String llm = textType(root);
        if (!TEXT_MODELS.contains(llm))
            parts.add("TinyLLaVA with a " + (llm.isEmpty() ? "text_config without model_type" : "'" + llm + "'")
                    + " language model is not supported (llava4j runs its " + TEXT_MODELS + " variants, e.g. TinyLLaVA-Qwen2)");
        String connector = text(root, "connector_type");
        if (connector != null && !LlavaConfig.TINYLLAVA_CONNECTOR.matcher(connector).matches())
            parts.add("TinyLLaVA connector_type '" + connector + "' is not supported (linear, mlpNx_gelu)");
        String second = text(root, "vision_model_name_or_path2");
        if (second == null) second = text(root.path("vision_config"), "model_name_or_path2");
        if (second != null && !second.isEmpty())
            parts.add("TinyLLaVA's second vision tower (MoF, vision_model_name_or_path2 '" + second + "') is not supported");
        String aspect = text(root, "image_aspect_ratio");
        if (aspect != null && aspect.startsWith("anyres"))
            parts.add("TinyLLaVA with image_aspect_ratio '" + aspect + "' is not supported (square, pad)");
    }

    private static String textType(JsonNode root) {
        String t = text(root.path("text_config"), "model_type");
        return t == null ? "" : t;
    }

    private static String text(JsonNode node, String field) {
        JsonNode v = node.get(field);
        return v == null || v.isNull() ? null : v.asText();
    }
}
