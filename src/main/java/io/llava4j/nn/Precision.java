package io.llava4j.nn;

import org.bytedeco.pytorch.global.torch.ScalarType;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A run's numeric precision, LLaVA's {@code --bf16} / {@code --fp16}: frozen weight matrices are stored in the half
 * type (no fp32 copy), trainable tensors keep fp32 master weights, gradients and optimizer state, and GEMMs run as
 * {@code torch.autocast} runs them. Norms, softmax, the residual stream and the loss stay fp32.
 */
public enum Precision {
    FP32(ScalarType.Float), BF16(ScalarType.BFloat16), FP16(ScalarType.Half);

    /** Storage type of frozen matrices. */
    public final ScalarType storage;

    Precision(ScalarType storage) {
        this.storage = storage;
    }

    public static Precision of(boolean bf16, boolean fp16) {
        if (bf16 && fp16) throw new IllegalArgumentException("--bf16 True and --fp16 True together: choose one");
        return bf16 ? BF16 : fp16 ? FP16 : FP32;
    }

    /**
     * The type GEMMs compute in: bf16 where the CPU has AVX-512 BF16 or AMX (bf16 GEMMs elsewhere run ~1000× slower),
     * otherwise fp32 with the half-precision weights up-cast one layer at a time. fp16 GEMMs always up-cast on CPU.
     */
    public ScalarType gemm() {
        if (this == BF16 && (CpuFeatures.bf16() || !io.llava4j.engine.Device.isCpu())) return ScalarType.BFloat16;
        return ScalarType.Float;
    }

    /** True when half-precision weights are up-cast to fp32 for each GEMM (no native half GEMMs here). */
    public boolean upcasts() {
        return this != FP32 && gemm() == ScalarType.Float;
    }

    /** "bf16 storage, fp32 GEMMs (this CPU has no AVX-512 BF16)" and the like, for reports. */
    public String describe() {
        if (this == FP32) return "fp32";
        String name = this == BF16 ? "bf16" : "fp16";
        return upcasts()
                ? name + " storage for frozen weights, fp32 master weights; GEMMs in fp32 with weights up-cast per layer ("
                  + (this == BF16 ? "this CPU has no AVX-512 BF16/AMX" : "no fast fp16 GEMM on CPU") + ")"
                : name + " storage for frozen weights, fp32 master weights; GEMMs in " + name + " (autocast)";
    }

    /**
     * What /proc/cpuinfo says about native bf16 arithmetic; the system property {@code llava4j.bf16_gemm} or the
     * environment variable {@code LLAVA4J_BF16_GEMM} (0 or 1) overrides it.
     */
    static final class CpuFeatures {
        private static final boolean DETECTED = detect();

        static boolean bf16() {
            String force = System.getProperty("llava4j.bf16_gemm", System.getenv("LLAVA4J_BF16_GEMM"));
            if (force != null && !force.isEmpty()) return force.equals("1");
            return DETECTED;
        }

        private static boolean detect() {
            try {
                String info = Files.readString(Path.of("/proc/cpuinfo"));
                return info.contains("avx512_bf16") || info.contains("amx_bf16");
            } catch (IOException | RuntimeException e) {
                return false;
            }
        }
    }
}
