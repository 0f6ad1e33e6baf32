package io.llava4j.generate;

import io.llava4j.model.Llava;
import io.llava4j.nn.PackedWeight;
import io.llava4j.nn.Precision;

/**
 * An experiment on how a model loaded only to generate could hold its LLM weights: in oneDNN's blocked layout
 * ({@link PackedWeight}) where the GEMMs run in the type the weights are stored in (fp32, or bf16 on a CPU with native
 * bf16). One matrix at one row multiplies 1.7-3.5x faster so (single-thread CPU time), but whole decoding runs measured
 * slower (bench/README.md, decode), so generate/chat/serve do not use it; {@code bench/decode.sh} and
 * {@code llava4j bench --packed_weights True} measure it.
 */
public final class InferenceWeights {
    private InferenceWeights() {}

    /** Packs {@code model}'s LLM for decoding when that helps; returns the bytes packed (0: left as loaded). */
    public static long prepare(Llava model, Precision precision) {
        if (!PackedWeight.available() || precision.storage != precision.gemm()) return 0;
        return model.languageModel.packForInference(precision.gemm());
    }

    /** What {@link #prepare} did, for reports: "oneDNN blocked fp32" and the like, or "plain". */
    public static String describe(long packedBytes, Precision precision) {
        return packedBytes == 0 ? "plain" : "oneDNN blocked " + (precision == Precision.FP32 ? "fp32" : "bf16");
    }
}
