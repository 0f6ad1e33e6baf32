package io.llava4j.nn.quant;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.ScalarOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Asymmetric 4-bit groups in the layout of libtorch's weight-only int4 kernel ({@link Int4Kernel}): along each row,
 * every {@link #GROUP} values share a scale s = (max − min) / 15 and a zero z = min + 8·s (both rounded to bf16); a value
 * w becomes q = clamp(round((w − z) / s) + 8, 0, 15) and is read back as (q − 8)·s + z. The codes are held only in the
 * kernel's packed form (half a byte a value), so they are never unpacked: {@link #fill} reads the values back through
 * the kernel itself, one identity row per column, which is exact but slow (tests, not decoding).
 *
 * <p>What generate/chat/serve {@code --load_4bit} hold: bitsandbytes' NF4 has no CPU kernel here (decoding would
 * dequantize every layer for every token), while this format decodes at the kernel's speed (bench/README.md).
 */
public final class GroupwiseInt4 extends QuantizedWeight {
    /** Values sharing one scale and zero along a row. */
    public static final int GROUP = 64;
    private static final long CHUNK = 1 << 20; // values per chunk of work while quantizing

    private final Tensor packed;        // uint8, the kernel's packed layout of the [out, in'] codes
    private final Tensor scaleAndZeros; // bf16 [in' / GROUP, out, 2]
    final long paddedIn;                // in' = in rounded up to a whole group: the columns past in are zeros

    private GroupwiseInt4(long[] shape, Tensor packed, Tensor scaleAndZeros, long paddedIn) {
        super(shape);
        this.packed = packed;
        this.scaleAndZeros = scaleAndZeros;
        this.paddedIn = paddedIn;
    }

    @Override
    public QuantType type() {
        return QuantType.INT4;
    }

    @Override
    public long bytes() {
        return packed.numel() + 2 * scaleAndZeros.numel();
    }

    Tensor packed() {
        return packed;
    }

    Tensor scaleAndZeros() {
        return scaleAndZeros;
    }

    /**
     * Quantizes a matrix [out, in] (any floating type), a few rows at a time. An input width that is not a whole number of
     * groups (only tiny test models have one) is padded with zero columns, and inputs with zeros to match.
     */
    public static GroupwiseInt4 quantize(Tensor w) {
        if (w.dim() != 2) throw new IllegalArgumentException("int4 weights are matrices; got " + w.dim() + " dimensions");
        long rows = w.size(0), in = w.size(1), cols = (in + GROUP - 1) / GROUP * GROUP, groups = cols / GROUP;
        Tensor codes = torch.empty(new long[]{rows, cols}, new TensorOptions(ScalarType.Int), null); // [out, in'], 0..15
        Tensor sz = held(torch.empty(new long[]{groups, rows, 2}, new TensorOptions(ScalarType.BFloat16), null));
        long step = Math.max(1, CHUNK / cols);
        try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            for (long r0 = 0; r0 < rows; r0 += step) {
                try (PointerScope c = new PointerScope()) {
                    long nr = Math.min(step, rows - r0);
                    Tensor x = w.narrow(0, r0, nr).to(ScalarType.Float);
                    if (cols != in) x = torch.constant_pad_nd(x, new long[]{0, cols - in}, new Scalar(0.0));
                    x = x.view(nr, groups, GROUP);
                    Tensor min = x.amin(new long[]{-1}, true), max = x.amax(new long[]{-1}, true); // [nr, groups, 1]
                    Tensor scale = bf16(max.sub(min).div(new Scalar(15.0)).clamp_min(new Scalar(1e-6)));
                    Tensor zero = bf16(min.add(scale.mul(new Scalar(8.0))));
                    Tensor q = x.sub(zero).div(scale).round().add(new Scalar(8.0))
                            .clamp(new ScalarOptional(new Scalar(0)), new ScalarOptional(new Scalar(15)));
                    codes.narrow(0, r0, nr).copy_(q.view(nr, cols));
                    sz.narrow(1, r0, nr).copy_(torch.stack(new TensorVector(scale.squeeze(-1), zero.squeeze(-1)), 2).transpose(0, 1));
                }
            }
        }
        Tensor packed = held(Int4Kernel.pack(codes));
        codes.close();
        return new GroupwiseInt4(new long[]{rows, in}, packed, sz, cols);
    }

    private static Tensor bf16(Tensor t) {
        return t.to(ScalarType.BFloat16).to(ScalarType.Float);
    }

    /** Column block k0.. of the dequantized matrix through the kernel: identity rows times Wᵀ = those columns, transposed. */
    @Override
    protected void fill(Tensor flat) {
        long rows = shape[0], cols = shape[1], step = 256;
        Tensor out = flat.view(rows, cols);
        for (long k0 = 0; k0 < cols; k0 += step) {
            try (PointerScope c = new PointerScope()) {
                long n = Math.min(step, cols - k0);
                Tensor eye = torch.eye(n, paddedIn, new TensorOptions(ScalarType.BFloat16)).roll(new long[]{k0}, new long[]{1}); // [n, in']: row i is e(k0 + i)
                out.narrow(1, k0, n).copy_(Int4Kernel.linear(eye, this).t());
            }
        }
    }
}
