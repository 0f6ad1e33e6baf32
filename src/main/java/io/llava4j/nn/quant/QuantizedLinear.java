package io.llava4j.nn.quant;

import io.llava4j.nn.Autocast;
import org.bytedeco.pytorch.GradMode;
import org.bytedeco.pytorch.Tensor;

/**
 * The frozen weight of a {@code Linear} held quantized: {@link #forward} dequantizes it into its projection's buffer
 * ({@link DequantBuffer}) in the GEMM type autocast asks for and runs the linear there; a decoding step (a few rows, no
 * graph) of an int8 weight, where GEMMs run in bf16 ({@code --bf16 True} on a CPU with bf16 arithmetic), runs libtorch's
 * weight-only int8 kernel on the codes instead (it takes bf16 activations; fp32 runs keep fp32 arithmetic); an int4
 * weight ({@link GroupwiseInt4}) always runs libtorch's int4 kernel.
 */
public final class QuantizedLinear {
    public final QuantizedWeight weight;
    public final String role; // the projection within a decoder layer ("self_attn.q_proj", …): its buffer
    private final DequantBuffer buffer;
    private static final java.util.concurrent.atomic.AtomicLong INT8_KERNEL_CALLS = new java.util.concurrent.atomic.AtomicLong();

    public QuantizedLinear(QuantizedWeight weight, String role, DequantBuffer buffer) {
        this.weight = weight;
        this.role = role;
        this.buffer = buffer;
    }

    /** Products run by the int8 weight-only kernel in this process (benchmarks and tests report which path ran). */
    public static long int8KernelCalls() {
        return INT8_KERNEL_CALLS.get();
    }

    /** x [.., in] → [.., out]: x·Wᵀ + b with W the dequantized weight. */
    public Tensor forward(Tensor x, Tensor bias) {
        if (weight instanceof GroupwiseInt4 q) { // no derivative and nothing to dequantize into: the kernel always
            if (GradMode.is_enabled() && x.requires_grad())
                throw new IllegalStateException("int4 weights (--load_4bit) are for decoding: their kernel passes no gradient to its input");
            Tensor y = Int4Kernel.linear(x, q);
            return bias == null ? y : y.add(bias);
        }
        if (weight instanceof RowwiseInt8 q && !GradMode.is_enabled() && Autocast.gemm() == org.bytedeco.pytorch.global.torch.ScalarType.BFloat16
                && x.numel() / x.size(-1) <= Int8Kernel.MAX_ROWS) {
            INT8_KERNEL_CALLS.incrementAndGet();
            Tensor y = Int8Kernel.linear(x, q);
            return bias == null ? y : y.add(bias);
        }
        return Autocast.linear(x, buffer.weight(weight, role, Autocast.gemm()), bias);
    }
}
