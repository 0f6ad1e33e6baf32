package io.llava4j.generate;

import io.llava4j.model.Llava;
import io.llava4j.nn.InferenceMatrix;
import io.llava4j.nn.Precision;

/**
 * How a model loaded only to generate holds its LLM weights: where they compute in their storage type (fp32, or bf16
 * with native bf16 GEMMs), in the layouts chosen for decoding ({@link InferenceMatrix}: small bf16 matrices row-major
 * for Java's vector products where the JVM has the vector API, the rest in oneDNN's blocked layout; q/k/v and gate/up
 * stacked), which decode faster than libtorch's products on the plain parameters (bench/README.md, decode); otherwise
 * as loaded. The file's tensors are used in place while packing and each packed matrix's pages are given back as its
 * layer is done, so the weights are resident about once.
 */
public final class InferenceWeights {
    private InferenceWeights() {}

    /** Packs {@code model}'s LLM for decoding when that helps; returns the bytes packed (0: left as loaded). */
    public static long prepare(Llava model, Precision precision) {
        if (!packs(precision)) return 0;
        return model.languageModel.packForInference(precision.gemm(), path -> {
            io.llava4j.io.HostTensor file = model.loadedFrom.get("language_model." + path + ".weight");
            if (file != null) io.llava4j.io.MappedPages.release(file.data()); // the packed copy is the weight now
        });
    }

    /**
     * Whether {@link #prepare} packs the LLM at {@code precision}: weights stored in their GEMM type (oneDNN or the
     * vector API present), or bf16 weights computing in fp32 (a CPU without bf16 arithmetic) where the JVM has the
     * vector API, whose loops multiply the bf16 rows in fp32 instead of up-casting every layer for every token.
     */
    public static boolean packs(Precision precision) {
        if (precision.storage == org.bytedeco.pytorch.global.torch.ScalarType.BFloat16 && precision.gemm() == org.bytedeco.pytorch.global.torch.ScalarType.Float)
            return io.llava4j.nn.StreamedWeight.available();
        return InferenceMatrix.available() && precision.storage == precision.gemm();
    }

    /**
     * Loads a model to run it: weights the file already holds in their storage type are used in place from the mapped
     * file ({@link Checkpoints#loadForInference}); then {@link #prepare} packs the LLM's matrices from there.
     */
    public static Llava load(java.nio.file.Path folder, java.nio.file.Path visionTower, Precision precision, io.llava4j.nn.quant.QuantSpec quant) {
        warmUp();
        Llava m = io.llava4j.model.Checkpoints.loadForInference(folder, visionTower, precision, quant, true).model();
        prepare(m, precision);
        return m;
    }

    /**
     * Compiles Java's vector loops ({@link io.llava4j.nn.VectorGemv#warmUp}) where the JVM has them; call before a
     * model is loaded. Until compiled they make garbage that grows the Java heap by a few hundred MB for a moment (given
     * back at once): done after loading, that moment was the run's peak RSS (+100 MB for the 134 M bench LLM in int8).
     */
    public static void warmUp() {
        if (io.llava4j.nn.StreamedWeight.available()) io.llava4j.nn.VectorGemv.warmUp();
    }

    /** What {@link #prepare} did, for reports ({@link InferenceMatrix#describe}), or "plain". */
    public static String describe(long packedBytes, Precision precision) {
        if (packedBytes == 0) return "plain";
        if (precision.storage != precision.gemm() && io.llava4j.nn.StreamedWeight.available())
            return "row-major bf16 (Java vector API), fp32 arithmetic";
        return InferenceMatrix.describe(precision.gemm());
    }
}
