package io.llava4j.nn;

import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Several frozen linear layers that read the same input (a decoder layer's q/k/v projections, its gate and up
 * projections), packed for inference as one matrix ({@link InferenceMatrix}): one product instead of several,
 * its output split back into the layers' outputs. A decoding step multiplies one row by every matrix, so each product
 * it saves is a call's fixed cost saved, and the larger matrix streams at a higher rate (bench/README.md, decode).
 *
 * <p>The parts' weights are released once packed ({@link Linear#fuseInto}): the layers keep their names and shapes but
 * can no longer compute on their own.
 */
public final class FusedProjection {
    private final InferenceMatrix packed; // [Σ out, in]
    private final Tensor bias;         // [Σ out] or null
    private final long[] outs;         // each part's output width, in order

    private FusedProjection(InferenceMatrix packed, Tensor bias, long[] outs) {
        this.packed = packed;
        this.bias = bias;
        this.outs = outs;
    }

    /**
     * The parts packed as one in {@code type}, or null where they cannot be: an adapter, a quantized or already packed
     * part, parts of different input widths or bias presence, or a stacked matrix the layout would not hold exactly.
     */
    public static FusedProjection pack(ScalarType type, Linear... parts) {
        if (!InferenceMatrix.available()) return null;
        long in = parts[0].weight.size(1);
        boolean biased = parts[0].bias != null;
        for (Linear p : parts)
            if (p.lora() != null || p.quantized() != null || p.isPacked() || p.weight.size(1) != in || (p.bias != null) != biased)
                return null;
        long[] outs = new long[parts.length];
        Tensor stacked = new Tensor(), bias = biased ? new Tensor() : null; // made outside the scope, which would free them
        try (var g = new org.bytedeco.pytorch.NoGradGuard(); var scope = new org.bytedeco.javacpp.PointerScope()) {
            TensorVector ws = new TensorVector(), bs = new TensorVector();
            for (int i = 0; i < parts.length; i++) {
                outs[i] = parts[i].weight.size(0);
                ws.push_back(parts[i].weight.to(InferenceMatrix.storedAs(parts[i].weight, type)));
                if (biased) bs.push_back(parts[i].bias);
            }
            stacked.put(torch.cat(ws, 0));
            if (biased) bias.put(torch.cat(bs, 0));
        }
        InferenceMatrix packed = InferenceMatrix.of(stacked, type); // outside any scope of ours: its copy must outlive it
        stacked.close();
        if (packed == null) return null;
        for (Linear p : parts) p.fuseInto();
        return new FusedProjection(packed, bias, outs);
    }

    /** x [.., in] → each part's output [.., out_i], as views of one product (in x's type, as {@link InferenceMatrix#linear}). */
    public Tensor[] forward(Tensor x) {
        Tensor y = packed.linear(x, bias);
        Tensor[] out = new Tensor[outs.length];
        long at = 0;
        for (int i = 0; i < outs.length; i++) {
            out[i] = y.narrow(-1, at, outs[i]);
            at += outs[i];
        }
        return out;
    }

    /** The stacked matrix [Σ out, in]. */
    public InferenceMatrix matrix() {
        return packed;
    }

    /** The stacked bias [Σ out], or null. */
    public Tensor bias() {
        return bias;
    }

    /** Bytes of the stacked matrix. */
    public long bytes() {
        return packed.bytes();
    }
}
