package io.llava4j.train;

import io.llava4j.engine.Tensors;
import io.llava4j.model.Llava;
import org.bytedeco.pytorch.Tensor;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Builds the optimizer from a {@link FreezePlan} only, with LLaVA's groups: weight decay on every trainable tensor
 * but biases and norm weights; the projector ({@code --mm_projector_lr}) and the vision tower
 * ({@code --mm_vision_tower_lr}) in groups of their own when given.
 */
public final class Optimizers {
    private Optimizers() {}

    /** Modules whose weights are norms (LayerNorm / RMSNorm) in LLaVA's module tree. */
    private static final Set<String> NORMS = Set.of("layer_norm1", "layer_norm2", "pre_layrnorm", "post_layernorm",
            "input_layernorm", "post_attention_layernorm", "norm");

    public record Hyper(double lr, double weightDecay, Double projectorLr, Double visionLr, double beta1, double beta2, double eps) {}

    public static boolean decays(String name) {
        String[] parts = name.split("\\.");
        if (parts[parts.length - 1].equals("bias")) return false;
        return !(parts.length >= 2 && NORMS.contains(parts[parts.length - 2]));
    }

    /**
     * DeepSpeed's optimizer block ({@code --deepspeed} with {@code "optimizer": {"type": "AdamW"}}): HF hands every
     * trainable tensor to DeepSpeed's AdamW as one group, so weight decay applies to all of them.
     */
    public static AdamW oneGroup(Llava model, FreezePlan plan, Hyper h) {
        Map<String, Tensor> params = Tensors.namedParameters(model), all = new LinkedHashMap<>();
        for (String name : plan.trainable()) all.put(name, params.get(name));
        return new AdamW(List.of(new AdamW.Group("default.decay", all, h.lr(), h.weightDecay())), h.beta1(), h.beta2(), h.eps());
    }

    public static AdamW build(Llava model, FreezePlan plan, Hyper h) {
        Map<String, Map<String, Tensor>> buckets = new LinkedHashMap<>();
        Map<String, Double> lrs = new LinkedHashMap<>();
        Map<String, Tensor> params = Tensors.namedParameters(model);
        for (String name : plan.trainable()) {
            String part = ModuleGroups.partOf(name);
            String family = part.equals("projector") && h.projectorLr() != null ? "projector"
                    : part.equals("vision") && h.visionLr() != null ? "vision" : "default";
            double lr = family.equals("projector") ? h.projectorLr() : family.equals("vision") ? h.visionLr() : h.lr();
            String key = family + (decays(name) ? ".decay" : ".no_decay");
            buckets.computeIfAbsent(key, k -> new LinkedHashMap<>()).put(name, params.get(name));
            lrs.put(key, lr);
        }
        List<AdamW.Group> groups = new ArrayList<>();
        buckets.forEach((key, ps) -> groups.add(new AdamW.Group(key, ps, lrs.get(key), key.endsWith(".no_decay") ? 0.0 : h.weightDecay())));
        return new AdamW(groups, h.beta1(), h.beta2(), h.eps());
    }
}
