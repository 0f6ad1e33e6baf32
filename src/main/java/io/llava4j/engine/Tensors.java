package io.llava4j.engine;

import io.llava4j.io.HostTensor;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.PointerScope;
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

/** Moves data between JVM arrays / {@link HostTensor}s and libtorch tensors; small functions used everywhere. */
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
        return Device.place(st == ScalarType.Float ? t : t.to(ScalarType.Float));
    }

    /** The libtorch type of a file dtype. */
    public static ScalarType scalarType(io.llava4j.io.DType d) {
        return switch (d) {
            case F64 -> ScalarType.Double;
            case F32 -> ScalarType.Float;
            case F16 -> ScalarType.Half;
            case BF16 -> ScalarType.BFloat16;
            case I64 -> ScalarType.Long;
            case I32 -> ScalarType.Int;
            case I16 -> ScalarType.Short;
            case I8 -> ScalarType.Char;
            case U8 -> ScalarType.Byte;
            case BOOL -> ScalarType.Bool;
        };
    }

    /** The file dtype of a libtorch type. */
    public static io.llava4j.io.DType dtype(ScalarType s) {
        for (io.llava4j.io.DType d : io.llava4j.io.DType.values()) if (scalarType(d) == s) return d;
        throw new IllegalArgumentException("no file dtype for " + s);
    }

    /**
     * Loads a file tensor into {@code param} stored as {@code storage} (the parameter's storage is replaced when its type
     * differs). Memory-mapped data are read in place and converted straight into the parameter: no JVM array and no
     * temporary beyond what the conversion itself needs, all freed before returning.
     */
    /**
     * Points {@code param} at {@code h}'s bytes in its file mapping, with no copy, when they are already what the
     * parameter would hold (a file mapping, in the storage type, on the CPU); returns false, leaving {@code param}
     * alone, otherwise. The mapping is read-only: the caller keeps {@code h.data()} reachable for as long as
     * {@code param} lives, and nothing may write {@code param}.
     */
    public static boolean useInPlace(Tensor param, HostTensor h, ScalarType storage) {
        if (!(h.data() instanceof java.nio.MappedByteBuffer) || !h.data().isDirect() || !param.is_cpu()
                || scalarType(h.dtype()) != storage || h.numel() == 0
                || com.sun.jna.Pointer.nativeValue(com.sun.jna.Native.getDirectBufferPointer(h.data())) % h.dtype().bytes != 0)
            return false;
        try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            param.__dispatch_set_data(torch.from_blob(new BytePointer(h.data()), h.shape(), new TensorOptions(storage)));
        }
        return true;
    }

    public static void load(Tensor param, HostTensor h, ScalarType storage) {
        try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            if (param.scalar_type().intern() != storage)
                param.__dispatch_set_data(torch.empty(h.shape(), new TensorOptions(storage), null));
            long bytes = h.numel() * h.dtype().bytes;
            if (bytes == 0) return;
            Tensor src;
            if (h.data().isDirect()) {
                src = torch.from_blob(new BytePointer(h.data()), h.shape(), new TensorOptions(scalarType(h.dtype())));
                if (!param.is_cpu()) src = src.to(param.device(), src.scalar_type().intern());
            } else {
                src = torch.empty(h.shape(), new TensorOptions(scalarType(h.dtype())), null);
                byte[] chunk = new byte[(int) Math.min(bytes, 1 << 20)];
                java.nio.ByteBuffer b = h.data().duplicate();
                BytePointer dst = new BytePointer(src.data_ptr()).capacity(bytes);
                for (long off = 0; off < bytes; off += chunk.length) {
                    int n = (int) Math.min(chunk.length, bytes - off);
                    b.get(chunk, 0, n);
                    dst.position(off).put(chunk, 0, n);
                }
            }
            param.copy_(src);
        }
    }

    /**
     * A host view of a tensor's values: a CPU tensor's own memory (no copy; the tensor must stay alive while the view is
     * used; a non-contiguous one is made contiguous first), or, for a tensor elsewhere, a copy that owns its memory.
     */
    public static HostTensor hostView(Tensor t) {
        Tensor c = onHost(t, t.scalar_type().intern());
        io.llava4j.io.DType d = dtype(c.scalar_type().intern());
        long bytes = c.numel() * d.bytes;
        if (t.is_cpu()) {
            java.nio.ByteBuffer buf = bytes == 0 ? java.nio.ByteBuffer.allocateDirect(0)
                    : new BytePointer(c.data_ptr()).capacity(bytes).asByteBuffer();
            return new HostTensor(d, shape(c), buf);
        }
        java.nio.ByteBuffer buf = java.nio.ByteBuffer.allocateDirect(Math.toIntExact(bytes)); // owns the copy's values
        if (bytes > 0) org.bytedeco.javacpp.Pointer.memcpy(new BytePointer(buf), c.data_ptr(), bytes);
        return new HostTensor(d, shape(c), buf);
    }

    /**
     * The one way host code reaches a tensor's memory: {@code t} (detached) as a contiguous CPU tensor of type
     * {@code type}, copied from the device when it lives elsewhere (a GPU). Its {@code data_ptr} may then be read. A
     * tensor without data (the meta device) is refused by name instead of handing out a pointer to nothing.
     */
    public static Tensor onHost(Tensor t, ScalarType type) {
        if (t.is_meta())
            throw new IllegalArgumentException("a tensor on the meta device has no values to read (shape "
                    + java.util.Arrays.toString(shape(t)) + ")");
        Tensor c = t.detach();
        if (!c.is_cpu()) c = c.cpu();
        if (c.scalar_type().intern() != type) c = c.to(type);
        return c.contiguous();
    }

    public static Tensor floats(float[] values, long... shape) {
        Tensor t = torch.empty(shape);
        if (values.length != t.numel())
            throw new IllegalArgumentException(values.length + " values for shape " + java.util.Arrays.toString(shape));
        t.data_ptr_float().put(values);
        return Device.place(t);
    }

    public static Tensor longs(long[] values, long... shape) {
        Tensor t = torch.empty(shape, new TensorOptions(ScalarType.Long), null);
        t.data_ptr_long().put(values);
        return Device.place(t);
    }

    /** The values of a tensor as fp32, in row-major order (copied to the host first when it lives elsewhere). */
    public static float[] toFloats(Tensor t) {
        Tensor c = onHost(t, ScalarType.Float);
        float[] out = new float[Math.toIntExact(c.numel())];
        c.data_ptr_float().get(out);
        return out;
    }

    /** The values of a tensor as int64, in row-major order (copied to the host first when it lives elsewhere). */
    public static long[] toLongs(Tensor t) {
        Tensor c = onHost(t, ScalarType.Long);
        long[] out = new long[Math.toIntExact(c.numel())];
        c.data_ptr_long().get(out);
        return out;
    }

    public static long[] shape(Tensor t) {
        return t.sizes().vec().get();
    }

    /** Bytes of every parameter of a module in its storage type (half-precision weights count 2 bytes a value). */
    public static long parameterBytes(Module m) {
        long b = 0;
        for (Tensor t : namedParameters(m).values()) b += t.numel() * t.element_size();
        return b;
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
