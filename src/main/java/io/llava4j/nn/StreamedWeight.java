package io.llava4j.nn;

import io.llava4j.engine.CpuTeam;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * A frozen bf16 linear weight held row-major for inference, whose products with a few rows (a decoding step, or a few
 * sequences decoded together) run as Java vector loops ({@link VectorGemv}) split over a team of threads
 * ({@link NativeRows#multiply}), and with more rows (a prompt) as libtorch's GEMM on the same memory.
 *
 * <p>Why not libtorch for the few-row case: a decoding step streams every weight matrix once per token, and libtorch
 * 2.10 pays a fixed cost per product there (oneDNN builds its primitive descriptor on every call, ~45–70 µs) that at
 * a 134 M model's small matrices outweighs streaming them; its plain bf16 matrix–vector kernels stream well below the
 * memory's rate (bench/README.md, decode). The loops here read each matrix straight from its row-major memory.
 *
 * <p>Results equal libtorch's up to the order of fp32 additions: in bf16 the input is rounded to bf16 first and each
 * output once at the end (as oneDNN's bf16 product returns bf16), bias added before that rounding.
 *
 * <p>The matrix is a fresh libtorch tensor (64-byte aligned; on transparent huge pages where the launcher asks for
 * them), copied from the weight it replaces; {@link Linear#packForInference} releases the plain parameter.
 */
public final class StreamedWeight implements InferenceMatrix {
    /**
     * Matrices smaller than this are held here rather than in oneDNN's blocked layout ({@link InferenceMatrix#of}):
     * libtorch's oneDNN product costs ~45–70 µs a call whatever the size, which these loops do not pay, while at
     * large sizes oneDNN's kernel streams faster than the loops (bench/README.md, decode: ~6–8 MB is where the two
     * met on the AVX-512 BF16 machine measured).
     */
    public static final long PREFERRED_BELOW_BYTES = Long.getLong("llava4j.javaBelowBytes", 8L << 20);
    /** Inputs of up to this many rows take the vector path; more go to libtorch's GEMM. */
    public static final int VECTOR_ROWS = 8;
    private static final boolean AVAILABLE = ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent()
            && !"false".equals(System.getProperty("llava4j.vectorGemv"));

    /** Whether the JVM runs with the vector API ({@code --add-modules jdk.incubator.vector}, as the launcher starts it). */
    public static boolean available() {
        return AVAILABLE;
    }

    private final Tensor matrix;        // [out, in] row-major, contiguous, bf16
    private final NativeRows memory;    // its rows, read in place
    private final int in, out;
    private final boolean bf16Gemm;     // rounds as a bf16 GEMM (input and output in bf16); else fp32 arithmetic throughout

    private StreamedWeight(Tensor matrix, int out, int in, long maxChunkBytes, boolean bf16Gemm) {
        this.matrix = matrix;
        this.out = out;
        this.in = in;
        this.bf16Gemm = bf16Gemm;
        this.memory = new NativeRows(matrix, out, 2L * in, maxChunkBytes);
    }

    /**
     * A row-major bf16 copy of {@code weight} [out, in], or null where the vector path cannot hold it (not a matrix; a
     * row of 2 GiB or more; 2³¹ rows or more).
     */
    public static StreamedWeight of(Tensor weight) {
        return of(weight, Integer.MAX_VALUE, true);
    }

    /**
     * A row-major bf16 copy of {@code weight} multiplied in fp32 arithmetic, as fp32 GEMMs on up-cast weights compute
     * ({@code --bf16} on a CPU without bf16 arithmetic): the input and outputs stay fp32, each bf16 weight widened
     * exactly; prompts up-cast the matrix for libtorch's fp32 GEMM. Half the bytes a step streams of an fp32 copy.
     */
    public static StreamedWeight upcasting(Tensor weight) {
        return of(weight, Integer.MAX_VALUE, false);
    }

    /** Whether a bf16 matrix [out, in] fits the buffers' int indices (and is not empty). */
    private static boolean holdable(long out, long in) {
        return NativeRows.holdable(out, 2 * in);
    }

    /**
     * {@code weight} itself (no copy) where it is a contiguous bf16 matrix on the CPU and the JVM has the vector API,
     * else null: a tied head reads the embedding table in place. The caller keeps {@code weight} alive and unchanged.
     * {@code bf16Gemm}: its products round as bf16 GEMMs (as {@link #of}), else fp32 arithmetic (as {@link #upcasting}).
     */
    public static StreamedWeight over(Tensor weight, boolean bf16Gemm) {
        if (!AVAILABLE || weight.dim() != 2 || weight.scalar_type().intern() != ScalarType.BFloat16 || !weight.is_contiguous()
                || !weight.device().is_cpu() || !holdable(weight.size(0), weight.size(1)))
            return null;
        VectorGemv.warmUp();
        Tensor m = new Tensor(weight); // a second handle on the same tensor
        return new StreamedWeight(m, (int) weight.size(0), (int) weight.size(1), Integer.MAX_VALUE, bf16Gemm);
    }

    /** As {@link #of(Tensor)}, the rows read through buffers of at most {@code maxChunkBytes} each (tests). */
    static StreamedWeight of(Tensor weight, long maxChunkBytes, boolean bf16Gemm) {
        if (!AVAILABLE) throw new IllegalStateException("the JVM runs without the jdk.incubator.vector module");
        if (weight.dim() != 2 || !holdable(weight.size(0), weight.size(1))) return null;
        VectorGemv.warmUp();
        long out = weight.size(0), in = weight.size(1);
        Tensor m = new Tensor(); // made outside the scope, which would free it
        try (var g = new org.bytedeco.pytorch.NoGradGuard(); var scope = new org.bytedeco.javacpp.PointerScope()) {
            Tensor c = torch.empty(new long[]{out, in}, new TensorOptions(ScalarType.BFloat16), null);
            c.copy_(weight);
            m.put(c);
        }
        return new StreamedWeight(m, (int) out, (int) in, maxChunkBytes, bf16Gemm);
    }

    @Override
    public long bytes() {
        return 2L * out * in;
    }

    @Override
    public Tensor linear(Tensor x, Tensor bias) {
        long rows = x.numel() / in;
        return Scopes.keep(() -> rows > VECTOR_ROWS || rows == 0 ? gemm(x, bias) : vector(x, bias, (int) rows));
    }

    /** Many rows: libtorch's GEMM on the row-major matrix (up-cast to fp32 first where the arithmetic is fp32). */
    private Tensor gemm(Tensor x, Tensor bias) {
        ScalarType xt = x.scalar_type().intern();
        if (!bf16Gemm) {
            Tensor xf = x.to(ScalarType.Float), w = matrix.to(ScalarType.Float);
            Tensor y = bias == null ? torch.linear(xf, w) : torch.linear(xf, w, new TensorOptional(bias.to(ScalarType.Float)));
            return y.scalar_type().intern() == xt ? y : y.to(xt);
        }
        Tensor xi = xt == ScalarType.BFloat16 ? x : x.to(ScalarType.BFloat16);
        Tensor y = bias == null ? torch.linear(xi, matrix) : torch.linear(xi, matrix, new TensorOptional(bias.to(ScalarType.BFloat16)));
        return y.scalar_type().intern() == xt ? y : y.to(xt);
    }

    /** A few rows: the vector loops, fp32 sums of bf16 products. */
    private Tensor vector(Tensor x, Tensor bias, int rows) {
        ScalarType xt = x.scalar_type().intern();
        float[][] scratch = SCRATCH.get();
        int nx = rows * in, ny = rows * out;
        if (scratch[0].length < nx) scratch[0] = new float[nx];
        if (scratch[1].length < ny) scratch[1] = new float[ny];
        float[] xs = scratch[0], ys = scratch[1];
        x.reshape(rows, in).to(ScalarType.Float).contiguous().data_ptr_float().get(xs, 0, nx);
        product(xs, rows, bf16Gemm && xt != ScalarType.BFloat16, ys, bias == null ? null : biasValues(bias));
        Tensor y = torch.empty(new long[]{rows, out}, new TensorOptions(ScalarType.Float), null);
        y.data_ptr_float().put(ys, 0, ny);
        if (xt != ScalarType.Float) y = y.to(xt);
        long[] shape = x.sizes().vec().get();
        shape[shape.length - 1] = out;
        return y.view(shape);
    }

    /**
     * y = W·x (+ bias) for one row held in Java arrays, rounded as {@link #linear} rounds (in bf16: the input to bf16
     * first, the output once at the end); {@code bias} as {@link #biasValues} gives it, or null. {@code x} is not
     * changed. For callers that keep a decoding step's activations in Java ({@code model.LlamaDecodeStep}).
     */
    public void multiply(float[] x, float[] y, float[] bias) {
        if (x.length < in || y.length < out) throw new IllegalArgumentException("x of " + x.length + " and y of " + y.length + " values for a matrix [" + out + ", " + in + "]");
        float[][] scratch = SCRATCH.get();
        if (scratch[0].length < in) scratch[0] = new float[in];
        System.arraycopy(x, 0, scratch[0], 0, in);
        product(scratch[0], 1, bf16Gemm, y, bias);
    }

    /** ys[0 : rows·out] = xs[0 : rows·in]·Wᵀ (+ bias), xs rounded to bf16 in place first where {@code roundInput}. */
    private void product(float[] xs, int rows, boolean roundInput, float[] ys, float[] bias) {
        if (roundInput) roundToBf16(xs, rows * in); // the input in the matrix's type, as x.to(bf16)
        int grain = memory.grain();
        CpuTeam team = CpuTeam.of(io.llava4j.engine.Engine.threads());
        for (int m0 = 0; m0 < rows; m0 += 4) { // each loop its own call sites, so that the JIT sees one kernel at each
            int m = m0, count = Math.min(4, rows - m0);
            team.run(out, grain, (from, to) -> memory.forEach(from, to,
                    (buffer, a, b, first) -> VectorGemv.bf16(buffer, in, a, b, xs, m, count, ys, first, out)));
        }
        if (bias != null)
            for (int r = 0; r < rows; r++)
                for (int o = 0; o < out; o++) ys[r * out + o] += bias[o];
        if (bf16Gemm) roundToBf16(ys, rows * out); // oneDNN's bf16 product returns bf16
    }

    /** Each thread's input and output buffers, reused from call to call (no garbage per decoding step). */
    private static final ThreadLocal<float[][]> SCRATCH = ThreadLocal.withInitial(() -> new float[][]{new float[0], new float[0]});

    private Tensor biasOf;       // the bias tensor biasValues was read from (layers pass the same one every call)
    private float[] biasValues;  // its values as the products add them (rounded to bf16 where they round as bf16 GEMMs)

    /**
     * The values of {@code bias} [out] as fp32, rounded to bf16 first where the products round as bf16 GEMMs (read once
     * for the tensor a layer passes every call).
     */
    public synchronized float[] biasValues(Tensor bias) {
        if (bias != biasOf) {
            float[] v = new float[out];
            (bf16Gemm ? bias.to(ScalarType.BFloat16) : bias).to(ScalarType.Float).contiguous().data_ptr_float().get(v);
            biasValues = v;
            biasOf = bias;
        }
        return biasValues;
    }

    /** Rounds each value to the nearest bf16, ties to even (c10's float → bf16), keeping it in fp32. */
    static void roundToBf16(float[] v) {
        roundToBf16(v, v.length);
    }

    /** Rounds v[0 : n] to the nearest bf16, ties to even, keeping it in fp32. */
    public static void roundToBf16(float[] v, int n) {
        for (int i = 0; i < n; i++) {
            int b = Float.floatToRawIntBits(v[i]);
            if ((b & 0x7fffffff) > 0x7f800000) {
                v[i] = Float.intBitsToFloat(0x7fc00000); // NaN
                continue;
            }
            b += 0x7fff + ((b >>> 16) & 1);
            v[i] = Float.intBitsToFloat(b & 0xffff0000);
        }
    }
}
