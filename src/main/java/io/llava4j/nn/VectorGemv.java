package io.llava4j.nn;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The inner loops of {@link StreamedWeight}: y = W·x for a row-major bf16 W (read from a little-endian buffer over
 * native memory) and one to four input rows, in Java's vector API at the CPU's widest vector (512 bits with AVX-512).
 * Every weight row is read once and dotted with each input row in fp32 with fused multiply-adds; a bf16 value widens to
 * fp32 exactly by a 16-bit shift. Decoding is bound by streaming the weights from memory, so the loop does little
 * else: two accumulators for one input row, one per row for several, one reduction per output. Also the dot product
 * and update over an fp32 KV-cache row that {@code model.LlamaDecodeStep}'s attention runs.
 *
 * <p>Loaded only where the {@code jdk.incubator.vector} module is present ({@link StreamedWeight#available}).
 */
public final class VectorGemv {
    private VectorGemv() {}

    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    /** Half the float vector's bits: as many shorts as the float vector has lanes (one of the constants, for the JIT). */
    private static final VectorSpecies<Short> S = switch (F.vectorBitSize()) {
        case 512 -> ShortVector.SPECIES_256;
        case 256 -> ShortVector.SPECIES_128;
        default -> ShortVector.SPECIES_64;
    };
    /** A quarter of the float vector's bits: as many bytes as it has lanes; none for 128-bit float vectors. */
    private static final VectorSpecies<Byte> B = switch (F.vectorBitSize()) {
        case 512 -> ByteVector.SPECIES_128;
        case 256 -> ByteVector.SPECIES_64;
        default -> null;
    };
    private static final int L = F.length();
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    /**
     * Runs each loop (and {@link #dot} / {@link #axpy}) until the JIT has compiled it, then collects the garbage; once a
     * process. Before compilation the vector API runs its Java fallbacks, which allocate an array per vector operation:
     * left to the first decoding steps, that garbage (~1 GB/s) made the collector grow the Java heap by ~160 MB for
     * good; here the heap it grows is given back by the collection that follows.
     */
    public static synchronized void warmUp() {
        if (warm) return;
        warm = true;
        int cols = 256, rows = 64;
        java.nio.ByteBuffer w = java.nio.ByteBuffer.allocateDirect(rows * cols * 4).order(LE);
        float[] x = new float[4 * cols], y = new float[4 * rows];
        for (int i = 0; i < 3000; i++) {
            bf16(w, cols, 0, rows, x, 0, 1, y, 0, rows);
            bf16(w, cols, 0, rows, x, 0, 3, y, 0, rows);
            if (B != null) {
                int8(w, cols, 0, rows, x, 0, 1, y, y, 0, rows);
                int8(w, cols, 0, rows, x, 0, 3, y, y, 0, rows);
            }
            expShifted(x, 100, 1f);
            siluTimesUp(y, 100, x);
            weightedRows(x, 16, 0.5f, w, 0, 4 * 64, y, 0, 4 * L);
            for (int j = 0; j < rows; j++) {
                y[j] = dot(x, 0, w, j * 4 * 64, 64);
                axpy(y[j], w, j * 4 * 64, x, 0, 64);
            }
        }
        System.gc();
    }

    private static boolean warm;

    /** bf16 bits (in a short vector) → fp32 lanes. */
    private static FloatVector widen(ShortVector s) {
        return ((IntVector) s.convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    private static float bf16(short bits) {
        return Float.intBitsToFloat(bits << 16);
    }

    /**
     * y[m·out + first + r] = Σ_k W[r, k]·x[(m0 + m)·cols + k] for the chunk's rows r in [from, to) and the input rows
     * m in [0, rows) (rows ≤ 4), W's row r starting at byte {@code r·cols·2} of {@code w} (bf16).
     */
    static void bf16(ByteBuffer w, int cols, int from, int to, float[] x, int m0, int rows, float[] y, int first, int out) {
        if (rows == 1) bf16One(w, cols, from, to, x, m0 * cols, y, first + m0 * out);
        else few(w, false, cols, from, to, x, m0, rows, null, y, first, out);
    }

    /**
     * Two to four input rows: each weight vector loaded once and multiplied into every row's accumulator. W bf16, or
     * int8 with each output row times {@code scale} (the int8 case's scales; null for bf16). One loop for both: the few-row
     * case is batched decoding's, where the weights' type is the same for a whole matrix (the branch is predicted).
     */
    private static void few(ByteBuffer w, boolean int8, int cols, int from, int to, float[] x, int m0, int rows, float[] scale, float[] y,
                            int first, int out) {
        int x0 = m0 * cols, x1 = (m0 + Math.min(1, rows - 1)) * cols, x2 = (m0 + Math.min(2, rows - 1)) * cols,
                x3 = (m0 + Math.min(3, rows - 1)) * cols, bytes = int8 ? 1 : 2;
        for (int r = from; r < to; r++) {
            int b = r * cols * bytes;
            FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F), a2 = FloatVector.zero(F), a3 = FloatVector.zero(F);
            int k = 0;
            for (; k <= cols - L; k += L) {
                FloatVector v = int8 ? widen(w, b + k) : widen(ShortVector.fromByteBuffer(S, w, b + 2 * k, LE));
                a0 = v.fma(FloatVector.fromArray(F, x, x0 + k), a0);
                a1 = v.fma(FloatVector.fromArray(F, x, x1 + k), a1);
                a2 = v.fma(FloatVector.fromArray(F, x, x2 + k), a2);
                a3 = v.fma(FloatVector.fromArray(F, x, x3 + k), a3);
            }
            float s0 = a0.reduceLanes(VectorOperators.ADD), s1 = a1.reduceLanes(VectorOperators.ADD),
                    s2 = a2.reduceLanes(VectorOperators.ADD), s3 = a3.reduceLanes(VectorOperators.ADD);
            for (; k < cols; k++) {
                float v = int8 ? w.get(b + k) : bf16(w.getShort(b + 2 * k));
                s0 += v * x[x0 + k];
                s1 += v * x[x1 + k];
                s2 += v * x[x2 + k];
                s3 += v * x[x3 + k];
            }
            float s = scale == null ? 1f : scale[first + r];
            int o = first + r + m0 * out;
            y[o] = s * s0;
            if (rows > 1) y[o + out] = s * s1;
            if (rows > 2) y[o + 2 * out] = s * s2;
            if (rows > 3) y[o + 3 * out] = s * s3;
        }
    }

    private static void bf16One(ByteBuffer w, int cols, int from, int to, float[] x, int x0, float[] y, int y0) {
        for (int r = from; r < to; r++) {
            int b = r * cols * 2;
            FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F);
            int k = 0;
            for (; k <= cols - 2 * L; k += 2 * L) {
                a0 = widen(ShortVector.fromByteBuffer(S, w, b + 2 * k, LE)).fma(FloatVector.fromArray(F, x, x0 + k), a0);
                a1 = widen(ShortVector.fromByteBuffer(S, w, b + 2 * k + 2 * L, LE)).fma(FloatVector.fromArray(F, x, x0 + k + L), a1);
            }
            for (; k <= cols - L; k += L)
                a0 = widen(ShortVector.fromByteBuffer(S, w, b + 2 * k, LE)).fma(FloatVector.fromArray(F, x, x0 + k), a0);
            float s = a0.add(a1).reduceLanes(VectorOperators.ADD);
            for (; k < cols; k++) s += bf16(w.getShort(b + 2 * k)) * x[x0 + k];
            y[y0 + r] = s;
        }
    }

    /** Whether the int8 loops run here: a CPU with 256- or 512-bit vectors (x86 with AVX2 or AVX-512). */
    public static boolean int8Supported() {
        return B != null;
    }

    /** int8 codes (a byte vector's lanes) → fp32 lanes. */
    private static FloatVector widen(ByteBuffer w, int at) {
        return (FloatVector) ByteVector.fromByteBuffer(B, w, at, LE).convertShape(VectorOperators.B2F, F, 0);
    }

    /**
     * y[m·out + first + r] = scale[first + r]·Σ_k W[r, k]·x[(m0 + m)·cols + k] for the chunk's rows r in [from, to) and
     * the input rows m in [0, rows) (rows ≤ 4), W int8 with row r at byte {@code r·cols} of {@code w}: a row-scaled int8
     * matrix ({@code nn.quant.RowwiseInt8}) read in place. Only where {@link #int8Supported}.
     */
    public static void int8(ByteBuffer w, int cols, int from, int to, float[] x, int m0, int rows, float[] scale, float[] y, int first, int out) {
        if (rows == 1) int8One(w, cols, from, to, x, m0 * cols, scale, first, y, first + m0 * out);
        else few(w, true, cols, from, to, x, m0, rows, scale, y, first, out);
    }

    private static void int8One(ByteBuffer w, int cols, int from, int to, float[] x, int x0, float[] scale, int first, float[] y, int y0) {
        for (int r = from; r < to; r++) {
            int b = r * cols;
            FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F);
            int k = 0;
            for (; k <= cols - 2 * L; k += 2 * L) {
                a0 = widen(w, b + k).fma(FloatVector.fromArray(F, x, x0 + k), a0);
                a1 = widen(w, b + k + L).fma(FloatVector.fromArray(F, x, x0 + k + L), a1);
            }
            for (; k <= cols - L; k += L) a0 = widen(w, b + k).fma(FloatVector.fromArray(F, x, x0 + k), a0);
            float s = a0.add(a1).reduceLanes(VectorOperators.ADD);
            for (; k < cols; k++) s += w.get(b + k) * x[x0 + k];
            y[y0 + r] = scale[first + r] * s;
        }
    }

    /**
     * v[i] = exp(v[i] − shift) for i < n, returning their sum: a softmax's numerators (the vector API's exp, ~0.6 ns a
     * value where {@link Math#exp} took ~7; within an ulp or two of it).
     */
    public static float expShifted(float[] v, int n, float shift) {
        FloatVector acc = FloatVector.zero(F);
        int i = 0;
        for (; i <= n - L; i += L) {
            FloatVector e = FloatVector.fromArray(F, v, i).sub(shift).lanewise(VectorOperators.EXP);
            e.intoArray(v, i);
            acc = acc.add(e);
        }
        float sum = acc.reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) sum += v[i] = (float) Math.exp(v[i] - shift);
        return sum;
    }

    /** out[i] = SiLU(gu[i])·gu[n + i] = gu[i] / (1 + exp(−gu[i]))·gu[n + i] for i < n (a gate/up product's halves). */
    public static void siluTimesUp(float[] gu, int n, float[] out) {
        int i = 0;
        for (; i <= n - L; i += L) {
            FloatVector g = FloatVector.fromArray(F, gu, i);
            g.div(g.neg().lanewise(VectorOperators.EXP).add(1f)).mul(FloatVector.fromArray(F, gu, n + i)).intoArray(out, i);
        }
        for (; i < n; i++) {
            float g = gu[i];
            out[i] = g / (1f + (float) Math.exp(-g)) * gu[n + i];
        }
    }

    /**
     * out[oo + d] = f·Σ_{j < n} p[j]·b[bo + j·stride + 4d] for d < width, b fp32 in a little-endian buffer: attention's
     * weighted sum of cached value rows ({@code stride} bytes apart). Up to four vectors of the output are kept in
     * registers while every row is read once, where an update per row ({@link #axpy}) went through memory each time.
     * Needs {@code width} a multiple of the vector's length ({@link #weightedRowsFit}).
     */
    public static void weightedRows(float[] p, int n, float f, ByteBuffer b, int bo, int stride, float[] out, int oo, int width) {
        for (int d0 = 0; d0 < width; d0 += 4 * L) {
            int blocks = Math.min(4, (width - d0) / L);
            FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F), a2 = FloatVector.zero(F), a3 = FloatVector.zero(F);
            for (int j = 0; j < n; j++) {
                FloatVector pj = FloatVector.broadcast(F, p[j]);
                int at = bo + j * stride + 4 * d0;
                a0 = FloatVector.fromByteBuffer(F, b, at, LE).fma(pj, a0);
                if (blocks > 1) a1 = FloatVector.fromByteBuffer(F, b, at + 4 * L, LE).fma(pj, a1);
                if (blocks > 2) a2 = FloatVector.fromByteBuffer(F, b, at + 8 * L, LE).fma(pj, a2);
                if (blocks > 3) a3 = FloatVector.fromByteBuffer(F, b, at + 12 * L, LE).fma(pj, a3);
            }
            a0.mul(f).intoArray(out, oo + d0);
            if (blocks > 1) a1.mul(f).intoArray(out, oo + d0 + L);
            if (blocks > 2) a2.mul(f).intoArray(out, oo + d0 + 2 * L);
            if (blocks > 3) a3.mul(f).intoArray(out, oo + d0 + 3 * L);
        }
    }

    /** Whether {@link #weightedRows} takes rows of {@code width} values. */
    public static boolean weightedRowsFit(int width) {
        return width % L == 0;
    }

    /** Σ_k a[ao + k]·b[bo + 4k] for k < n, b fp32 in a little-endian buffer (a cached key row). */
    public static float dot(float[] a, int ao, ByteBuffer b, int bo, int n) {
        FloatVector acc = FloatVector.zero(F);
        int k = 0;
        for (; k <= n - L; k += L) acc = FloatVector.fromByteBuffer(F, b, bo + 4 * k, LE).fma(FloatVector.fromArray(F, a, ao + k), acc);
        float s = acc.reduceLanes(VectorOperators.ADD);
        for (; k < n; k++) s += a[ao + k] * b.getFloat(bo + 4 * k);
        return s;
    }

    /** y[yo + k] += p·b[bo + 4k] for k < n, b fp32 in a little-endian buffer (a cached value row). */
    public static void axpy(float p, ByteBuffer b, int bo, float[] y, int yo, int n) {
        FloatVector pv = FloatVector.broadcast(F, p);
        int k = 0;
        for (; k <= n - L; k += L)
            FloatVector.fromByteBuffer(F, b, bo + 4 * k, LE).fma(pv, FloatVector.fromArray(F, y, yo + k)).intoArray(y, yo + k);
        for (; k < n; k++) y[yo + k] += p * b.getFloat(bo + 4 * k);
    }
}
