package io.llava4j.io;

import java.util.Collection;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * How a checkpoint names LLaVA's tensors. llava4j's modules carry the llava-hf names ({@link #LLAVA_HF}); every other
 * layout is a renaming of those prefixes, applied when reading and writing.
 *
 * <ul>
 *   <li>{@link #LLAVA_HF}: {@code vision_tower.…}, {@code multi_modal_projector.linear_k.…}, {@code language_model.model.…},
 *       {@code language_model.lm_head.weight} (transformers before 4.52);</li>
 *   <li>{@link #TRANSFORMERS}: {@code model.vision_tower.…}, {@code model.multi_modal_projector.…},
 *       {@code model.language_model.…}, {@code lm_head.weight} (transformers 4.52 and later);</li>
 *   <li>{@link #TINYLLAVA}: TinyLLaVA_Factory's {@code TinyLlavaForConditionalGeneration}: the LLM as llava-hf
 *       ({@code language_model.model.…}, {@code language_model.lm_head.weight}), the whole tower as
 *       {@code vision_tower._vision_tower.vision_model.…} (its unused pooling head {@code head.…} included), the
 *       projector as {@code connector._connector.{0,2,…}} (LLaVA's Sequential indices; linear: {@code connector._connector.});</li>
 *   <li>{@link #ORIGINAL_LLAVA}: {@code model.…} and {@code lm_head.weight} for the LLM, {@code model.mm_projector.{0,2,…}}
 *       (linear: {@code model.mm_projector.}), the CLIP tower in its own folder as {@code vision_model.…} (or inside the
 *       checkpoint as {@code model.vision_tower.vision_tower.vision_model.…} when it was trained);</li>
 *   <li>{@link #LLAMA}: a plain LLaMA checkpoint ({@code model.…}, {@code lm_head.weight}); tower and projector come
 *       from elsewhere.</li>
 * </ul>
 */
public enum Layout {
    LLAVA_HF, TRANSFORMERS, TINYLLAVA, ORIGINAL_LLAVA, LLAMA;

    /** Where a tensor lives: the checkpoint itself or the separate CLIP folder. */
    public enum Source { CHECKPOINT, VISION_FOLDER, NONE }

    public static final String VISION = "vision_tower.";
    public static final String PROJECTOR = "multi_modal_projector.";
    public static final String LLM = "language_model.model.";
    public static final String LM_HEAD = "language_model.lm_head.";
    /** AnyRes models' row separator: {@code image_newline} (llava-hf), {@code model.image_newline} (transformers, original). */
    public static final String IMAGE_NEWLINE = "image_newline";
    /** Prefix of a trained tower inside an original LLaVA checkpoint. */
    public static final String ORIGINAL_VISION_IN_CHECKPOINT = "model.vision_tower.vision_tower.";

    /** TinyLLaVA's tower and connector prefixes. */
    public static final String TINYLLAVA_VISION = "vision_tower._vision_tower.", TINYLLAVA_CONNECTOR = "connector._connector.";

    private static final Pattern PROJ = Pattern.compile("^multi_modal_projector\\.linear_(\\d+)\\.(.+)$");
    private static final Pattern ORIG_PROJ = Pattern.compile("^(?:.*\\.)?mm_projector\\.(?:(\\d+)\\.)?(weight|bias)$");

    /** Which layout a set of checkpoint tensor names is in; null when it is none of them. */
    public static Layout detect(Collection<String> keys) {
        boolean hf = false, tr = false, tiny = false, llama = false, proj = false;
        for (String k : keys) {
            if (k.startsWith(TINYLLAVA_VISION) || k.startsWith(TINYLLAVA_CONNECTOR)) tiny = true;
            else if (k.startsWith(LLM) || k.startsWith(LM_HEAD) || k.startsWith(PROJECTOR) || k.startsWith(VISION)) hf = true;
            else if (k.startsWith("model.language_model.") || k.startsWith("model.multi_modal_projector.")) tr = true;
            else if (k.startsWith("model.mm_projector.")) proj = true;
            else if (k.startsWith("model.layers.") || k.startsWith("model.embed_tokens.")) llama = true;
        }
        if (tr) return TRANSFORMERS;
        if (tiny) return TINYLLAVA; // its LLM names are llava-hf's: the tower and connector tell them apart
        if (hf) return LLAVA_HF;
        if (llama) return proj ? ORIGINAL_LLAVA : LLAMA;
        return null;
    }

    /** Where the llava-hf named tensor {@code name} is stored in this layout. */
    public Source source(String name) {
        if (this == LLAVA_HF || this == TRANSFORMERS || this == TINYLLAVA) return Source.CHECKPOINT;
        if (name.startsWith(VISION)) return Source.VISION_FOLDER;
        if (name.startsWith(PROJECTOR) || name.equals(IMAGE_NEWLINE)) return this == LLAMA ? Source.NONE : Source.CHECKPOINT;
        return Source.CHECKPOINT;
    }

    /**
     * The name of llava-hf tensor {@code name} in this layout's files ({@link Source#VISION_FOLDER} names are those of a
     * CLIPVisionModel). {@code projectorDepth} decides LLaVA's projector names (linear vs Sequential indices).
     */
    public String fileName(String name, int projectorDepth) {
        return switch (this) {
            case LLAVA_HF -> name;
            case TRANSFORMERS -> name.startsWith(LM_HEAD) ? "lm_head." + name.substring(LM_HEAD.length())
                    : name.startsWith(LLM) ? "model.language_model." + name.substring(LLM.length())
                    : "model." + name;
            case TINYLLAVA -> {
                if (name.startsWith(VISION)) yield TINYLLAVA_VISION + name.substring(VISION.length());
                if (name.startsWith(PROJECTOR))
                    yield TINYLLAVA_CONNECTOR + originalProjectorName(name, projectorDepth).substring("model.mm_projector.".length());
                yield name; // language_model.model.…, language_model.lm_head.…
            }
            case ORIGINAL_LLAVA, LLAMA -> {
                if (name.startsWith(VISION)) yield name.substring(VISION.length());
                if (name.startsWith(LM_HEAD)) yield "lm_head." + name.substring(LM_HEAD.length());
                if (name.startsWith(LLM)) yield "model." + name.substring(LLM.length());
                if (name.equals(IMAGE_NEWLINE)) yield "model." + IMAGE_NEWLINE;
                yield originalProjectorName(name, projectorDepth);
            }
        };
    }

    /** {@code multi_modal_projector.linear_k.P} → LLaVA's {@code model.mm_projector.{2(k-1)}.P} ({@code model.mm_projector.P} for linear). */
    public static String originalProjectorName(String name, int projectorDepth) {
        Matcher m = PROJ.matcher(name);
        if (!m.matches()) throw new IllegalArgumentException("not a projector tensor: " + name);
        int k = Integer.parseInt(m.group(1));
        return projectorDepth == 1 ? "model.mm_projector." + m.group(2) : "model.mm_projector." + 2 * (k - 1) + "." + m.group(2);
    }

    /**
     * The llava-hf projector name for a key of a stage-1 projector file: any prefix before {@code mm_projector.}
     * (LLaVA's own {@code model.mm_projector.0.weight}, DeepSpeed's {@code module.…}), or already llava-hf
     * ({@code multi_modal_projector.linear_1.weight}). Null when the key is no projector tensor.
     */
    public static String projectorNameFromFile(String key, int projectorDepth) {
        int at = key.indexOf(PROJECTOR);
        if (at >= 0) return key.substring(at);
        Matcher m = ORIG_PROJ.matcher(key);
        if (!m.matches()) return null;
        if (m.group(1) == null) return projectorDepth == 1 ? PROJECTOR + "linear_1." + m.group(2) : null;
        int idx = Integer.parseInt(m.group(1));
        if (projectorDepth == 1 || idx % 2 != 0) return null;
        return PROJECTOR + "linear_" + (idx / 2 + 1) + "." + m.group(2);
    }
}
