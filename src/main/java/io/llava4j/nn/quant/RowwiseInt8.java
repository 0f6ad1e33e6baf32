package io.llava4j.nn.quant;

import io.llava4j.engine.Tensors;
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
}
