package io.llava4j.generate;

import io.llava4j.model.Llava;
import io.llava4j.nn.PackedWeight;
import io.llava4j.nn.Precision;

/**
 * How a model loaded only to generate holds its LLM weights: with bf16 weights and native bf16 GEMMs, in oneDNN's
 * blocked layout ({@link PackedWeight}), which decodes larger models faster (TinyLlama-1.1B's shape 1.5-1.9x; the
 * 134 M bench LLM 8% slower; bench/README.md, decode); otherwise (fp32, where it was slower) as loaded.
 */
public final class InferenceWeights {
    private InferenceWeights() {}

    /** Packs {@code model}'s LLM for decoding when that helps; returns the bytes packed (0: left as loaded). */
    public static long prepare(Llava model, Precision precision) {
        if (!packs(precision)) return 0;
        return model.languageModel.packForInference(precision.gemm());
    }

    /** Whether {@link #prepare} packs the LLM at {@code precision} (bf16 weights, native bf16 GEMMs, oneDNN present). */
    public static boolean packs(Precision precision) {
        return PackedWeight.available() && precision.storage == precision.gemm()
                && precision.gemm() == org.bytedeco.pytorch.global.torch.ScalarType.BFloat16;
    }

    /**
     * Loads a model to run it: weights the file already holds in their storage type are used in place from the mapped
     * file ({@link Checkpoints#loadForInference}) unless they are about to be packed (a packed copy is the weights
     * then, and the file's pages are given back); then {@link #prepare}.
     */
    public static Llava load(java.nio.file.Path folder, java.nio.file.Path visionTower, Precision precision, io.llava4j.nn.quant.QuantSpec quant) {
        Llava m = io.llava4j.model.Checkpoints.loadForInference(folder, visionTower, precision, quant, !packs(precision)).model();
        prepare(m, precision);
        return m;
    }

    /** What {@link #prepare} did, for reports: "oneDNN blocked fp32" and the like, or "plain". */
    public static String describe(long packedBytes, Precision precision) {
        return packedBytes == 0 ? "plain" : "oneDNN blocked " + (precision == Precision.FP32 ? "fp32" : "bf16");
    }
}
