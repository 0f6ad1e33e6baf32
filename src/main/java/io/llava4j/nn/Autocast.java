package io.llava4j.nn;

import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Mixed precision as {@code torch.autocast}: inside {@link #enable} GEMMs (linear, conv) run in the precision's GEMM
 * type and return fp32; everything else (norms, softmax, residual adds, the loss) stays fp32. Weights stored in a half
 * type are cast for each call — one layer's up-cast copy at a time, freed when the layer is done unless autograd keeps
 * it for the backward — or, inside a training step that passes a {@link WeightCasts}, cast once for the whole step.
 * Outside any scope a fp32 model runs exactly as plain fp32 code. Thread-local, as torch's is.
 */
public final class Autocast implements AutoCloseable {
    private static final ThreadLocal<ScalarType> GEMM = ThreadLocal.withInitial(() -> ScalarType.Float);
    private static final ThreadLocal<WeightCasts> CASTS = new ThreadLocal<>(); // null: cast per use
    private final ScalarType previous;
    private final WeightCasts previousCasts;

    private Autocast(ScalarType gemm, WeightCasts casts) {
        previous = GEMM.get();
        previousCasts = CASTS.get();
        GEMM.set(gemm);
        CASTS.set(casts != null && casts.type() == gemm ? casts : null);
    }

    /** GEMMs in {@code p.gemm()} until closed. */
    public static Autocast enable(Precision p) {
        return new Autocast(p.gemm(), null);
    }

    /**
     * As {@link #enable(Precision)}, with weights of another type than the GEMM's taken from {@code casts} (this
     * step's copies; null: cast per use).
     */
    public static Autocast enable(Precision p, WeightCasts casts) {
        return new Autocast(p.gemm(), casts);
    }

    @Override
    public void close() {
        GEMM.set(previous);
        CASTS.set(previousCasts);
    }

    /** The current GEMM type (fp32 outside any scope). */
    public static ScalarType gemm() {
        return GEMM.get();
    }

    private static Tensor as(Tensor t, ScalarType s) {
        return t.scalar_type().intern() == s ? t : t.to(s);
    }

    /** A weight or bias in the GEMM type: this step's cast where a {@link WeightCasts} is in force, else a cast now. */
    private static Tensor param(Tensor t, ScalarType s) {
        if (t.scalar_type().intern() == s) return t;
        WeightCasts casts = CASTS.get();
        return casts != null ? casts.use(t) : t.to(s);
    }

    private static Tensor fp32(Tensor t) {
        return t.scalar_type().intern() == ScalarType.Float ? t : t.to(ScalarType.Float);
    }

    /** x·Wᵀ + b. */
    public static Tensor linear(Tensor x, Tensor weight, Tensor bias) {
        ScalarType g = gemm();
        if (g == x.scalar_type().intern() && g == weight.scalar_type().intern() && (bias == null || g == bias.scalar_type().intern())) {
            if (g == ScalarType.Float && x.numel() == x.size(-1)) return oneRow(x, weight, bias);
            return bias == null ? torch.linear(x, weight) : torch.linear(x, weight, new TensorOptional(bias));
        }
        if (x.numel() == x.size(-1) && weight.scalar_type().intern() == ScalarType.BFloat16 && g == ScalarType.Float)
            // one row (a decoding step) against bf16 weights where GEMMs up-cast: bf16 matrix-vector is memory-bound and
            // fast without AVX-512 BF16, while up-casting the whole matrix for one row is not (bench/README.md)
            return Scopes.keep(() -> fp32(bias == null ? torch.linear(as(x, ScalarType.BFloat16), weight)
                    : torch.linear(as(x, ScalarType.BFloat16), weight, new TensorOptional(as(bias, ScalarType.BFloat16)))));
        return Scopes.keep(() -> {
            Tensor w = param(weight, g), xi = as(x, g);
            Tensor y = bias == null ? torch.linear(xi, w) : torch.linear(xi, w, new TensorOptional(param(bias, g)));
            return fp32(y);
        });
    }

    /**
     * One input row (a decoding step): W·x as a matrix-vector product. libtorch's linear sends a single row to a
     * general GEMM here, which ran 10–50× slower than {@code mv} on the same data (bench/README.md).
     */
    private static Tensor oneRow(Tensor x, Tensor weight, Tensor bias) {
        long[] shape = x.sizes().vec().get();
        shape[shape.length - 1] = weight.size(0);
        Tensor y = weight.mv(x.reshape(-1)); // [out]
        if (bias != null) y = y.add(bias);
        return y.view(shape);
    }

    /** 2-D convolution without bias, stride = kernel (CLIP's patch embedding). */
    public static Tensor patchConv(Tensor x, Tensor weight, long patch) {
        ScalarType g = gemm();
        return Scopes.keep(() -> fp32(torch.conv2d(as(x, g), as(weight, g), null, new long[]{patch, patch},
                new long[]{0, 0}, new long[]{1, 1}, 1)));
    }

    /** Rows of a lookup table as fp32 (the table may be stored in a half type). */
    public static Tensor embedding(Tensor table, Tensor ids) {
        return fp32(torch.embedding(table, ids));
    }

    /** A parameter's values as fp32 (for small tensors used directly, such as position embeddings). */
    public static Tensor values(Tensor param) {
        return fp32(param);
    }
}
