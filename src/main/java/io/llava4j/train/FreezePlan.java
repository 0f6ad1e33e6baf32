package io.llava4j.train;

import io.llava4j.engine.Tensors;
import io.llava4j.model.Llava;
import org.bytedeco.pytorch.Tensor;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The one source of truth for what trains. Derived once from LLaVA's flags, in LLaVA's order:
 * <ol>
 *   <li>start, with LoRA adapters attached ({@code --lora_enable True}, see {@link LoraAdapters}): the adapters and the
 *       projector train, everything else is frozen (PEFT freezes the base model; LLaVA's initialize_vision_modules
 *       then re-enables the projector);</li>
 *   <li>start, without adapters: the LLM (embed, layers, norm, lm_head) and the projector train, the vision tower is frozen;</li>
 *   <li>{@code --freeze_backbone}: embed_tokens, layers and norm freeze (lm_head does not);</li>
 *   <li>{@code --tune_mm_mlp_adapter}: everything freezes, then the projector unfreezes;</li>
 *   <li>{@code --freeze_mm_mlp_adapter}: the projector freezes (wins over tune_mm_mlp_adapter);</li>
 *   <li>{@code --unfreeze_mm_vision_tower}: the vision tower trains.</li>
 * </ol>
 * {@link #apply} is the only place that sets {@code requires_grad}; the optimizer is built from {@link #trainable()}.
 */
public final class FreezePlan {

    /** LLaVA's freezing flags. */
    public record Flags(boolean tuneMmMlpAdapter, boolean freezeBackbone, boolean freezeMmMlpAdapter, boolean unfreezeMmVisionTower) {
        public static final Flags STAGE1 = new Flags(true, false, false, false);
        public static final Flags STAGE2 = new Flags(false, false, false, false);

        /** LLaVA-NeXT's {@code --mm_tunable_parts} names. */
        public static final java.util.List<String> TUNABLE_PARTS = java.util.List.of("mm_vision_tower", "mm_mlp_adapter", "mm_language_model");

        /**
         * LLaVA's four flags, or, when {@code tunableParts} (LLaVA-NeXT's {@code --mm_tunable_parts}, comma-separated) is
         * given, the flags that train exactly those parts: LLaVA-NeXT freezes everything, then {@code mm_mlp_adapter}
         * unfreezes the projector (not {@code image_newline}), {@code mm_vision_tower} the tower, and
         * {@code mm_language_model} every other tensor (the LLM and {@code image_newline}); the four flags are then
         * ignored, as there.
         */
        public static Flags of(boolean tune, boolean freezeBackbone, boolean freezeProjector, boolean unfreezeVision, String tunableParts) {
            if (tunableParts == null) return new Flags(tune, freezeBackbone, freezeProjector, unfreezeVision);
            java.util.Set<String> parts = new java.util.LinkedHashSet<>();
            for (String p : tunableParts.split(",")) {
                String t = p.trim();
                if (t.isEmpty()) continue;
                if (!TUNABLE_PARTS.contains(t))
                    throw new IllegalArgumentException("--mm_tunable_parts: '" + t + "' is not one of " + TUNABLE_PARTS
                            + (t.equals("mm_vision_resampler") ? " (llava4j has no vision resampler)" : ""));
                parts.add(t);
            }
            boolean llm = parts.contains("mm_language_model");
            return new Flags(!llm, false, !parts.contains("mm_mlp_adapter"), parts.contains("mm_vision_tower"));
        }
    }

    private final Map<String, Boolean> trains; // llava-hf name → trains

    private FreezePlan(Map<String, Boolean> trains) {
        this.trains = Collections.unmodifiableMap(trains);
    }

    public static FreezePlan of(Llava model, Flags f) {
        Map<String, Boolean> t = new LinkedHashMap<>();
        java.util.Set<String> names = Tensors.namedParameters(model).keySet();
        boolean lora = names.stream().anyMatch(ModuleGroups::isLora);
        for (String name : names) {
            t.put(name, trainsPart(ModuleGroups.partOf(name), f, lora));
        }
        if (!t.containsValue(true)) throw nothingToTrain(f);
        return new FreezePlan(t);
    }

    /** A plan from a decision per parameter name (the plans of a {@link FreezeSchedule}); every parameter gets one. */
    static FreezePlan where(Llava model, java.util.function.Predicate<String> trains) {
        Map<String, Boolean> t = new LinkedHashMap<>();
        for (String name : Tensors.namedParameters(model).keySet()) t.put(name, trains.test(name));
        return new FreezePlan(t);
    }

    /** Refuses flags that freeze every part, before any model is built. */
    public static void requireSomethingTrains(Flags f) {
        if (ModuleGroups.PARTS.stream().noneMatch(p -> trainsPart(p, f))) throw nothingToTrain(f);
    }

    private static IllegalArgumentException nothingToTrain(Flags f) {
        return new IllegalArgumentException("nothing to train: the flags " + describe(f) + " freeze every parameter"
                + (f.tuneMmMlpAdapter() && f.freezeMmMlpAdapter() ? " (--tune_mm_mlp_adapter trains only the projector and --freeze_mm_mlp_adapter freezes it)" : ""));
    }

    /** Whether the flags train a part ({@link ModuleGroups#PARTS}): the rule above, decided per part. */
    public static boolean trainsPart(String part, Flags f) {
        return trainsPart(part, f, false);
    }

    /** The rule per part; with LoRA adapters attached, the base starts frozen and the adapters and projector train (PEFT). */
    public static boolean trainsPart(String part, Flags f, boolean lora) {
        boolean on = lora ? part.equals("llm.lora") || part.equals("projector") : !part.equals("vision");
        // image_newline (AnyRes) sits in LLaVA-NeXT's model.model beside embed_tokens: it freezes with the backbone, trains
        // in stage 2 and under mm_language_model, and stays frozen in stage 1 and under LoRA
        if (f.freezeBackbone() && (part.equals("llm.embed") || part.equals("llm.layers") || part.equals("llm.norm")
                || part.equals("image_newline"))) on = false;
        if (f.tuneMmMlpAdapter()) on = part.equals("projector");
        if (f.freezeMmMlpAdapter() && part.equals("projector")) on = false;
        if (f.unfreezeMmVisionTower() && part.equals("vision")) on = true;
        return on;
    }

    private static String describe(Flags f) {
        return "--tune_mm_mlp_adapter " + cap(f.tuneMmMlpAdapter()) + " --freeze_backbone " + cap(f.freezeBackbone())
                + " --freeze_mm_mlp_adapter " + cap(f.freezeMmMlpAdapter()) + " --unfreeze_mm_vision_tower " + cap(f.unfreezeMmVisionTower());
    }

    private static String cap(boolean b) {
        return b ? "True" : "False";
    }

    /** Sets requires_grad on every parameter of {@code model} as planned. */
    public void apply(Llava model) {
        for (Map.Entry<String, Tensor> e : Tensors.namedParameters(model).entrySet()) {
            Boolean on = trains.get(e.getKey());
            if (on == null) throw new IllegalStateException("parameter " + e.getKey() + " is not in the freeze plan");
            e.getValue().requires_grad_(on);
        }
    }

    public boolean trains(String name) {
        return Boolean.TRUE.equals(trains.get(name));
    }

    /** Names of the trainable parameters, in model order. */
    public java.util.List<String> trainable() {
        return trains.entrySet().stream().filter(Map.Entry::getValue).map(Map.Entry::getKey).toList();
    }

    /** Whether any parameter of a part ({@link ModuleGroups#PARTS}) trains. */
    public boolean partTrains(String part) {
        return trains.entrySet().stream().anyMatch(e -> e.getValue() && ModuleGroups.partOf(e.getKey()).equals(part));
    }
}
