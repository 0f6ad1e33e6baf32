package io.llava4j.train;

import io.llava4j.config.LlavaConfig;
import io.llava4j.engine.Tensors;
import io.llava4j.io.Layout;
import io.llava4j.model.Llava;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A stage's {@link Trainability} resolved against a model: one {@link FreezePlan} per optimizer step. Trainability only
 * grows (progressive unfreezing adds layers top-down), so the plan of the last change, {@link #union()}, holds every
 * tensor the stage ever trains: the optimizer's groups are built from it, while each step applies {@link #at} — a tensor
 * not yet trainable has no gradient, so AdamW gives it no state (and leaves it bit-identical) until it unfreezes.
 */
public final class FreezeSchedule {
    private final List<Integer> steps = new ArrayList<>(); // steps where trainability changes, ascending; the first is 0
    private final List<FreezePlan> plans = new ArrayList<>(); // the plan from steps[i] on
    private final Map<String, Integer> since = new HashMap<>(); // tensor → first step it trains
    private final int warmup;
    private FreezePlan applied; // the plan last set on the model

    private FreezeSchedule(int warmup) {
        this.warmup = warmup;
    }

    /** Layer counts (LLM, vision) of a model or of its config: the ranges of a plan are checked against them. */
    public record Depth(int llm, int vision) {
        public static Depth of(LlavaConfig c) {
            return new Depth(c.text().numHiddenLayers(), c.vision().numHiddenLayers());
        }
    }

    /** Checks the layer ranges of {@code t} against a model's depth; the message names the module and the key. */
    public static void check(Trainability t, Depth d) {
        checkRange("vision", t.vision(), d.vision());
        checkRange("llm", t.llm(), d.llm());
        Trainability.Unfreeze u = t.unfreeze();
        if (u == null) return;
        Trainability.Module m = u.module().equals("llm") ? t.llm() : t.vision();
        if (m.kind() != Trainability.Kind.LAYERS || m.to() != Trainability.TOP)
            throw new IllegalArgumentException("unfreeze: module " + u.module() + " must start as 'layers k..N' (top-down unfreezing), is " + m);
        if (u.until() >= m.from())
            throw new IllegalArgumentException("unfreeze.until: " + u.until() + " is not below the stage's lowest trainable "
                    + u.module() + " layer " + m.from());
    }

    private static void checkRange(String module, Trainability.Module m, int layers) {
        if (m.kind() != Trainability.Kind.LAYERS) return;
        int top = m.to() == Trainability.TOP ? layers - 1 : m.to();
        if (m.from() >= layers || top >= layers)
            throw new IllegalArgumentException(module + ": " + m + ", but the " + module + " has " + layers + " layers (0.."
                    + (layers - 1) + ")");
    }

    public static FreezeSchedule of(Llava model, Trainability t) {
        check(t, Depth.of(model.config));
        Set<String> names = Tensors.namedParameters(model).keySet();
        int llmN = model.config.text().numHiddenLayers(), visN = model.config.vision().numHiddenLayers();
        Trainability.Unfreeze u = t.unfreeze();
        FreezeSchedule s = new FreezeSchedule(u == null ? 0 : u.warmup());
        Map<String, Boolean> on = new LinkedHashMap<>();
        for (String n : names) on.put(n, trainsAtStart(n, t, llmN, visN));
        s.add(0, on, model);
        if (u != null) {
            int from = (u.module().equals("llm") ? t.llm() : t.vision()).from();
            for (int g = 1; from > u.until(); g++) {
                int lo = Math.max(u.until(), from - u.add());
                for (String n : names) {
                    int i = layerIndex(n, u.module());
                    if (i >= lo && i < from) on.put(n, true);
                }
                from = lo;
                s.add(g * u.every(), on, model);
            }
        }
        if (s.plans.get(0).trainable().isEmpty())
            throw new IllegalArgumentException("nothing to train at the stage's first step: " + t);
        return s;
    }

    private void add(int step, Map<String, Boolean> on, Llava model) {
        for (Map.Entry<String, Boolean> e : on.entrySet()) if (e.getValue()) since.putIfAbsent(e.getKey(), step);
        steps.add(step);
        Map<String, Boolean> copy = new LinkedHashMap<>(on);
        plans.add(FreezePlan.where(model, copy::get));
    }

    private static boolean trainsAtStart(String name, Trainability t, int llmN, int visN) {
        String part = ModuleGroups.partOf(name);
        if (part.equals("projector")) return t.projector().trains();
        if (part.equals("vision")) {
            Trainability.Module m = t.vision();
            return switch (m.kind()) {
                case FULL -> true;
                case LAYERS -> inLayers(layerIndex(name, "vision"), m, visN)
                        || (m.to() == Trainability.TOP || m.to() >= visN - 1) && name.startsWith(Layout.VISION + "vision_model.post_layernorm.");
                default -> false;
            };
        }
        Trainability.Module m = t.llm();
        if (part.equals("image_newline")) return m.kind() == Trainability.Kind.FULL; // LLaVA-NeXT's mm_language_model trains it
        if (part.equals("llm.lora")) return m.kind() == Trainability.Kind.LORA; // the adapters train under lora{...}
        return switch (m.kind()) {
            case FULL -> true;
            case LAYERS -> inLayers(layerIndex(name, "llm"), m, llmN)
                    || (m.to() == Trainability.TOP || m.to() >= llmN - 1) && (part.equals("llm.norm") || part.equals("llm.lm_head"));
            default -> false; // FROZEN; LORA freezes the base weights (the adapters are LoRA's own tensors)
        };
    }

    private static boolean inLayers(int i, Trainability.Module m, int n) {
        return i >= m.from() && i <= Math.min(m.to(), n - 1);
    }

    /** The decoder / encoder layer a tensor belongs to, or -1. */
    static int layerIndex(String name, String module) {
        String prefix = module.equals("llm") ? Layout.LLM + "layers." : Layout.VISION + "vision_model.encoder.layers.";
        if (!name.startsWith(prefix)) return -1;
        int end = name.indexOf('.', prefix.length());
        return Integer.parseInt(name.substring(prefix.length(), end));
    }

    /** The plan of optimizer step {@code step} (0-based). */
    public FreezePlan at(int step) {
        int i = 0;
        while (i + 1 < steps.size() && steps.get(i + 1) <= step) i++;
        return plans.get(i);
    }

    /** Every tensor the stage ever trains (the plan of its last change). */
    public FreezePlan union() {
        return plans.get(plans.size() - 1);
    }

    /** Steps at which trainability changes, the first being 0. */
    public List<Integer> changeSteps() {
        return List.copyOf(steps);
    }

    /** The step at which a tensor starts to train, or null. */
    public Integer since(String name) {
        return since.get(name);
    }

    /** Per-tensor warm-up factor at {@code step}: 1 except during the first {@code warmup} steps of a group unfrozen later. */
    public double lrFactor(String name, int step) {
        Integer s = since.get(name);
        if (s == null || s == 0 || warmup == 0) return 1.0;
        int j = step - s;
        return j >= warmup ? 1.0 : (j + 1.0) / warmup;
    }

    /**
     * Before optimizer step {@code step}: applies its plan when it differs from the one set last, and sets the
     * warm-up factor of every tensor that warms up. Returns true when trainability changed.
     */
    public boolean beforeStep(Llava model, AdamW opt, int step) {
        FreezePlan p = at(step);
        boolean changed = p != applied;
        if (changed) {
            p.apply(model);
            applied = p;
        }
        if (warmup > 0) for (String n : since.keySet()) opt.scaleParamLr(n, lrFactor(n, step));
        return changed;
    }

    /**
     * After a resume at {@code step}: the checkpoint may hold optimizer state only for tensors the schedule trained
     * before that step (a checkpoint of another schedule would otherwise resume silently).
     */
    public void checkResumed(AdamW opt, int step, java.nio.file.Path dir) {
        FreezePlan before = at(Math.max(0, step - 1));
        for (String n : opt.state().keySet())
            if (step == 0 || !before.trains(n))
                throw new IllegalArgumentException(dir + ": has optimizer state for " + n + ", which this stage's schedule first trains at step "
                        + since.get(n) + ": resume with the plan that wrote it");
    }

    /** For trainer_state.json: the steps where trainability changes and how many tensors train from each. */
    public com.fasterxml.jackson.databind.node.ArrayNode describe() {
        com.fasterxml.jackson.databind.node.ArrayNode a = new com.fasterxml.jackson.databind.ObjectMapper().createArrayNode();
        for (int i = 0; i < steps.size(); i++)
            a.addObject().put("step", steps.get(i)).put("trainable_tensors", plans.get(i).trainable().size());
        return a;
    }
}
