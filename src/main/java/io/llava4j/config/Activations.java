package io.llava4j.config;

import java.util.List;

/** Activation names accepted in configs (HF's ACT2FN names that llava4j implements). */
public final class Activations {
    public static final List<String> NAMES = List.of("quick_gelu", "gelu", "gelu_pytorch_tanh", "silu", "relu");

    private Activations() {}
}
