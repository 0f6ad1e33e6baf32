package io.llava4j.nn.quant;

import io.llava4j.nn.Autocast;
import org.bytedeco.pytorch.GradMode;
import org.bytedeco.pytorch.Tensor;

/**
 * The frozen weight of a {@code Linear} held quantized: {@link #forward} dequantizes it into its projection's buffer
 * ({@link DequantBuffer}) in the GEMM type autocast asks for and runs the linear there. A decoding step (a few rows, no
 * graph) of an int8 weight multiplies the codes in place instead: Java's vector loops ({@link RowwiseInt8#multiply}) in
 * either precision where the JVM has the vector API, else libtorch's weight-only int8 kernel where GEMMs run in bf16
 * ({@code --bf16 True} on a CPU with bf16 arithmetic; it takes bf16 activations). An int4 weight
 * ({@link GroupwiseInt4}) always runs libtorch's int4 kernel.
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

    /** Products of int8 codes run in place (Java's loops or libtorch's int8 kernel) in this process (benchmarks and tests report which path ran). */
    public static long int8KernelCalls() {
        return INT8_KERNEL_CALLS.get();
    }

    static void countInt8Product() {
        INT8_KERNEL_CALLS.incrementAndGet();
    }

    /** x [.., in] → [.., out]: x·Wᵀ + b with W the dequantized weight. */
    public Tensor forward(Tensor x, Tensor bias) {
        if (weight instanceof GroupwiseInt4 q) { // no derivative and nothing to dequantize into: the kernel always
            if (GradMode.is_enabled() && x.requires_grad())
                throw new IllegalStateException("int4 weights (--load_4bit) are for decoding: their kernel passes no gradient to its input");
            Tensor y = Int4Kernel.linear(x, q);
            return bias == null ? y : y.add(bias);
        }
        if (weight instanceof RowwiseInt8 q && !GradMode.is_enabled() && x.numel() / x.size(-1) <= Int8Kernel.MAX_ROWS) {
            boolean bf16 = Autocast.gemm() == org.bytedeco.pytorch.global.torch.ScalarType.BFloat16;
            Tensor y = null;
            if (q.javaProduct(bf16)) y = q.linear(x, bf16); // counted there
            else if (bf16) {
                countInt8Product();
                y = Int8Kernel.linear(x, q);
            }
            if (y != null) return bias == null ? y : y.add(bias);
        }
        return Autocast.linear(x, buffer.weight(weight, role, Autocast.gemm()), bias);
    }
}
