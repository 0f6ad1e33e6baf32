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
 * <p>Four families of folders are understood:
 * <ul>
 *   <li>{@link Family#HF_LLAVA}: transformers' {@code model_type} {@code llava}, {@code llava_next} (LLaVA-1.6) or
 *       {@code llava_onevision}, with {@code vision_config} / {@code text_config}; the last two with AnyRes
 *       ({@link #anyres()}: {@code image_grid_pinpoints} as (height, width), OneVision's {@code vision_aspect_ratio});</li>
 *   <li>{@link Family#TINYLLAVA}: TinyLLaVA_Factory's {@code model_type: tinyllava} ({@code TinyLlavaForConditionalGeneration}),
 *       nested {@code text_config} (Qwen2, LLaMA; Phi, Gemma, OpenELM, StableLM refused by name) and {@code vision_config}
 *       (SigLIP or CLIP, the full tower: all its layers are loaded); {@code connector_type} {@code linear} or
 *       {@code mlp{N}x_gelu}; {@code vision_feature_layer}; {@code vision_feature_select_strategy} {@code patch} (drop the
 *       first row: for SigLIP, which has no class token, the top-left patch, so so400m gives 728 rows) or
 *       {@code cls_patch}; {@code image_aspect_ratio} square or pad; {@code tokenizer_model_max_length},
 *       {@code tokenizer_padding_side}. Its image placeholder is LLaVA's {@link #LLAVA_IMAGE_TOKEN_INDEX} (TinyLlavaConfig
 *       sets it whatever the file says; the tokenizer has no image token). Refused by name: resampler / qformer / MoF
 *       connectors, a second (MoF) tower, AnyRes;</li>
 *   <li>{@link Family#ORIGINAL_LLAVA}: LLaVA's and LLaVA-NeXT's {@code llava} / {@code llava_llama} /
 *       {@code llava_mistral} / {@code llava_qwen} configs (LLM fields at the top level, the LLM told by
 *       {@code model_type} or {@code architectures}, plus {@code mm_vision_tower}, {@code mm_projector_type}, ...), the
 *       tower in a separate folder, or SigLIP-so400m named by its hub id with its weights in the checkpoint; a SigLIP
 *       tower loses its last layer as LLaVA-NeXT's does; {@code image_aspect_ratio anyres[_max_N]} with pinpoints as
 *       (width, height) or a {@code "(1x1),...,(6x6)"} range;</li>
 *   <li>{@link Family#LLAMA}: a plain LLaMA / Mistral / Qwen2 folder, completed by a {@code --vision_tower} CLIP or
 *       SigLIP folder and projector flags (LLaVA's stage-1 start).</li>
 * </ul>
 * Before anything is parsed, {@link Unsupported} refuses what llava4j does not implement (Phi, Gemma, OpenELM LLMs,
 * Idefics3 / SmolVLM, video, resamplers, other LLaVA variants), naming it; fields that change the computation are
 * implemented ({@code rope_scaling}, Mistral's and Qwen2's defaults and windows, {@code image_aspect_ratio}, AnyRes) or
 * refused.
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
                          String visionFeatureSelectStrategy, Path visionTowerFolder, ObjectNode raw, AnyResSpec anyres) {

    /** A model whose images are one tile each (LLaVA-1.5, interleave, TinyLLaVA). */
    public LlavaConfig(Family family, VisionConfig vision, TextConfig text, int imageTokenIndex, int projectorDepth,
                       String projectorAct, int visionFeatureLayer, String visionFeatureSelectStrategy, Path visionTowerFolder,
                       ObjectNode raw) {
        this(family, vision, text, imageTokenIndex, projectorDepth, projectorAct, visionFeatureLayer, visionFeatureSelectStrategy,
                visionTowerFolder, raw, null);
    }

    /**
     * LLaVA-NeXT's AnyRes image path (LLaVA-1.6, OneVision): the image is cut into tiles on the best grid of
     * {@code pinpointsHW}, each tile and a base image run through the tower, and the grid's features are packed with
     * {@code spatial_unpad} and an {@code image_newline} per row.
     *
     * @param pinpointsHW candidate resolutions as (height, width), in the config's order (ties go to the first)
     * @param maxN        {@code anyres_max_N}'s N: the grid's features are downsampled bilinearly above N tiles' worth; null for plain anyres
     * @param hfRounding  transformers' unpad rounding ({@code int(round(x, 7))}); false: LLaVA-NeXT's {@code int(x)}
     */
    public record AnyResSpec(List<int[]> pinpointsHW, Integer maxN, boolean hfRounding) {}

    public enum Family { HF_LLAVA, TINYLLAVA, ORIGINAL_LLAVA, LLAMA }

    /** LLaVA's IMAGE_TOKEN_INDEX: the image placeholder id of original LLaVA checkpoints (not in the vocabulary). */
    public static final int LLAVA_IMAGE_TOKEN_INDEX = -200;

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern MLP = Pattern.compile("^mlp(\\d+)x_(\\w+)$");

    /** Projector options as LLaVA's flags spell them ({@code --mm_projector_type} etc.). */
    /**
     * @param imageAspectRatio {@code --image_aspect_ratio} (null: not given); {@code anyres[_max_N]} builds an AnyRes model
     * @param gridPinpoints    {@code --image_grid_pinpoints} as LLaVA-NeXT spells it ((w, h) pairs or a range string)
     * @param patchMergeType   {@code --mm_patch_merge_type} ({@code spatial_unpad} with AnyRes)
     */
    public record ProjectorSpec(String type, int selectLayer, String selectFeature, String imageAspectRatio, String gridPinpoints,
                                String patchMergeType) {
        public static final ProjectorSpec LLAVA_DEFAULT = new ProjectorSpec("linear", -1, "patch");

        public ProjectorSpec(String type, int selectLayer, String selectFeature) {
            this(type, selectLayer, selectFeature, null, null, null);
        }

        /** These flags with LLaVA-NeXT's image flags (null = not given). */
        public ProjectorSpec withImages(String aspect, String pinpoints, String merge) {
            return new ProjectorSpec(type, selectLayer, selectFeature, aspect, pinpoints, merge);
        }

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

    /**
     * Feature rows one tile contributes: the patches, plus CLIP's class token under {@code full}; {@code default} drops
     * the first row (CLIP's class token; for SigLIP, which has none, the top-left patch, as TinyLLaVA does).
     */
    public int imageFeatureTokens() {
        return vision.numPatches() + (vision.isSiglip() ? 0 : 1) - ("default".equals(visionFeatureSelectStrategy) ? 1 : 0);
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
        if (modelType != null && HF_TYPES.contains(modelType) && (root.has("text_config") || !root.has("mm_vision_tower"))) {
            cfg = hf(root, where, modelType);
        } else if (TINYLLAVA_TYPE.equals(modelType)) {
            cfg = tinyLlava(root, where);
        } else if (root.has("mm_vision_tower") || modelType != null && ORIGINAL_TYPES.contains(modelType)) {
            cfg = original(root, folder, where, visionTowerOverride);
        } else if (modelType != null && TextConfig.MODEL_TYPES.contains(modelType)) {
            if (visionTowerOverride == null)
                throw new ConfigException(where + ": a plain " + modelType + " model has no vision tower; pass --vision_tower DIR (a CLIP or SigLIP folder)");
            VisionConfig vision = readTower(visionTowerOverride);
            TextConfig text = parse(TextConfig.withFamilyDefaults(root), TextConfig.class, where);
            ProjectorSpec p = projector == null ? ProjectorSpec.LLAVA_DEFAULT : projector;
            int[] depthAct = parseProjectorType(p.type(), where, "mm_projector_type");
            String act = depthAct[1] == 0 ? "gelu" : actOf(p.type());
            if (vision.isSiglip()) vision = llavaNextSiglip(vision);
            AnyResSpec anyres = anyresFromFlags(p, vision.imageSize());
            cfg = vision.isSiglip()
                    ? new LlavaConfig(Family.LLAMA, vision, text, LLAVA_IMAGE_TOKEN_INDEX, depthAct[0], act, -1, "full",
                            visionTowerOverride, root, anyres)
                    : new LlavaConfig(Family.LLAMA, vision, text, LLAVA_IMAGE_TOKEN_INDEX, depthAct[0], act, p.selectLayer(),
                            strategyOf(p.selectFeature(), where, "mm_vision_select_feature"), visionTowerOverride, root, anyres);
        } else {
            throw new ConfigException(where + ": field 'model_type': '" + modelType
                    + "' is not a LLaVA (llava, llava_next, llava_onevision, llava_llama, llava_qwen, llava_mistral, tinyllava), LLaMA, Mistral or Qwen2 model");
        }
        cfg.validate(where);
        return cfg;
    }

    /**
     * LLaVA-NeXT's image flags ({@code --image_aspect_ratio anyres[_max_N]}, {@code --image_grid_pinpoints} as (w, h) pairs
     * or a range, {@code --mm_patch_merge_type spatial_unpad}) for a model built on a plain LLM folder: an AnyRes spec
     * read as LLaVA-NeXT reads it ({@code int()} in unpad), or null for one tile per image.
     */
    static AnyResSpec anyresFromFlags(ProjectorSpec p, int tile) {
        String aspect = p.imageAspectRatio(), merge = p.patchMergeType();
        if (aspect == null || !aspect.startsWith("anyres")) {
            if (merge != null && !merge.equals("flat"))
                throw new ConfigException("--mm_patch_merge_type " + merge + " needs --image_aspect_ratio anyres or anyres_max_N"
                        + " (one tile per image merges flat)");
            return null;
        }
        if (!"spatial_unpad".equals(merge))
            throw new ConfigException("--image_aspect_ratio " + aspect + ": --mm_patch_merge_type must be spatial_unpad (LLaVA-NeXT's"
                    + " AnyRes packing), got " + merge);
        if (p.gridPinpoints() == null)
            throw new ConfigException("--image_aspect_ratio " + aspect + ": --image_grid_pinpoints is missing");
        return new AnyResSpec(pinpoints(com.fasterxml.jackson.databind.node.TextNode.valueOf(p.gridPinpoints()), true, tile,
                "--image_grid_pinpoints"), anyresMax(aspect, "--image_aspect_ratio", "image_aspect_ratio"), false);
    }

    /**
     * LLaVA-NeXT's image flags on a model that already has its image path (null = not given): they must say what the
     * model does (its projector was trained on it), else a {@link ConfigException}; a plain LLM folder builds from them.
     */
    public List<String> checkImageFlags(String aspect, String pinpoints, String merge) {
        List<String> notes = new java.util.ArrayList<>();
        if (family == Family.LLAMA || aspect == null && pinpoints == null && merge == null) return notes;
        boolean any = aspect != null && aspect.startsWith("anyres");
        if (anyres == null) {
            if (any || merge != null && !merge.equals("flat"))
                throw new ConfigException("--image_aspect_ratio " + aspect + " / --mm_patch_merge_type " + merge
                        + ": this model takes one tile per image; AnyRes starts from a plain LLM folder with --pretrain_mm_mlp_adapter");
            return notes;
        }
        if (aspect != null && !any)
            throw new ConfigException("--image_aspect_ratio " + aspect + ": this model packs AnyRes tiles ("
                    + (anyres.maxN() == null ? "anyres" : "anyres_max_" + anyres.maxN()) + ")");
        if (any && !java.util.Objects.equals(anyresMax(aspect, "--image_aspect_ratio", "image_aspect_ratio"), anyres.maxN()))
            throw new ConfigException("--image_aspect_ratio " + aspect + " contradicts the model's "
                    + (anyres.maxN() == null ? "anyres" : "anyres_max_" + anyres.maxN()));
        if (merge != null && !merge.equals("spatial_unpad"))
            throw new ConfigException("--mm_patch_merge_type " + merge + ": this model merges AnyRes tiles with spatial_unpad");
        if (pinpoints != null) {
            List<int[]> flag = pinpoints(com.fasterxml.jackson.databind.node.TextNode.valueOf(pinpoints), true, vision.imageSize(),
                    "--image_grid_pinpoints");
            boolean same = flag.size() == anyres.pinpointsHW().size();
            for (int i = 0; same && i < flag.size(); i++) same = java.util.Arrays.equals(flag.get(i), anyres.pinpointsHW().get(i));
            if (!same) throw new ConfigException("--image_grid_pinpoints " + pinpoints + " contradicts the model's image_grid_pinpoints");
        }
        notes.add("--image_aspect_ratio / --image_grid_pinpoints / --mm_patch_merge_type: as the model's config");
        return notes;
    }

    /** transformers' LLaVA model types: {@code vision_config} and {@code text_config} inside. */
    static final List<String> HF_TYPES = List.of("llava", "llava_next", "llava_onevision");
    /** TinyLLaVA_Factory's model type ({@code TinyLlavaForConditionalGeneration}). */
    static final String TINYLLAVA_TYPE = "tinyllava";
    /** TinyLLaVA connector types llava4j runs: LLaVA's projectors under TinyLLaVA's names (GELU only, as TinyLLaVA's MLP). */
    static final Pattern TINYLLAVA_CONNECTOR = Pattern.compile("^linear$|^mlp\\d+x_gelu$");

    /** Original LLaVA / LLaVA-NeXT model types (LLM fields at the top level, the tower named by {@code mm_vision_tower}). */
    static final List<String> ORIGINAL_TYPES = List.of("llava", "llava_llama", "llava_qwen", "llava_mistral");

    /**
     * LLaVA-NeXT's {@code SigLipVisionTower}: it deletes the tower's last encoder layer and takes the output of the
     * new last one, whatever {@code mm_vision_select_layer} / {@code mm_vision_select_feature} say.
     */
    static VisionConfig llavaNextSiglip(VisionConfig folderConfig) {
        return folderConfig.withLayers(folderConfig.numHiddenLayers() - 1);
    }

    /**
     * {@code google/siglip-so400m-patch14-384}'s vision config, as LLaVA-NeXT's tower builds it, for original checkpoints
     * that name it by its hub id and carry the (trained) tower's weights themselves: 27 layers, the last deleted.
     */
    static VisionConfig siglipSo400m() {
        return llavaNextSiglip(new VisionConfig(1152, 4304, 27, 16, 384, 14, 3, "gelu_pytorch_tanh", 1e-6, 0.0,
                VisionConfig.SIGLIP, false));
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
        if (visionTower != null && !java.nio.file.Files.isDirectory(visionTower) && family == Family.ORIGINAL_LLAVA
                && visionTower.toString().equals(raw.path("mm_vision_tower").asText(null))) {
            notes.add("--vision_tower " + visionTower + ": the model's own mm_vision_tower; its weights are the model's");
            visionTower = null; // LLaVA-NeXT's scripts name the tower of a checkpoint that carries it
        }
        if (visionTower != null) {
            if (!java.nio.file.Files.isDirectory(visionTower))
                throw new ConfigException("--vision_tower " + visionTower + ": no such folder (llava4j never downloads)");
            if (family == Family.HF_LLAVA || family == Family.TINYLLAVA) {
                String kind = family == Family.HF_LLAVA ? "llava-hf" : "TinyLLaVA";
                VisionConfig flag = readTower(visionTower);
                if (!flag.equals(vision))
                    throw new ConfigException("--vision_tower " + visionTower + ": its config (" + flag + ") contradicts the " + kind
                            + " folder's vision_config (" + vision + "); a " + kind + " folder carries its own tower");
                notes.add("--vision_tower " + visionTower + ": same architecture as the " + kind + " folder's vision_config; the folder's"
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
        if (vision.isSiglip() && family == Family.ORIGINAL_LLAVA && (selectLayer != null || selectFeature != null)) {
            notes.add("--mm_vision_select_layer / --mm_vision_select_feature: ignored for a SigLIP tower, as LLaVA-NeXT ignores"
                    + " them (its tower drops the last layer and takes the new last one, every patch)");
            return notes;
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

    private static LlavaConfig hf(ObjectNode root, String where, String modelType) {
        JsonNode visionNode = child(root, "vision_config", where);
        VisionConfig vision = parse(visionNode, VisionConfig.class, where + " vision_config");
        TextConfig text = parse(TextConfig.withFamilyDefaults(child(root, "text_config", where)), TextConfig.class, where + " text_config");
        boolean onevision = "llava_onevision".equals(modelType);
        JsonNode layer = root.get("vision_feature_layer");
        if (layer != null && !layer.isInt())
            throw new ConfigException(where + ": field 'vision_feature_layer': expected one integer, got " + layer
                    + " (several feature layers are not supported)");
        JsonNode tok = root.has("image_token_index") ? root.get("image_token_index") : root.get("image_token_id");
        if (tok == null || !tok.isInt())
            throw new ConfigException(where + ": field 'image_token_index': missing or not an integer");
        String act = root.hasNonNull("projector_hidden_act") ? root.get("projector_hidden_act").asText() : "gelu";
        String strategy = root.hasNonNull("vision_feature_select_strategy") ? root.get("vision_feature_select_strategy").asText()
                : onevision ? "full" : "default";
        AnyResSpec anyres = null;
        if (!"llava".equals(modelType)) {
            List<int[]> pinpoints = root.hasNonNull("image_grid_pinpoints")
                    ? pinpoints(root.get("image_grid_pinpoints"), false, vision.imageSize(), where)
                    : onevision ? squareMultiples(vision.imageSize(), 6) : defaultNextPinpoints();
            Integer maxN = null;
            if (onevision) {
                String aspect = root.hasNonNull("vision_aspect_ratio") ? root.get("vision_aspect_ratio").asText() : "anyres_max_9";
                maxN = anyresMax(aspect, where, "vision_aspect_ratio");
            }
            anyres = new AnyResSpec(pinpoints, maxN, true);
        }
        return new LlavaConfig(Family.HF_LLAVA, vision, text, tok.asInt(), 2, act,
                layer == null ? (onevision ? -1 : -2) : layer.asInt(), strategy, null, root, anyres);
    }

    /**
     * TinyLLaVA's {@code tokenizer_model_max_length} (its training and inference truncation; TinyLlavaConfig's default
     * 2048); null for other families.
     */
    public Integer tokenizerModelMaxLength() {
        if (family != Family.TINYLLAVA) return null;
        JsonNode v = raw.get("tokenizer_model_max_length");
        return v == null || v.isNull() ? 2048 : v.asInt();
    }

    /** TinyLLaVA's {@code tokenizer_padding_side} ({@code right} by default); null for other families. */
    public String tokenizerPaddingSide() {
        if (family != Family.TINYLLAVA) return null;
        JsonNode v = raw.get("tokenizer_padding_side");
        return v == null || v.isNull() ? "right" : v.asText();
    }

    /**
     * A TinyLLaVA config (TinyLlavaConfig): the LLM and tower from {@code text_config} / {@code vision_config}, both of
     * which must name their {@code model_type} (TinyLLaVA writes them from the hub configs; a silent default would build
     * another model). {@link Unsupported} has refused other LLMs, connectors and towers by name before this.
     */
    private static LlavaConfig tinyLlava(ObjectNode root, String where) {
        JsonNode visionNode = child(root, "vision_config", where);
        JsonNode textNode = child(root, "text_config", where);
        if (!textNode.hasNonNull("model_type"))
            throw new ConfigException(where + ": field 'text_config.model_type': missing (TinyLLaVA writes the LLM's config with its type)");
        if (!visionNode.hasNonNull("model_type"))
            throw new ConfigException(where + ": field 'vision_config.model_type': missing (TinyLLaVA writes the tower's config with its type)");
        VisionConfig vision = parse(visionNode, VisionConfig.class, where + " vision_config");
        TextConfig text = parse(TextConfig.withFamilyDefaults(textNode), TextConfig.class, where + " text_config");
        String connector = root.hasNonNull("connector_type") ? root.get("connector_type").asText() : null;
        if (connector == null) throw new ConfigException(where + ": field 'connector_type': missing");
        int[] depthAct = parseProjectorType(connector, where, "connector_type");
        JsonNode layer = root.get("vision_feature_layer");
        if (layer != null && !layer.isNull() && !layer.isInt())
            throw new ConfigException(where + ": field 'vision_feature_layer': expected one integer, got " + layer);
        String feature = root.hasNonNull("vision_feature_select_strategy") ? root.get("vision_feature_select_strategy").asText() : "patch";
        if (!feature.equals("patch") && !feature.equals("cls_patch"))
            throw new ConfigException(where + ": field 'vision_feature_select_strategy': '" + feature + "' is not patch or cls_patch");
        return new LlavaConfig(Family.TINYLLAVA, vision, text, LLAVA_IMAGE_TOKEN_INDEX, depthAct[0],
                depthAct[1] == 0 ? "gelu" : actOf(connector), layer == null || layer.isNull() ? -2 : layer.asInt(),
                strategyOf(feature, where, "vision_feature_select_strategy"), null, root);
    }

    /** transformers' LlavaNextConfig default pinpoints (LLaVA-1.6 at 336 px), as (height, width). */
    private static List<int[]> defaultNextPinpoints() {
        return List.of(new int[]{336, 672}, new int[]{672, 336}, new int[]{672, 672}, new int[]{1008, 336}, new int[]{336, 1008});
    }

    /** (i·p, j·p) for i, j in 1..n, i outer (LlavaOnevisionConfig's default list; symmetric, so the order is moot). */
    private static List<int[]> squareMultiples(int p, int n) {
        List<int[]> out = new java.util.ArrayList<>();
        for (int i = 1; i <= n; i++) for (int j = 1; j <= n; j++) out.add(new int[]{i * p, j * p});
        return out;
    }

    /**
     * A config's {@code image_grid_pinpoints} as (height, width) pairs in the config's order: transformers lists pairs
     * as (height, width), original LLaVA / LLaVA-NeXT as (width, height) ({@code widthFirst}) or as a range string
     * {@code "(1x1),...,(6x6)"} of tile multiples ({@link io.llava4j.data.AnyRes#pinpointsHW}).
     */
    public static List<int[]> pinpoints(JsonNode node, boolean widthFirst, int tile, String where) {
        List<int[]> hw;
        try {
            hw = io.llava4j.data.AnyRes.pinpointsHW(node, widthFirst, tile);
        } catch (IllegalArgumentException e) {
            throw new ConfigException(where + ": field 'image_grid_pinpoints': " + e.getMessage(), e);
        }
        for (int[] p : hw)
            Check.that(p[0] > 0 && p[1] > 0 && p[0] % tile == 0 && p[1] % tile == 0, where, "image_grid_pinpoints",
                    java.util.Arrays.toString(p) + " is not a positive multiple of the tile size " + tile);
        if (hw.isEmpty()) throw new ConfigException(where + ": field 'image_grid_pinpoints': empty");
        return hw;
    }

    /** {@code anyres} → null, {@code anyres_max_N} → N. */
    static Integer anyresMax(String aspect, String where, String field) {
        try {
            return io.llava4j.data.AnyRes.maxTiles(aspect);
        } catch (IllegalArgumentException e) {
            throw new ConfigException(where + ": field '" + field + "': '" + aspect + "' is not anyres or anyres_max_N", e);
        }
    }

    private static LlavaConfig original(ObjectNode root, Path folder, String where, Path override) {
        String towerName = text(root, "mm_vision_tower");
        if (override != null && !Files.isDirectory(override) && override.toString().equals(towerName))
            override = null; // --vision_tower naming the checkpoint's own tower by its hub id, as LLaVA-NeXT's scripts do
        Path tower = override;
        VisionConfig vision;
        if (tower == null && towerName != null) tower = resolveLocal(folder, towerName);
        if (tower != null) {
            vision = readTower(tower);
            if (vision.isSiglip()) vision = llavaNextSiglip(vision);
        } else if (towerName != null && towerName.contains("siglip-so400m-patch14-384")) {
            vision = siglipSo400m(); // its weights must be in the checkpoint (model.vision_tower.vision_tower.*)
        } else {
            if (towerName == null)
                throw new ConfigException(where + ": field 'mm_vision_tower': missing; pass --vision_tower DIR");
            throw new ConfigException(where + ": field 'mm_vision_tower': '" + towerName
                    + "' is not a local folder (llava4j never downloads); pass --vision_tower DIR with that CLIP or SigLIP model");
        }
        ObjectNode textNode = root.deepCopy();
        textNode.put("model_type", originalTextType(root));
        TextConfig text = parse(TextConfig.withFamilyDefaults(textNode), TextConfig.class, where);
        String type = root.hasNonNull("mm_projector_type") ? root.get("mm_projector_type").asText() : "linear";
        int[] depthAct = parseProjectorType(type, where, "mm_projector_type");
        int layer = root.hasNonNull("mm_vision_select_layer") ? root.get("mm_vision_select_layer").asInt() : -1;
        String feature = root.hasNonNull("mm_vision_select_feature") ? root.get("mm_vision_select_feature").asText() : "patch";
        String strategy = strategyOf(feature, where, "mm_vision_select_feature");
        if (vision.isSiglip()) { // LLaVA-NeXT's SigLIP tower ignores both flags
            layer = -1;
            strategy = "full";
        }
        if (root.hasNonNull("mm_hidden_size") && root.get("mm_hidden_size").asInt() != vision.hiddenSize())
            throw new ConfigException(where + ": field 'mm_hidden_size': " + root.get("mm_hidden_size").asInt()
                    + " differs from the vision tower's hidden_size " + vision.hiddenSize() + " (" + (tower != null ? tower : towerName) + ")");
        AnyResSpec anyres = null;
        String aspect = text(root, "image_aspect_ratio");
        if (aspect != null && aspect.startsWith("anyres")) {
            if (!root.hasNonNull("image_grid_pinpoints"))
                throw new ConfigException(where + ": field 'image_grid_pinpoints': missing for image_aspect_ratio '" + aspect + "'");
            anyres = new AnyResSpec(pinpoints(root.get("image_grid_pinpoints"), true, vision.imageSize(), where),
                    anyresMax(aspect, where, "image_aspect_ratio"), false);
        }
        return new LlavaConfig(Family.ORIGINAL_LLAVA, vision, text, LLAVA_IMAGE_TOKEN_INDEX, depthAct[0],
                depthAct[1] == 0 ? "gelu" : actOf(type), layer, strategy, tower, root, anyres);
    }

    /** The LLM of an original LLaVA config: {@code llava_qwen} / {@code LlavaQwenForCausalLM} → qwen2, Mistral → mistral, else llama. */
    static String originalTextType(JsonNode root) {
        String type = String.valueOf(text(root, "model_type"));
        String arch = String.valueOf(root.path("architectures"));
        if (type.equals("llava_qwen") || arch.contains("Qwen")) return "qwen2";
        if (type.equals("llava_mistral") || arch.contains("Mistral")) return "mistral";
        return "llama";
    }

    /** Reads a CLIP folder's config.json (see {@link #readTower}); a SigLIP folder is refused. */
    public static VisionConfig readClip(Path folder) {
        VisionConfig v = readTower(folder);
        if (v.isSiglip())
            throw new ConfigException(folder.resolve("config.json") + ": field 'model_type': a SigLIP tower where a CLIP one is expected");
        return v;
    }

    /**
     * Reads a vision tower folder's config.json: a CLIPVisionModel / SiglipVisionModel config, or a full CLIP / SigLIP
     * config with {@code vision_config}.
     */
    public static VisionConfig readTower(Path folder) {
        Path file = folder.resolve("config.json");
        ObjectNode root = readObject(file);
        String type = text(root, "model_type");
        boolean full = "clip".equals(type) || "siglip".equals(type) || root.has("vision_config");
        JsonNode vision = full ? child(root, "vision_config", file.toString()) : root;
        String visionType = vision.has("model_type") ? vision.get("model_type").asText()
                : "siglip".equals(type) ? VisionConfig.SIGLIP : VisionConfig.CLIP;
        if (!VisionConfig.CLIP.equals(visionType) && !VisionConfig.SIGLIP.equals(visionType))
            throw new ConfigException(file + ": field 'model_type': '" + visionType
                    + "' is not a CLIP or SigLIP vision model (clip_vision_model, clip, siglip_vision_model, siglip)");
        ObjectNode typed = ((ObjectNode) vision).deepCopy();
        typed.put("model_type", visionType);
        VisionConfig v = parse(typed, VisionConfig.class, file.toString());
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
        boolean nested = family == Family.HF_LLAVA || family == Family.TINYLLAVA;
        JsonNode textNode = nested ? raw.path("text_config") : raw;
        Check.that(text.effectiveSlidingWindow() == null || !"qwen2".equals(text.modelType()), where + " (text)", "use_sliding_window",
                "Qwen2's sliding-window attention is not implemented (use_sliding_window true)");
        Check.that(textNode.hasNonNull("head_dim") || text.hiddenSize() % text.numAttentionHeads() == 0, where + " (text)",
                "hidden_size", "hidden_size " + text.hiddenSize() + " is not divisible by num_attention_heads "
                        + text.numAttentionHeads() + " (and no head_dim is given)");
        int n = vision.numHiddenLayers() + 1;
        Check.that(visionFeatureLayer >= -n && visionFeatureLayer < n, where,
                nested ? "vision_feature_layer" : "mm_vision_select_layer",
                visionFeatureLayer + " is outside the " + n + " hidden states of the vision tower");
        Check.oneOf(where, "vision_feature_select_strategy", visionFeatureSelectStrategy, List.of("default", "full"));
        Check.oneOf(where, "projector_hidden_act", projectorAct, Activations.NAMES);
        Check.that(projectorDepth != 0 || vision.hiddenSize().equals(text.hiddenSize()), where, "mm_projector_type",
                "identity needs equal vision and text widths, got " + vision.hiddenSize() + " and " + text.hiddenSize());
        Check.that(imageTokenIndex == LLAVA_IMAGE_TOKEN_INDEX || imageTokenIndex >= 0 && imageTokenIndex < text.vocabSize(), where,
                "image_token_index", imageTokenIndex + " is outside the vocabulary of " + text.vocabSize()
                        + (imageTokenIndex < 0 ? " (and not LLaVA's placeholder " + LLAVA_IMAGE_TOKEN_INDEX + ")" : ""));
        String aspect = imageAspectRatio();
        Check.that(aspect == null || aspect.equals("square") || aspect.equals("pad") || anyres != null, where, "image_aspect_ratio",
                "'" + aspect + "' is not supported (square, pad, anyres, anyres_max_N)");
        if (family == Family.TINYLLAVA) {
            Check.that(tokenizerModelMaxLength() > 0, where, "tokenizer_model_max_length", "must be > 0, got " + tokenizerModelMaxLength());
            Check.oneOf(where, "tokenizer_padding_side", tokenizerPaddingSide(), List.of("right", "left"));
        }
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
