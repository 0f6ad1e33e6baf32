package io.llava4j.data;

/**
 * What can be wrong with one training record, and what it means for a run ({@link Effect}). Each class is named in
 * {@link DataValidator}'s report with its count.
 */
public enum DataProblem {
    /** Not a JSON object, a missing or mistyped field ({@link LlavaJson}). */
    JSON_SHAPE("json shape", Effect.STOPS),
    /** An unknown role, or roles that do not alternate human / gpt (LLaVA asserts). */
    ROLES("roles", Effect.STOPS),
    /** A conversation the template cannot build (plain: not exactly 2 turns; llava_llama_2: an empty first message). */
    TEMPLATE("template", Effect.STOPS),
    /** {@code <image>} placeholders that do not match the record's image field. */
    IMAGE_COUNT("image count", Effect.STOPS),
    /** The image file is not there. */
    IMAGE_MISSING("image missing", Effect.STOPS),
    /** The image file is empty or does not decode. */
    IMAGE_UNREADABLE("image unreadable", Effect.STOPS),
    /** The image path resolves outside {@code --image_folder} ({@code ..}, an absolute path, a symlink). */
    PATH_ESCAPE("path escape", Effect.STOPS),
    /** Anything else that made preparing the sample fail. */
    OTHER("other", Effect.STOPS),
    /** LLaVA's "tokenization mismatch": the template's rounds do not add up, every label is masked. */
    MASKING_MISMATCH("masking mismatch", Effect.TRAINS_ON_NOTHING),
    /** No supervised token at all (e.g. every answer empty). */
    FULLY_MASKED("fully masked", Effect.TRAINS_ON_NOTHING),
    /** Longer than {@code --model_max_length} (image rows included), and the cut removes every supervised token. */
    TRUNCATED_TO_NO_LABEL("truncated to no label", Effect.TRAINS_ON_NOTHING),
    /** Longer than {@code --model_max_length} (image rows included): the tail is cut, some labels remain. */
    TRUNCATED("over-long, truncated", Effect.NOTE),
    /** The record has an image but no {@code <image>} in a kept turn: it trains as text only. */
    IMAGE_UNUSED("image unused", Effect.NOTE);

    /** What a problem does to a run. */
    public enum Effect {
        /** LLaVA refuses or crashes on it: the run stops unless told to skip ({@code --on_bad_sample skip}). */
        STOPS,
        /** LLaVA accepts it but it trains on nothing: counted and named in a warning. */
        TRAINS_ON_NOTHING,
        /** Worth knowing; the sample still trains. */
        NOTE
    }

    private final String label;
    private final Effect effect;

    DataProblem(String label, Effect effect) {
        this.label = label;
        this.effect = effect;
    }

    public String label() {
        return label;
    }

    public Effect effect() {
        return effect;
    }
}
