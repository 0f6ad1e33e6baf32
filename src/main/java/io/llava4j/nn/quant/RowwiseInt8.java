package io.llava4j.nn.quant;

import io.llava4j.engine.CpuTeam;
import io.llava4j.engine.Tensors;
import io.llava4j.nn.NativeRows;
import io.llava4j.nn.StreamedWeight;
import io.llava4j.nn.VectorGemv;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * LLM.int8's weight storage (bitsandbytes' {@code int8_vectorwise_quant} / {@code int8_vectorwise_dequant}, threshold
 * 0: no outlier columns kept in 16 bits): each output row's absolute maximum m is kept in fp32 and each value x
 * becomes round(x·(127/m)) as int8; dequantized: q·m·(1/127) in fp32. A row of zeros (m = 0) stays zero (bitsandbytes
 * would divide by zero there).
 */
public final class RowwiseInt8 extends QuantizedWeight {
    /** 1/127 as bitsandbytes writes it. */
    static final double INV127 = 7.874015718698502e-3;
    private static final long CHUNK = 1 << 20; // values per chunk of work

    private final Tensor q;     // int8 [out, in]
    private final Tensor stats; // fp32 [out]: each row's absolute maximum
    private Tensor kernelScales; // bf16 [out]: stats / 127 for libtorch's int8 weight-only kernel, made on first use
    private volatile NativeRows inPlace; // q's rows read from Java (multiply), made on first use
    private volatile byte javaChoice = -1; // javaProduct's answer, bit 0 in fp32 and bit 1 in bf16; -1 until first asked
    private float[] scales, bf16Scales; // [out]: m·(1/127) in fp32, and rounded to bf16 as the kernel's

    private RowwiseInt8(long[] shape, Tensor q, Tensor stats) {
        super(shape);
        this.q = q;
        this.stats = stats;
    }

    @Override
    public QuantType type() {
        return QuantType.INT8;
    }

    @Override
    public long bytes() {
        return q.numel() + 4 * stats.numel();
    }

    /** int8 [out, in] */
    public Tensor codes() {
        return q;
    }

    /** fp32 [out]: each row's absolute maximum. */
    public Tensor rowAbsmax() {
        return stats;
    }

