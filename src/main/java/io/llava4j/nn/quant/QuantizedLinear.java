package io.llava4j.nn.quant;

import io.llava4j.nn.Autocast;
import org.bytedeco.pytorch.GradMode;
import org.bytedeco.pytorch.Tensor;

/**
 * The frozen weight of a {@code Linear} held quantized: {@link #forward} dequantizes it into its projection's buffer
 * ({@link DequantBuffer}) in the GEMM type autocast asks for and runs the linear there; a decoding step (a few rows, no
 * graph) of an int8 weight runs libtorch's weight-only int8 kernel on the codes instead.
 */
public final class QuantizedLinear {
    public final QuantizedWeight weight;
    public final String role; // the projection within a decoder layer ("self_attn.q_proj", …): its buffer
    private final DequantBuffer buffer;

    public QuantizedLinear(QuantizedWeight weight, String role, DequantBuffer buffer) {
        this.weight = weight;
        this.role = role;
        this.buffer = buffer;
    }

    /** x [.., in] → [.., out]: x·Wᵀ + b with W the dequantized weight. */
    public Tensor forward(Tensor x, Tensor bias) {
        if (weight instanceof RowwiseInt8 q && !GradMode.is_enabled() && x.numel() / x.size(-1) <= Int8Kernel.MAX_ROWS) {
            Tensor y = Int8Kernel.linear(x, q);
            return bias == null ? y : y.add(bias);
        }
        return Autocast.linear(x, buffer.weight(weight, role, Autocast.gemm()), bias);
    }
}
