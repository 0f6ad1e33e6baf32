package io.llava4j.nn.quant;

import org.bytedeco.pytorch.GradMode;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.util.HashMap;
import java.util.Map;

/**
 * The dequantized weights of one decoder layer at a time: one buffer per projection of a layer ({@code q_proj} …
 * {@code down_proj}) and compute type, shared by every layer of a model and overwritten by the next layer's values
 * (without a graph, one buffer for all projections).
 *
 * <p>Reuse is safe where nothing holds a layer's weights once the next layer runs: without a graph (inference, the
 * first forward of gradient checkpointing) and inside {@link #layerAtATime} (the per-layer recompute, whose backward
 * ends before the next layer is recomputed). Elsewhere — a forward that builds a graph through every layer — each
 * weight is dequantized into a tensor of its own, which autograd keeps until the backward. One forward at a time per
 * model (the buffers are not shared between threads).
 */
public final class DequantBuffer {
    private static final ThreadLocal<Boolean> LAYER_AT_A_TIME = ThreadLocal.withInitial(() -> false);
    private final Map<String, Tensor> slots = new HashMap<>();

    /**
     * Marks a block where each layer's backward runs before the next layer's weights are needed: the buffers are reused
     * even though a graph is built.
     */
    public static Reuse layerAtATime() {
        boolean before = LAYER_AT_A_TIME.get();
        LAYER_AT_A_TIME.set(true);
        return () -> LAYER_AT_A_TIME.set(before);
    }

    /** Ends a {@link #layerAtATime} block. */
    public interface Reuse extends AutoCloseable {
        @Override
        void close();
    }

    /**
     * {@code w}'s values in {@code type}: in the reused buffer of its projection {@code role} where that is safe. Without
     * a graph, nothing holds a weight once its product is computed, so every projection shares one buffer (the size of
     * the largest); under {@link #layerAtATime} each projection of the layer has its own, as the layer's backward needs
     * them all.
     */
    public Tensor weight(QuantizedWeight w, String role, ScalarType type) {
        boolean graph = GradMode.is_enabled();
        if (graph && !LAYER_AT_A_TIME.get()) return w.dequantize(type);
        String key = (graph ? role : "shared") + "/" + type;
        Tensor buf = slots.get(key); // flat
        if (buf == null || buf.numel() < w.numel()) {
            if (buf != null) buf.releaseReference();
            buf = QuantizedWeight.held(torch.empty(new long[]{w.numel()}, new TensorOptions(type), null));
            slots.put(key, buf);
        }
        Tensor out = buf.narrow(0, 0, w.numel()).view(w.shape);
        w.dequantizeInto(out);
        return out;
    }

    /** Bytes the buffers hold now. */
    public long bytes() {
        long b = 0;
        for (Tensor t : slots.values()) b += t.numel() * t.element_size();
        return b;
    }
}