    /** Quantizes a matrix [out, in] (any floating type; read a few rows at a time). */
    public static RowwiseInt8 quantize(Tensor w) {
        if (w.dim() != 2) throw new IllegalArgumentException("int8 weights are matrices; got " + w.dim() + " dimensions");
        long rows = w.size(0), cols = w.size(1);
        Tensor q = held(torch.empty(new long[]{rows, cols}, new TensorOptions(ScalarType.Char), null));
        Tensor stats = held(torch.empty(new long[]{rows}, new TensorOptions(ScalarType.Float), null));
        long step = Math.max(1, CHUNK / Math.max(1, cols));
        try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            for (long r0 = 0; r0 < rows; r0 += step) {
                try (PointerScope c = new PointerScope()) {
                    long nr = Math.min(step, rows - r0);
                    Tensor x = w.narrow(0, r0, nr).to(ScalarType.Float);
                    Tensor m = x.abs().amax(new long[]{1}, false); // [nr]
                    Tensor scale = m.clamp_min(new Scalar(1e-30)).reciprocal().mul(new Scalar(127.0)); // 127 / m
                    q.narrow(0, r0, nr).copy_(torch.round(x.mul(scale.unsqueeze(1))).to(ScalarType.Char));
                    stats.narrow(0, r0, nr).copy_(m);
                }
            }
        }
        return new RowwiseInt8(Tensors.shape(w), q, stats);
    }

    @Override
    protected void fill(Tensor flat) {
        long rows = shape[0], cols = shape[1];
        Tensor out = flat.view(rows, cols);
        long step = Math.max(1, CHUNK / Math.max(1, cols));
        for (long r0 = 0; r0 < rows; r0 += step) {
            try (PointerScope c = new PointerScope()) {
                long nr = Math.min(step, rows - r0);
                Tensor v = q.narrow(0, r0, nr).to(ScalarType.Float).mul(stats.narrow(0, r0, nr).unsqueeze(1)).mul(new Scalar(INV127));
                out.narrow(0, r0, nr).copy_(v);
            }
        }
    }

    /** stats / 127 in bf16: the per-row scales libtorch's {@code _weight_int8pack_mm} multiplies by. */
    Tensor kernelScales() {
        if (kernelScales == null)
            try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
                kernelScales = held(stats.mul(new Scalar(INV127)).to(ScalarType.BFloat16));
            }
        return kernelScales;
    }

    /** Whether {@link #multiply} runs here: the JVM has the vector API and the CPU 256-bit vectors or wider. */
    public static boolean javaProductAvailable() {
        return StreamedWeight.available() && VectorGemv.int8Supported();
    }

    /**
     * Whether a decoding step multiplies this matrix with {@link #multiply} rather than libtorch's int8 kernel: never off
     * the CPU; always in fp32 (libtorch has no fp32 int8 kernel: the layer would be dequantized each step); in bf16 for matrices under
     * {@link StreamedWeight#PREFERRED_BELOW_BYTES}, where the kernel's fixed cost a call outweighs streaming the codes,
     * while on larger ones it streamed as fast or faster than the Java loops (bench/README.md, decode). The system
     * property {@code llava4j.int8JavaBelowBytes} moves that bound (0: libtorch's kernel for every bf16 matrix).
     */
    public boolean javaProduct(boolean bf16) {
        byte c = javaChoice;
        if (c < 0) { // decided on first use (asked on every product of every decoding step)
            boolean cpu = javaProductAvailable() && q.device().is_cpu();
            c = (byte) ((cpu ? 1 : 0) | (cpu && q.numel() < Long.getLong("llava4j.int8JavaBelowBytes", StreamedWeight.PREFERRED_BELOW_BYTES) ? 2 : 0));
            javaChoice = c;
        }
        return (c & (bf16 ? 2 : 1)) != 0;
    }

    /** Each thread's buffers for {@link #multiply} (the rounded input) and {@link #linear} (its input and output). */
    private static final ThreadLocal<float[][]> SCRATCH = ThreadLocal.withInitial(() -> new float[][]{new float[0], new float[0], new float[0]});

    private synchronized void readInPlace() {
        if (inPlace != null) return;
        VectorGemv.warmUp();
        long rows = shape[0], cols = shape[1];
        if (!NativeRows.holdable(rows, cols)) throw new IllegalStateException("an int8 matrix of " + rows + " rows of " + cols + " is too large to read in place");
        float[] m = Tensors.toFloats(stats), s = new float[m.length], b = new float[m.length];
        for (int i = 0; i < m.length; i++) {
            s[i] = m[i] * (float) INV127; // as fill: (q·m)·(1/127), up to the order of the two products
            b[i] = s[i];                  // libtorch's kernel: bf16(m·(1/127)), rounded below
        }
        StreamedWeight.roundToBf16(b, b.length);
        scales = s;
        bf16Scales = b;
        inPlace = new NativeRows(q, (int) rows, cols, Integer.MAX_VALUE);
    }

    /**
     * y[r·out + o] = Σ_k W[o, k]·x[r·in + k] (r < rows) with W the dequantized matrix, the codes read in place by Java's
     * vector loops ({@link VectorGemv#int8}) split over the process's {@link CpuTeam}. In bf16 it computes what libtorch's
     * weight-only int8 kernel does: x rounded to bf16, per-row scales bf16(m/127), fp32 sums, each output rounded to
     * bf16; in fp32 the scales are m·(1/127) and nothing is rounded. {@code x} is not changed. Only where
     * {@link #javaProductAvailable}.
     */
    public void multiply(float[] x, int rows, float[] y, boolean bf16) {
        if (inPlace == null) readInPlace();
        QuantizedLinear.countInt8Product();
        int in = (int) shape[1], out = (int) shape[0];
        float[] xs = x;
        if (bf16) { // the input rounded in a reused buffer (no garbage per decoding step)
            float[][] scratch = SCRATCH.get();
            if (scratch[0].length < rows * in) scratch[0] = new float[rows * in];
            xs = scratch[0];
            System.arraycopy(x, 0, xs, 0, rows * in);
            StreamedWeight.roundToBf16(xs, rows * in);
        }
        float[] sc = bf16 ? bf16Scales : scales, xr = xs;
        CpuTeam team = CpuTeam.of(io.llava4j.engine.Engine.threads());
        for (int m0 = 0; m0 < rows; m0 += 4) {
            int m = m0, count = Math.min(4, rows - m0);
            team.run(out, inPlace.grain(), (from, to) -> inPlace.forEach(from, to,
                    (buffer, a, b, first) -> VectorGemv.int8(buffer, in, a, b, xr, m, count, sc, y, first, out)));
        }
        if (bf16) StreamedWeight.roundToBf16(y, rows * out);
    }

    /** x [.., in] → [.., out] fp32 by {@link #multiply} (a few rows: a decoding step). */
    Tensor linear(Tensor x, boolean bf16) {
        long[] shape = x.sizes().vec().get();
        int in = (int) this.shape[1], out = (int) this.shape[0], rows = (int) (x.numel() / in);
        float[][] scratch = SCRATCH.get();
        if (scratch[1].length < rows * in) scratch[1] = new float[rows * in];
        if (scratch[2].length < rows * out) scratch[2] = new float[rows * out];
        float[] xs = scratch[1], ys = scratch[2];
        try (PointerScope s = new PointerScope()) {
            x.reshape(rows, in).to(ScalarType.Float).contiguous().data_ptr_float().get(xs, 0, rows * in);
        }
        multiply(xs, rows, ys, bf16);
        shape[shape.length - 1] = out;
        Tensor y = torch.empty(new long[]{rows, out}, new TensorOptions(ScalarType.Float), null);
        y.data_ptr_float().put(ys, 0, rows * out);
        return y.view(shape);
    }
}
