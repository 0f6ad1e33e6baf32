package io.llava4j.engine;

import io.llava4j.io.HostTensor;
import org.bytedeco.pytorch.Module;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.StringTensorDict;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.util.LinkedHashMap;
import java.util.Map;

/** Moves data between JVM arrays / {@link HostTensor}s and libtorch tensors; small helpers used everywhere. */
public final class Tensors {
    static {
        Engine.init(); // before any libtorch class is touched from here (see Engine)
    }

    private Tensors() {}

    /**
     * A new fp32 tensor (integer and half types are converted) holding the host tensor's values. F32, F16 and BF16 data
     * in direct (memory-mapped) buffers are copied straight into native memory, without a JVM array.
     */
    public static Tensor fromHost(HostTensor h) {
        ScalarType st = switch (h.dtype()) {
            case F32 -> ScalarType.Float;
            case F16 -> ScalarType.Half;
            case BF16 -> ScalarType.BFloat16;
            default -> null;
        };
        if (st == null || !h.data().isDirect()) return floats(h.toFloats(), h.shape());
        Tensor t = torch.empty(h.shape(), new TensorOptions(st), null);
        long bytes = h.numel() * h.dtype().bytes;
        if (bytes > 0) org.bytedeco.javacpp.Pointer.memcpy(t.data_ptr(), new org.bytedeco.javacpp.BytePointer(h.data()), bytes);
        return st == ScalarType.Float ? t : t.to(ScalarType.Float);
    }

    public static Tensor floats(float[] values, long... shape) {
        Tensor t = torch.empty(shape);
        if (values.length != t.numel())
            throw new IllegalArgumentException(values.length + " values for shape " + java.util.Arrays.toString(shape));
        t.data_ptr_float().put(values);
        return t;
    }

    public static Tensor longs(long[] values, long... shape) {
        Tensor t = torch.empty(shape, new TensorOptions(ScalarType.Long), null);
        t.data_ptr_long().put(values);
        return t;
    }

    /** The values of a tensor as fp32, in row-major order. */
    public static float[] toFloats(Tensor t) {
        Tensor c = t.detach().to(ScalarType.Float).contiguous();
        float[] out = new float[Math.toIntExact(c.numel())];
        c.data_ptr_float().get(out);
        return out;
    }

    public static long[] toLongs(Tensor t) {
        Tensor c = t.detach().to(ScalarType.Long).contiguous();
        long[] out = new long[Math.toIntExact(c.numel())];
        c.data_ptr_long().get(out);
        return out;
    }

    public static long[] shape(Tensor t) {
        return t.sizes().vec().get();
    }

    public static HostTensor toHost(Tensor t) {
        return HostTensor.ofFloats(shape(t), toFloats(t));
    }

    /**
     * Every parameter of a module tree by its dotted name (HF's names), in registration order. Each value is an owning
     * handle: {@code value()} refers into the temporary dictionary and would dangle once that is freed.
     */
    public static Map<String, Tensor> namedParameters(Module m) {
        StringTensorDict d = m.named_parameters(true);
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (long i = 0; i < d.size(); i++) out.put(d.get(i).key().getString(), new Tensor(d.get(i).value()));
        return out;
    }

    /** Copies {@code src} into a parameter without recording the copy in autograd. */
    public static void assign(Tensor param, Tensor src) {
        try (NoGradGuard g = new NoGradGuard()) {
            param.copy_(src);
        }
    }

    /** ‖a − b‖ / ‖b‖ (for parity checks). */
    public static double relativeError(Tensor a, Tensor b) {
        double num = a.sub(b).norm().item_double();
        double den = b.norm().item_double();
        return den == 0 ? num : num / den;
    }
}
