package io.llava4j.model;

import io.llava4j.io.HostTensor;
import io.llava4j.nn.Linear;
import io.llava4j.nn.quant.DequantBuffer;
import io.llava4j.nn.quant.QuantSpec;
import io.llava4j.nn.quant.QuantizedLinear;
import io.llava4j.nn.quant.QuantizedWeight;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The LLM of a {@link Llava} with its decoder layers' linear weights (q/k/v/o, gate/up/down) held quantized
 * ({@link QuantSpec}): LLaVA's {@code --bits 4|8} and {@code --load_4bit|--load_8bit}. Embeddings, norms, lm_head, the
 * projector and the vision tower keep their storage type. Each weight is quantized from its memory-mapped file tensor
 * as it is loaded, one tensor at a time, so the LLM is never whole in 16 or 32 bits; the parameters keep their names
 * and shapes (and their file tensors for saving) but no memory. The weights are frozen for good: a plan that trains
 * one is refused ({@link #requireFrozen}).
 */
public final class QuantizedLlm {
    public final QuantSpec spec;
    private final Map<String, Linear> targets;              // llava-hf parameter name → its Linear
    private final Map<String, QuantizedLinear> done = new LinkedHashMap<>();
    private final DequantBuffer buffer = new DequantBuffer();

    QuantizedLlm(Llava model, QuantSpec spec) {
        this.spec = spec;
        Map<String, Linear> t = new LinkedHashMap<>();
        model.languageModel.layerProjections().forEach((path, lin) -> t.put("language_model." + path + ".weight", lin));
        targets = Collections.unmodifiableMap(t);
    }

    /** Whether the parameter {@code name} is held quantized. */
    public boolean holds(String name) {
        return targets.containsKey(name);
    }

    /** The quantized parameter names, in layer order. */
    public java.util.Set<String> names() {
        return targets.keySet();
    }

    /** Quantizes the file tensor of parameter {@code name} straight from the memory map into its Linear. */
    void load(String name, HostTensor h) {
        Linear lin = targets.get(name);
        QuantizedWeight q;
        try (PointerScope s = new PointerScope()) {
            Tensor src = h.data().isDirect()
                    ? torch.from_blob(new BytePointer(h.data()), h.shape(), new TensorOptions(io.llava4j.engine.Tensors.scalarType(h.dtype())))
                    : io.llava4j.engine.Tensors.fromHost(h);
            q = spec.quantize(src);
        }
        String role = name.substring(name.indexOf(".", "language_model.model.layers.".length()) + 1, name.length() - ".weight".length());
        QuantizedLinear ql = new QuantizedLinear(q, role, buffer);
        lin.quantize(ql);
        done.put(name, ql);
    }

    /** Refuses a plan that would train a quantized weight, naming the first such and how many there are. */
    public void requireFrozen(java.util.function.Predicate<String> trains) {
        var trained = targets.keySet().stream().filter(trains).toList();
        if (!trained.isEmpty())
            throw new IllegalArgumentException("--bits " + spec.type().bits + " holds the LLM's linear weights quantized and frozen, but the flags train "
                    + trained.size() + " of them (" + trained.get(0) + ", …): train the projector (--tune_mm_mlp_adapter True), LoRA"
                    + " adapters (--lora_enable True) or lm_head (--freeze_backbone True), or leave out --bits");
    }

    /** Bytes of the quantized weights (codes and scales). */
    public long bytes() {
        long b = 0;
        for (QuantizedLinear q : done.values()) b += q.weight.bytes();
        return b;
    }

    /** Values the quantized weights hold. */
    public long values() {
        long n = 0;
        for (QuantizedLinear q : done.values()) n += q.weight.numel();
        return n;
    }

    /** "the LLM's 28 linear weights (1.2 M values) held in 4 bits (nf4, …): 0.7 MiB instead of 2.3 MiB in bf16". */
    public String describe(org.bytedeco.pytorch.global.torch.ScalarType computeType) {
        String t = computeType == org.bytedeco.pytorch.global.torch.ScalarType.BFloat16 ? "bf16" : "fp32";
        return String.format("frozen LLM: %d linear weights (%,d values) held in %s: %s (%.2f bits a value), dequantized one"
                        + " decoder layer at a time into a reused %s buffer", done.size(), values(), spec.describe(),
                human(bytes()), 8.0 * bytes() / Math.max(1, values()), t);
    }

    private static String human(long b) {
        if (b < 1 << 20) return String.format("%.1f KiB", b / 1024.0);
        if (b < 1 << 30) return String.format("%.1f MiB", b / 1048576.0);
        return String.format("%.2f GiB", b / 1073741824.0);
    }

    /** The dequantization buffers (one decoder layer's weights). */
    public DequantBuffer buffer() {
        return buffer;
    }
}
