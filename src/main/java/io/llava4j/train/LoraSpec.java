package io.llava4j.train;

import java.nio.file.Path;
import java.util.List;

/**
 * A LoRA setting (LLaVA's {@code --lora_enable True --lora_r R --lora_alpha A --lora_dropout P --lora_bias none}):
 * adapters of rank {@code r}, scale {@code alpha / r}, dropout {@code p} on their input, on the LLM's decoder-layer
 * projections named in {@code targets} — matched by module path ({@code language_model.model.layers.N.self_attn.q_proj},
 * …), never inside the vision tower or the projector. {@code init}: a PEFT adapter folder whose
 * {@code adapter_model.safetensors} gives the adapters' starting values ({@code --lora_weight_path}); null = PEFT's init.
 */
public record LoraSpec(int r, double alpha, double dropout, List<String> targets, Path init) {
    /** The projections LLaVA's {@code find_all_linear_names} finds in LLaMA (every nn.Linear but lm_head). */
    public static final List<String> LLAVA_TARGETS = List.of("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj");

    public LoraSpec {
        targets = targets == null ? LLAVA_TARGETS : List.copyOf(targets);
        if (r < 1) throw new IllegalArgumentException("--lora_r must be >= 1, got " + r);
        if (!(alpha > 0)) throw new IllegalArgumentException("--lora_alpha must be > 0, got " + alpha);
        if (!(dropout >= 0 && dropout < 1)) throw new IllegalArgumentException("--lora_dropout must be in [0, 1), got " + dropout);
        if (targets.isEmpty()) throw new IllegalArgumentException("LoRA needs at least one target module (" + String.join(", ", LLAVA_TARGETS) + ")");
        for (String t : targets)
            if (!LLAVA_TARGETS.contains(t))
                throw new IllegalArgumentException("LoRA target '" + t + "' is no projection of the LLM's decoder layers; choose from "
                        + String.join(", ", LLAVA_TARGETS));
    }

    /** LLaVA's flags: {@code --lora_r}, {@code --lora_alpha}, {@code --lora_dropout} on every LLaMA projection. */
    public static LoraSpec llava(int r, double alpha, double dropout) {
        return new LoraSpec(r, alpha, dropout, LLAVA_TARGETS, null);
    }

    /** PEFT's scaling: alpha / r. */
    public double scale() {
        return alpha / r;
    }
}
