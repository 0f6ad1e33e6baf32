package io.llava4j.nn.quant;

import org.bytedeco.pytorch.IValue;
import org.bytedeco.pytorch.IValueVector;
import org.bytedeco.pytorch.OperatorHandle;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * libtorch's weight-only int4 matrix product for the CPU, {@code aten::_weight_int4pack_mm_for_cpu(x, packed, group,
 * scaleAndZeros)} = x · Wᵀ with W = (q − 8)·s + z per group ({@link GroupwiseInt4}), and the packing it reads
 * ({@code aten::_convert_weight_to_int4pack_for_cpu}, whose layout depends on the CPU's instruction set: codes are
 * packed where they are used, never stored). Reached through the dispatcher (the presets have no wrappers). Vectorised
 * for bf16 activations; no derivative: decoding and scoring only.
 */
final class Int4Kernel {
    private static volatile OperatorHandle mm, pack;

    private Int4Kernel() {}

    private static void init() {
        if (mm == null)
            synchronized (Int4Kernel.class) {
                if (mm == null) {
                    OperatorHandle[] h = io.llava4j.engine.Ops.find("aten::_convert_weight_to_int4pack_for_cpu", "aten::_weight_int4pack_mm_for_cpu");
                    pack = h[0];
                    mm = h[1];
                }
            }
    }

    /** int32 codes [out, in] (0..15) → the kernel's packed uint8 layout. */
    static Tensor pack(Tensor codes) {
        init();
        IValueVector stack = new IValueVector(new IValue(codes.contiguous()), new IValue(2L));
        pack.callBoxed(stack);
        Tensor out = new Tensor();
        out.put(stack.get(0).toTensor()); // an owning handle: the one returned points into the vector
        return out;
    }

    /** x [.., in] (any floating type) → [.., out] fp32. */
    static Tensor linear(Tensor x, GroupwiseInt4 w) {
        init();
        long[] shape = x.sizes().vec().get();
        Tensor x2 = x.reshape(-1, shape[shape.length - 1]).to(ScalarType.BFloat16); // [M, in]
        if (x2.size(1) < w.paddedIn) // zeros against the weight's zero columns
            x2 = org.bytedeco.pytorch.global.torch.constant_pad_nd(x2, new long[]{0, w.paddedIn - x2.size(1)}, new org.bytedeco.pytorch.Scalar(0.0));
        x2 = x2.contiguous();
        IValueVector stack = new IValueVector(new IValue(x2), new IValue(w.packed()), new IValue((long) GroupwiseInt4.GROUP),
                new IValue(w.scaleAndZeros()));
        mm.callBoxed(stack);
        Tensor y = stack.get(0).toTensor(); // [M, out] bf16
        shape[shape.length - 1] = w.shape[0];
        return y.to(ScalarType.Float).view(shape);
    }
}
