package io.llava4j.nn;

import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * A frozen weight matrix held for inference in a layout chosen for decoding: oneDNN's blocked layout
 * ({@link PackedWeight}), or row-major for Java's vector products ({@link StreamedWeight}) where the JVM has the vector
 * API and a bf16 matrix is either small enough that oneDNN's fixed cost per call would outweigh streaming it, or one
 * oneDNN cannot hold exactly. fp32 matrices stay with oneDNN (or plain): its fp32 products decoded and ran prompts
 * faster than the vector loops and OpenBLAS on a row-major copy (bench/README.md, decode).
 */
public interface InferenceMatrix {
    /**
     * x·Wᵀ + b for x [.., in] (any float type; cast to the matrix's type) → [.., out], fp32 where x is fp32 (as
     * {@link Autocast} returns GEMM results), else in x's type.
     */
    Tensor linear(Tensor x, Tensor bias);

    /** Bytes the matrix holds. */
    long bytes();

    /**
     * The type {@link #of} keeps {@code weight} in when it is to compute in {@code type}: bf16 for a bf16 weight computing
     * in fp32 where the JVM has the vector API, else {@code type}.
     */
    static ScalarType storedAs(Tensor weight, ScalarType type) {
        return type == ScalarType.Float && weight.scalar_type().intern() == ScalarType.BFloat16 && StreamedWeight.available()
                ? ScalarType.BFloat16 : type;
    }

    /** Whether {@link #of} can hold matrices at all here (fp32 ones only with oneDNN). */
    static boolean available() {
        return StreamedWeight.available() || PackedWeight.available();
    }

    /**
     * {@code weight} [out, in] held to compute in {@code type} (fp32 or bf16), or null where this weight cannot be. A
     * bf16 weight asked to compute in fp32 (bf16 storage on a CPU without bf16 arithmetic) stays bf16, row-major, and
     * its products run in fp32 in the vector loops, where the JVM has them.
     */
    static InferenceMatrix of(Tensor weight, ScalarType type) {
        if (storedAs(weight, type) != type) return StreamedWeight.upcasting(weight); // half the bytes of an fp32 copy a step
        boolean streams = StreamedWeight.available() && type == ScalarType.BFloat16, packs = PackedWeight.available();
        if (streams && (weight.numel() * 2 < StreamedWeight.PREFERRED_BELOW_BYTES || !packs)) return StreamedWeight.of(weight);
        InferenceMatrix p = packs ? PackedWeight.of(weight, type) : null;
        return p != null || !streams ? p : StreamedWeight.of(weight);
    }

    /** The layouts {@link #of} picks, for reports: "oneDNN blocked bf16" and the like. */
    static String describe(ScalarType type) {
        boolean bf16 = type == ScalarType.BFloat16, streams = bf16 && StreamedWeight.available(), packs = PackedWeight.available();
        String t = bf16 ? "bf16" : "fp32";
        if (streams && packs)
            return "row-major (Java vector API) below " + (StreamedWeight.PREFERRED_BELOW_BYTES >> 20) + " MiB, oneDNN blocked above, " + t;
        return streams ? "row-major (Java vector API) " + t : packs ? "oneDNN blocked " + t : "plain " + t;
    }
}
