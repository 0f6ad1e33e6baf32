package io.llava4j.train;

import java.util.List;

/**
 * What a stage of a plan trains, per module, and how it unfreezes more as it runs. Resolved against a model by
 * {@link FreezeSchedule}, which turns it into one {@link FreezePlan} per optimizer step.
 *
 * @param vision    FROZEN, FULL or LAYERS (encoder layers {@code from..to}; to = top also trains post_layernorm)
 * @param projector FROZEN or FULL
 * @param llm       FROZEN, FULL (embed_tokens, layers, norm, lm_head), LAYERS (decoder layers {@code from..to}; to =
 *                  top also trains the final norm and lm_head) or LORA (base weights frozen; adapters are LoRA's)
 * @param unfreeze  progressive unfreezing inside the stage, or null
 */
public record Trainability(Module vision, Module projector, Module llm, Unfreeze unfreeze) {

    public enum Kind { FROZEN, FULL, LAYERS, LORA }

    /** The highest layer of a module, whatever its depth: {@code layers k..N}. */
    public static final int TOP = Integer.MAX_VALUE;

    /** One module's trainability; {@code from}/{@code to} for LAYERS ({@code to} may be {@link #TOP}). */
    public record Module(Kind kind, int from, int to, Lora lora) {
        public static final Module FROZEN = new Module(Kind.FROZEN, 0, 0, null);
        public static final Module FULL = new Module(Kind.FULL, 0, 0, null);

        public static Module layers(int from, int to) {
            return new Module(Kind.LAYERS, from, to, null);
        }

        public boolean trains() {
            return kind != Kind.FROZEN;
        }

        @Override
        public String toString() {
            return switch (kind) {
                case FROZEN -> "frozen";
                case FULL -> "full";
                case LAYERS -> "layers " + from + ".." + (to == TOP ? "N" : String.valueOf(to));
                case LORA -> "lora{r=" + lora.r() + ", alpha=" + lora.alpha() + ", dropout=" + lora.dropout() + ", targets=" + lora.targets() + "}";
            };
        }
    }

    /** LoRA on the LLM (PEFT's definition). */
    public record Lora(int r, double alpha, double dropout, List<String> targets) {
        public static final List<String> LLAMA_TARGETS = List.of("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj");
    }

    /**
     * Top-down unfreezing of {@code module} ("llm" or "vision", given as {@code layers k..N}): every {@code every}
     * optimizer steps the next {@code add} layers below the lowest trainable one start to train, down to layer
     * {@code until}; each newly trainable group's learning rate warms up linearly over {@code warmup} steps
     * (factor (j + 1) / warmup at its j-th step; 0 = none).
     */
    public record Unfreeze(String module, int every, int add, int warmup, int until) {}

    /** LLaVA's stage 1 (projector only) and stage 2 (projector and LLM). */
    public static final Trainability STAGE1 = new Trainability(Module.FROZEN, Module.FULL, Module.FROZEN, null);
    public static final Trainability STAGE2 = new Trainability(Module.FROZEN, Module.FULL, Module.FULL, null);

    /** Only the projector trains (the stage writes LLaVA's stage-1 files). */
    public boolean onlyProjector() {
        return !vision.trains() && projector.trains() && !llm.trains();
    }

    @Override
    public String toString() {
        return "vision " + vision + ", projector " + projector + ", llm " + llm + (unfreeze == null ? ""
                : ", unfreeze " + unfreeze.module() + " " + unfreeze.add() + " layer(s) every " + unfreeze.every()
                  + " steps down to layer " + unfreeze.until() + " (warm-up " + unfreeze.warmup() + ")");
    }
}
