package io.llava4j.model;

import io.llava4j.engine.BlasThreads;
import org.bytedeco.pytorch.DoubleOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;

/**
 * libtorch's fused scaled-dot-product attention (default scale head_dim^-0.5), with OpenBLAS at one thread meanwhile:
 * on CPU the fused kernel parallelises over heads and query blocks itself and calls OpenBLAS for each block's small
 * fp32 GEMMs ({@link BlasThreads#single}).
 */
final class Attn {
    private Attn() {}

    /** q [B, nh, T, hd], k/v [B, nkv, T, hd] → [B, nh, T, hd]. */
    static Tensor sdpa(Tensor q, Tensor k, Tensor v, boolean causal, boolean gqa) {
        return BlasThreads.single(() -> torch.scaled_dot_product_attention(q, k, v, new TensorOptional(), 0.0, causal, new DoubleOptional(), gqa));
    }

    /** Runs {@code body} (several attention calls) with OpenBLAS at one thread, set once for all of them. */
    static Tensor oneBlasThread(java.util.function.Supplier<Tensor> body) {
        return BlasThreads.single(body);
    }

    /** As above with a bool mask [B, 1, Tq, Tk] (true = attend; null = none); k/v may be longer than q. */
    static Tensor sdpa(Tensor q, Tensor k, Tensor v, Tensor mask, boolean causal, boolean gqa) {
        TensorOptional m = mask == null ? new TensorOptional() : new TensorOptional(mask);
        return BlasThreads.single(() -> torch.scaled_dot_product_attention(q, k, v, m, 0.0, causal, new DoubleOptional(), gqa));
    }
}
