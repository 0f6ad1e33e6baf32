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
 * bitsandbytes' double quantization of 4-bit blocks' absolute maxima ({@code quantize_4bit(compress_statistics=True)}):
 * their mean is subtracted and kept as an fp32 offset; the differences are quantized with {@code quantize_blockwise}
 * in blocks of 256 (each block's own absolute maximum in fp32, each value the nearest code of the signed 8-bit
 * {@link Codebooks#dynamic dynamic map}). Dequantized: code value × block maximum + offset, fp32.
 */
public final class DynamicBlockwise8Bit {
    public static final int BLOCK = 256;
    private static final float[] CODE = Codebooks.dynamic();

    private final long n;
    private final Tensor codes;  // uint8 [n]
    private final Tensor absmax; // fp32 [ceil(n / 256)]
    private final float offset;

    private DynamicBlockwise8Bit(long n, Tensor codes, Tensor absmax, float offset) {
        this.n = n;
        this.codes = codes;
        this.absmax = absmax;
        this.offset = offset;
    }

    public static DynamicBlockwise8Bit quantize(Tensor values) {
        long n = values.numel(), blocks = (n + BLOCK - 1) / BLOCK;
        Tensor codes = QuantizedWeight.held(torch.empty(new long[]{n}, new TensorOptions(ScalarType.Byte), null));
        Tensor absmax = QuantizedWeight.held(torch.empty(new long[]{blocks}, new TensorOptions(ScalarType.Float), null));
        float offset;
        try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            Tensor v = QuantizedWeight.flatFloat(values);
            Tensor mean = v.mean();
            offset = mean.item_float();
            Tensor x = v.sub(mean);
            if (n < blocks * BLOCK) x = torch.constant_pad_nd(x, new long[]{0, blocks * BLOCK - n}, new Scalar(0.0));
            x = x.view(blocks, BLOCK);
            Tensor m = x.abs().amax(new long[]{1}, false);
            Tensor scaled = Blockwise4Bit.clamp1(x.mul(m.clamp_min(new Scalar(1e-38)).reciprocal().unsqueeze(1))).view(-1);
            codes.copy_(torch.bucketize(scaled, Blockwise4Bit.midpoints(CODE)).narrow(0, 0, n).to(ScalarType.Byte));
            absmax.copy_(m);
        }
        return new DynamicBlockwise8Bit(n, codes, absmax, offset);
    }

    /** The values, fp32 [n]. */
    public Tensor dequantize() {
        Tensor out = torch.empty(new long[]{n}, new TensorOptions(ScalarType.Float), null);
        try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            long blocks = absmax.numel();
            Tensor v = Tensors.floats(CODE, CODE.length).index_select(0, codes.to(ScalarType.Int));
            if (n < blocks * BLOCK) v = torch.constant_pad_nd(v, new long[]{0, blocks * BLOCK - n}, new Scalar(0.0));
            v = v.view(blocks, BLOCK).mul(absmax.unsqueeze(1)).view(-1).narrow(0, 0, n);
            out.copy_(v.add(new Scalar(offset)));
        }
        return out;
    }

    public Tensor codes() {
        return codes;
    }

    /** Each block of 256's absolute maximum, fp32. */
    public Tensor blockAbsmax() {
        return absmax;
    }

    public float offset() {
        return offset;
    }

    public long bytes() {
        return codes.numel() + 4 * absmax.numel() + 4;
    }
}
