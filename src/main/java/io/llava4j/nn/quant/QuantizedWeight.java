package io.llava4j.nn.quant;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * A weight matrix [out, in] held quantized. {@link #dequantizeInto} writes its values, in any floating type, into a
 * tensor of its shape (a reused buffer); {@link #dequantize} makes a new one.
 */
public abstract class QuantizedWeight {
    /** [out, in] */
    public final long[] shape;

    protected QuantizedWeight(long[] shape) {
        this.shape = shape.clone();
    }

    public long numel() {
        long n = 1;
        for (long d : shape) n *= d;
        return n;
    }

    /** Bytes held (codes and scales). */
    public abstract long bytes();

    /** The format. */
    public abstract QuantType type();

    /**
     * Writes the dequantized values into {@code out} (contiguous, of {@link #shape}, any floating type), in chunks whose
     * temporaries are freed as they go: the values computed in fp32, as bitsandbytes computes them, then rounded to
     * {@code out}'s type.
     */
    public final void dequantizeInto(Tensor out) {
        if (!out.is_contiguous() || out.numel() != numel())
            throw new IllegalArgumentException("dequantize into a contiguous tensor of " + java.util.Arrays.toString(shape));
        try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            fill(out.view(-1));
        }
    }

    /** The dequantized values as a new tensor of type {@code type}. */
    public final Tensor dequantize(ScalarType type) {
        Tensor out = torch.empty(shape, new TensorOptions(type), null);
        dequantizeInto(out);
        return out;
    }

    /** Writes all values into {@code flat} [numel]. */
    protected abstract void fill(Tensor flat);

    /** Keeps a tensor made inside a caller's scope alive for the weight's lifetime. */
    static Tensor held(Tensor t) {
        t.retainReference();
        return t;
    }

    /** {@code w}'s values as a flat fp32 tensor (a copy only when they are not fp32 already). */
    static Tensor flatFloat(Tensor w) {
        Tensor f = w.reshape(-1);
        return f.scalar_type().intern() == ScalarType.Float ? f : f.to(ScalarType.Float);
    }
}
