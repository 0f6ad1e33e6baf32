package io.llava4j.config;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What a LLaVA model is, read once from {@code config.json} and validated at this boundary.
 *
 * <p>Three families of folders are understood:
 * <ul>
 *   <li>{@link Family#HF_LLAVA}: transformers' {@code model_type: llava} with {@code vision_config} / {@code text_config};</li>
 *   <li>{@link Family#ORIGINAL_LLAVA}: LLaVA's {@code llava_llama} config (LLaMA fields at the top level plus
 *       {@code mm_vision_tower}, {@code mm_projector_type}, ...), the CLIP tower in a separate folder;</li>
 *   <li>{@link Family#LLAMA}: a plain LLaMA folder, completed by a {@code --vision_tower} CLIP folder and projector flags
 *       (LLaVA's stage-1 start).</li>
 * </ul>
 * Before anything is parsed, {@link Unsupported} refuses what llava4j does not implement (LLaVA-NeXT anyres, Qwen2,
 * SigLIP, other LLaVA variants), naming it; fields that change the computation are implemented
 * ({@code rope_scaling}, Mistral's defaults and {@code sliding_window}, {@code image_aspect_ratio}) or refused.
 *
 * @param projectorDepth number of Linear layers of the projector: 0 identity, 1 linear, N for mlpNx_act
 * @param projectorAct   activation between projector layers (HF {@code projector_hidden_act})
 * @param visionFeatureLayer index into [embeddings, layer 1, ..., layer N] (negative counts from the end)
 * @param visionFeatureSelectStrategy {@code default} (drop CLS) or {@code full} (keep CLS)
 * @param visionTowerFolder the CLIP folder for ORIGINAL_LLAVA / LLAMA (null for HF_LLAVA)
 * @param raw            the config.json as read, to write back with the same fields
 */
public record LlavaConfig(Family family, VisionConfig vision, TextConfig text, int imageTokenIndex,
                          int projectorDepth, String projectorAct, int visionFeatureLayer,
                          String visionFeatureSelectStrategy, Path visionTowerFolder, ObjectNode raw) {

    public enum Family { HF_LLAVA, ORIGINAL_LLAVA, LLAMA }

    /** LLaVA's IMAGE_TOKEN_INDEX: the image placeholder id of original LLaVA checkpoints (not in the vocabulary). */
    public static final int LLAVA_IMAGE_TOKEN_INDEX = -200;

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern MLP = Pattern.compile("^mlp(\\d+)x_(\\w+)$");

    /** Projector options as LLaVA's flags spell them ({@code --mm_projector_type} etc.). */
    public record ProjectorSpec(String type, int selectLayer, String selectFeature) {
        public static final ProjectorSpec LLAVA_DEFAULT = new ProjectorSpec("linear", -1, "patch");

        /** The flags given (null = not given), LLaVA's defaults for the rest. */
        public static ProjectorSpec orDefaults(String type, Integer selectLayer, String selectFeature) {
            return new ProjectorSpec(type != null ? type : LLAVA_DEFAULT.type(),
                    selectLayer != null ? selectLayer : LLAVA_DEFAULT.selectLayer(),
                    selectFeature != null ? selectFeature : LLAVA_DEFAULT.selectFeature());
        }
    }

    /** The projector's LLaVA name: {@code identity}, {@code linear} or {@code mlp{N}x_{act}}. */
    public String projectorType() {
        return projectorDepth == 0 ? "identity" : projectorDepth == 1 ? "linear" : "mlp" + projectorDepth + "x_" + projectorAct;
    }

    /** The feature layer as an index into the N+1 hidden states. */
    public int featureLayerIndex() {
        int n = vision.numHiddenLayers() + 1;
        return visionFeatureLayer < 0 ? n + visionFeatureLayer : visionFeatureLayer;
    }

    /** Image feature rows each image contributes to the sequence. */
    public int imageFeatureTokens() {
        return vision.numPatches() + ("full".equals(visionFeatureSelectStrategy) ? 1 : 0);
    }

    /**
     * Reads {@code folder/config.json}. {@code visionTowerOverride} ({@code --vision_tower}) replaces the config's CLIP
     * folder; it is required for a plain LLaMA folder. {@code projector} is used only for a plain LLaMA folder.
     */
    public static LlavaConfig load(Path folder, Path visionTowerOverride, ProjectorSpec projector) {
        Path file = folder.resolve("config.json");
        ObjectNode root = readObject(file);
        String modelType = text(root, "model_type");
        String where = file.toString();
        Unsupported.refuse(root, folder, where);
        LlavaConfig cfg;
        if ("llava".equals(modelType) && (root.has("text_config") || !root.has("mm_vision_tower"))) {
            cfg = hf(root, where);
        } else if (root.has("mm_vision_tower") || "llava".equals(modelType) || "llava_llama".equals(modelType)) {
            cfg = original(root, folder, where, visionTowerOverride);
        } else if ("llama".equals(modelType) || "mistral".equals(modelType)) {
            if (visionTowerOverride == null)
                throw new ConfigException(where + ": a plain " + modelType + " model has no vision tower; pass --vision_tower DIR (a CLIP folder)");
            VisionConfig vision = readClip(visionTowerOverride);
            TextConfig text = parse(TextConfig.withMistralDefaults(root), TextConfig.class, where);
            ProjectorSpec p = projector == null ? ProjectorSpec.LLAVA_DEFAULT : projector;
            int[] depthAct = parseProjectorType(p.type(), where, "mm_projector_type");
            cfg = new LlavaConfig(Family.LLAMA, vision, text, LLAVA_IMAGE_TOKEN_INDEX, depthAct[0],
                    depthAct[1] == 0 ? "gelu" : actOf(p.type()), p.selectLayer(), strategyOf(p.selectFeature(), where, "mm_vision_select_feature"),
                    visionTowerOverride, root);
        } else {
            throw new ConfigException(where + ": field 'model_type': '" + modelType
                    + "' is not a LLaVA (llava, llava_llama), LLaMA or Mistral model");
        }
        cfg.validate(where);
        return cfg;
    }

    /**
     * What LLaVA's model flags ({@code --vision_tower}, {@code --mm_projector_type}, {@code --mm_vision_select_layer},
     * {@code --mm_vision_select_feature}; null = not given) mean for this model, as notes; a contradiction is a
     * {@link ConfigException}. A plain LLaMA folder is built from them (see {@link #load}); an original LLaVA folder
     * takes {@code --vision_tower} as its CLIP folder. A model that already has a projector and a feature choice keeps
     * them (LLaVA's initialize_vision_modules keeps a loaded tower and projector but writes the flags into the saved
     * config, which would then describe a different model), so a flag that differs from the model is refused. On a
     * llava-hf folder the tower's weights are in the folder: {@code --vision_tower} must name a CLIP folder of the
     * same architecture, and the folder's weights are used.
     */
    public java.util.List<String> checkFlags(Path visionTower, String projectorType, Integer selectLayer, String selectFeature) {
        java.util.List<String> notes = new java.util.ArrayList<>();
        if (family == Family.LLAMA) return notes;
        String where = "the model's config.json";
        if (visionTower != null) {
            if (!java.nio.file.Files.isDirectory(visionTower))
                throw new ConfigException("--vision_tower " + visionTower + ": no such folder (llava4j never downloads)");
            if (family == Family.HF_LLAVA) {
                VisionConfig flag = readClip(visionTower);
                if (!flag.equals(vision))
                    throw new ConfigException("--vision_tower " + visionTower + ": its config (" + flag + ") contradicts the llava-hf"
                            + " folder's vision_config (" + vision + "); a llava-hf folder carries its own tower");
                notes.add("--vision_tower " + visionTower + ": same architecture as the llava-hf folder's vision_config; the folder's"
                        + " tower weights are used (as LLaVA keeps a loaded model's tower)");
            }
        }
        if (projectorType != null) {
            int[] depthAct = parseProjectorType(projectorType, "--mm_projector_type", "mm_projector_type");
            String flag = depthAct[0] == 0 ? "identity" : depthAct[0] == 1 ? "linear" : "mlp" + depthAct[0] + "x_" + actOf(projectorType);
            if (!flag.equals(projectorType()))
                throw new ConfigException("--mm_projector_type " + projectorType + " contradicts the model's projector " + projectorType()
                        + " (" + where + "); the loaded projector is kept, so drop the flag or start from a LLaMA folder");
        }
        if (selectLayer != null && selectLayer != visionFeatureLayer)
            throw new ConfigException("--mm_vision_select_layer " + selectLayer + " contradicts the model's " + visionFeatureLayer
                    + " (" + where + "): its projector was trained on that layer");
        if (selectFeature != null && !strategyOf(selectFeature, "--mm_vision_select_feature", "mm_vision_select_feature").equals(visionFeatureSelectStrategy))
            throw new ConfigException("--mm_vision_select_feature " + selectFeature + " contradicts the model's "
                    + ("full".equals(visionFeatureSelectStrategy) ? "cls_patch" : "patch") + " (" + where + ")");
        return notes;
    }

    /**
     * Original LLaVA's {@code image_aspect_ratio} ({@code pad} or {@code square}), what LLaVA's evaluation uses when no
     * flag says otherwise; null when the config does not say (HF llava configs never do).
     */
    public String imageAspectRatio() {
        JsonNode v = raw.get("image_aspect_ratio");
        return v == null || v.isNull() ? null : v.asText();
    }

    private static LlavaConfig hf(ObjectNode root, String where) {
        VisionConfig vision = parse(child(root, "vision_config", where), VisionConfig.class, where + " vision_config");
        TextConfig text = parse(TextConfig.withMistralDefaults(child(root, "text_config", where)), TextConfig.class, where + " text_config");
        JsonNode layer = root.get("vision_feature_layer");
        if (layer != null && !layer.isInt())
            throw new ConfigException(where + ": field 'vision_feature_layer': expected one integer, got " + layer);
        JsonNode tok = root.has("image_token_index") ? root.get("image_token_index") : root.get("image_token_id");
        if (tok == null || !tok.isInt())
            throw new ConfigException(where + ": field 'image_token_index': missing or not an integer");
        String act = root.hasNonNull("projector_hidden_act") ? root.get("projector_hidden_act").asText() : "gelu";
        String strategy = root.hasNonNull("vision_feature_select_strategy") ? root.get("vision_feature_select_strategy").asText() : "default";
        return new LlavaConfig(Family.HF_LLAVA, vision, text, tok.asInt(), 2, act,
                layer == null ? -2 : layer.asInt(), strategy, null, root);
    }

    private static LlavaConfig original(ObjectNode root, Path folder, String where, Path override) {
        String towerName = text(root, "mm_vision_tower");
        Path tower = override;
        if (tower == null) {
            if (towerName == null)
                throw new ConfigException(where + ": field 'mm_vision_tower': missing; pass --vision_tower DIR");
            tower = resolveLocal(folder, towerName);
            if (tower == null)
                throw new ConfigException(where + ": field 'mm_vision_tower': '" + towerName
                        + "' is not a local folder (llava4j never downloads); pass --vision_tower DIR with that CLIP model");
        }
        VisionConfig vision = readClip(tower);
        ObjectNode textNode = root.deepCopy();
        textNode.put("model_type", "llama");
        TextConfig text = parse(textNode, TextConfig.class, where);
        String type = root.hasNonNull("mm_projector_type") ? root.get("mm_projector_type").asText() : "linear";
        int[] depthAct = parseProjectorType(type, where, "mm_projector_type");
        int layer = root.hasNonNull("mm_vision_select_layer") ? root.get("mm_vision_select_layer").asInt() : -1;
        String feature = root.hasNonNull("mm_vision_select_feature") ? root.get("mm_vision_select_feature").asText() : "patch";
        if (root.hasNonNull("mm_hidden_size") && root.get("mm_hidden_size").asInt() != vision.hiddenSize())
            throw new ConfigException(where + ": field 'mm_hidden_size': " + root.get("mm_hidden_size").asInt()
                    + " differs from the vision tower's hidden_size " + vision.hiddenSize() + " (" + tower + ")");
        return new LlavaConfig(Family.ORIGINAL_LLAVA, vision, text, LLAVA_IMAGE_TOKEN_INDEX, depthAct[0],
                depthAct[1] == 0 ? "gelu" : actOf(type), layer, strategyOf(feature, where, "mm_vision_select_feature"), tower, root);
    }

    /** Reads a CLIP folder's config.json: a CLIPVisionModel config or a full CLIP config with vision_config. */
    public static VisionConfig readClip(Path folder) {
        Path file = folder.resolve("config.json");
        ObjectNode root = readObject(file);
        String type = text(root, "model_type");
        JsonNode vision = "clip".equals(type) || root.has("vision_config") ? child(root, "vision_config", file.toString()) : root;
        String visionType = vision.has("model_type") ? vision.get("model_type").asText() : null;
        if (visionType != null && visionType.startsWith("siglip") || type != null && type.startsWith("siglip"))
            throw new ConfigException(file + ": field 'model_type': '" + (visionType != null ? visionType : type)
                    + "': SigLIP is not supported as the vision tower (llava4j runs CLIP)");
        if (visionType != null && !"clip_vision_model".equals(visionType))
            throw new ConfigException(file + ": field 'model_type': '" + visionType
                    + "' is not a CLIP vision model (clip_vision_model or clip)");
        VisionConfig v = parse(vision, VisionConfig.class, file.toString());
        v.validate(file.toString());
        return v;
    }

    static Path resolveLocal(Path folder, String name) {
        for (Path p : List.of(folder.resolve(name), Path.of(name)))
            if (Files.isRegularFile(p.resolve("config.json"))) return p;
        return null;
    }

    /** {@code linear} → {1,0}, {@code identity} → {0,0}, {@code mlp2x_gelu} → {2,1}. */
    static int[] parseProjectorType(String type, String where, String field) {
        if ("linear".equals(type)) return new int[]{1, 0};
        if ("identity".equals(type)) return new int[]{0, 0};
        Matcher m = MLP.matcher(type == null ? "" : type);
        if (m.matches() && Integer.parseInt(m.group(1)) >= 1 && Activations.NAMES.contains(m.group(2)))
            return new int[]{Integer.parseInt(m.group(1)), 1};
        throw new ConfigException(where + ": field '" + field + "': '" + type
                + "' is not linear, identity or mlp{N}x_{act} with act one of " + Activations.NAMES);
    }

    private static String actOf(String type) {
        Matcher m = MLP.matcher(type);
        return m.matches() ? m.group(2) : "gelu";
    }

    private static String strategyOf(String feature, String where, String field) {
        return switch (feature) {
            case "patch", "default" -> "default";
            case "cls_patch", "full" -> "full";
            default -> throw new ConfigException(where + ": field '" + field + "': '" + feature + "' is not patch or cls_patch");
        };
    }

    private void validate(String where) {
        vision.validate(where + " (vision)");
        text.validate(where + " (text)");
        JsonNode textNode = family == Family.HF_LLAVA ? raw.path("text_config") : raw;
        Check.that(textNode.hasNonNull("head_dim") || text.hiddenSize() % text.numAttentionHeads() == 0, where + " (text)",
                "hidden_size", "hidden_size " + text.hiddenSize() + " is not divisible by num_attention_heads "
                        + text.numAttentionHeads() + " (and no head_dim is given)");
        int n = vision.numHiddenLayers() + 1;
        Check.that(visionFeatureLayer >= -n && visionFeatureLayer < n, where,
                family == Family.HF_LLAVA ? "vision_feature_layer" : "mm_vision_select_layer",
                visionFeatureLayer + " is outside the " + n + " hidden states of the vision tower");
        Check.oneOf(where, "vision_feature_select_strategy", visionFeatureSelectStrategy, List.of("default", "full"));
        Check.oneOf(where, "projector_hidden_act", projectorAct, Activations.NAMES);
        Check.that(projectorDepth != 0 || vision.hiddenSize().equals(text.hiddenSize()), where, "mm_projector_type",
                "identity needs equal vision and text widths, got " + vision.hiddenSize() + " and " + text.hiddenSize());
        Check.that(imageTokenIndex < 0 || imageTokenIndex < text.vocabSize(), where, "image_token_index",
                imageTokenIndex + " is outside the vocabulary of " + text.vocabSize());
        String aspect = imageAspectRatio();
        Check.that(aspect == null || aspect.equals("square") || aspect.equals("pad"), where, "image_aspect_ratio",
                "'" + aspect + "' is not supported (square or pad)");
    }

    static ObjectNode readObject(Path file) {
        if (!Files.isRegularFile(file)) throw new ConfigException(file + ": not found");
        JsonNode n;
        try {
            n = JSON.readTree(file.toFile());
        } catch (com.fasterxml.jackson.core.JacksonException e) {
            throw new ConfigException(file + ": not valid JSON: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new ConfigException(file + ": cannot be read: " + e.getMessage(), e);
        }
        if (n == null || !n.isObject()) throw new ConfigException(file + ": expected a JSON object");
        return (ObjectNode) n;
    }

    private static JsonNode child(JsonNode root, String field, String where) {
        JsonNode c = root.get(field);
        if (c == null || !c.isObject()) throw new ConfigException(where + ": field '" + field + "': missing or not an object");
        return c;
    }

    private static String text(JsonNode root, String field) {
        JsonNode v = root.get(field);
        return v == null || v.isNull() ? null : v.asText();
    }

    private static <T> T parse(JsonNode node, Class<T> type, String where) {
        try {
            return JSON.treeToValue(node, type);
        } catch (com.fasterxml.jackson.databind.exc.MismatchedInputException e) {
            String field = e.getPath().isEmpty() ? "?" : e.getPath().get(e.getPath().size() - 1).getFieldName();
            throw new ConfigException(where + ": field '" + field + "': " + e.getOriginalMessage(), e);
        } catch (com.fasterxml.jackson.core.JacksonException e) {
            throw new ConfigException(where + ": " + e.getOriginalMessage(), e);
        }
    }
}
