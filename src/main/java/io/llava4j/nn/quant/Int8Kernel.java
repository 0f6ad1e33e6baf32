package io.llava4j.nn.quant;

import org.bytedeco.pytorch.IValue;
import org.bytedeco.pytorch.IValueVector;
import org.bytedeco.pytorch.OperatorHandle;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * libtorch's weight-only int8 matrix product {@code aten::_weight_int8pack_mm(x, w, scales)} = x · (w · scales)ᵀ,
 * reached through the dispatcher (the presets have no wrapper for it). Vectorised for bf16 activations; it has no
 * derivative, so it serves decoding, where a few rows meet the whole weight matrix and reading 1 byte a weight instead
 * of 2 is what counts.
 */
final class Int8Kernel {
    /** Rows up to which the kernel is used; larger inputs (prefill) dequantize the layer and run a GEMM. */
    static final long MAX_ROWS = 8;
    private static volatile OperatorHandle op;

    private Int8Kernel() {}

    private static OperatorHandle op() {
        if (op == null)
            synchronized (Int8Kernel.class) {
                if (op == null) op = io.llava4j.engine.Ops.find("aten::_weight_int8pack_mm")[0];
            }
        return op;
    }

    /** x [.., in] (any floating type) → [.., out] fp32. */
    static Tensor linear(Tensor x, RowwiseInt8 w) {
        long[] shape = x.sizes().vec().get();
        Tensor x2 = x.reshape(-1, shape[shape.length - 1]).to(ScalarType.BFloat16).contiguous(); // [M, in]
        IValueVector stack = new IValueVector(new IValue(x2), new IValue(w.codes()), new IValue(w.kernelScales()));
        op().callBoxed(stack);
        Tensor y = stack.get(0).toTensor(); // [M, out] bf16
        shape[shape.length - 1] = w.shape[0];
        return y.to(ScalarType.Float).view(shape);
    }
}
