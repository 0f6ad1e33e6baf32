package io.llava4j.nn.quant;

import io.llava4j.engine.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.ScalarOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * bitsandbytes' 4-bit block format ({@code quantize_4bit} / {@code dequantize_4bit}, blocksize 64), ported from its
 * PyTorch reference backend: the flattened weight is cut into blocks of 64 values; each block's absolute maximum m is
 * kept (fp32), each value x becomes the code whose value is nearest to x·(1/m) (clamped to [-1, 1]; a tie goes to the
 * smaller code value, as bitsandbytes' midpoint search does), and two codes share a byte: the even-indexed value in
 * the high nibble, the odd one in the low nibble. Dequantized: code value × m in fp32.
 *
 * <p>NF4 codes are indices into {@link Codebooks#NF4}. FP4 codes are sign (bit 3, set for x &lt; 0) and magnitude (the
 * nearest of the 8 magnitudes of {@link Codebooks#FP4}), as bitsandbytes' CUDA kernel forms them. With
 * {@code doubleQuant} the absolute maxima are stored as {@link DynamicBlockwise8Bit} (8-bit codes in blocks of 256
 * around their mean). A last partial block is scaled by its own maximum.
 */
public final class Blockwise4Bit extends QuantizedWeight {
    public static final int BLOCK = 64;
    private static final long CHUNK_BLOCKS = 1 << 14; // 1 Mi values per chunk of work

    private final QuantType type;
    private final Tensor packed;                // uint8 [blocks · 32]: two codes a byte, the last block padded with code(0)
    private final Tensor absmax;                // fp32 [blocks], or null when double-quantized
    private final DynamicBlockwise8Bit qabsmax; // the absolute maxima under double quantization, or null
    private final Tensor pairs;                 // fp32 [256, 2]: byte → (value of its high nibble, of its low nibble)

    private Blockwise4Bit(long[] shape, QuantType type, Tensor packed, Tensor absmax, DynamicBlockwise8Bit qabsmax) {
        super(shape);
        this.type = type;
        this.packed = packed;
        this.absmax = absmax;
        this.qabsmax = qabsmax;
        this.pairs = held(pairTable(Codebooks.of(type)));
    }

    @Override
    public QuantType type() {
        return type;
    }

    public boolean doubleQuant() {
        return qabsmax != null;
    }

    /** Blocks of {@link #BLOCK} values (the last one may be partial). */
    public long blocks() {
        return (numel() + BLOCK - 1) / BLOCK;
    }

    /** The packed codes as bitsandbytes stores them: ceil(n / 2) bytes, uint8. */
    public Tensor packed() {
        return packed.narrow(0, 0, (numel() + 1) / 2);
    }

    /** Each block's absolute maximum, fp32 [blocks] (decoded from 8 bits under double quantization). */
    public Tensor absmax() {
        return qabsmax == null ? absmax : qabsmax.dequantize();
    }

    /** The double-quantized absolute maxima, or null. */
    public DynamicBlockwise8Bit quantizedAbsmax() {
        return qabsmax;
    }

    @Override
    public long bytes() {
        return packed.numel() + (qabsmax == null ? 4 * absmax.numel() : qabsmax.bytes());
    }

    /** Quantizes {@code w} (any floating type, any shape; read in chunks, never copied whole). */
    public static Blockwise4Bit quantize(Tensor w, QuantType type, boolean doubleQuant) {
        if (type.bits != 4) throw new IllegalArgumentException(type + " is not a 4-bit format");
        long[] shape = Tensors.shape(w);
        long n = w.numel(), blocks = (n + BLOCK - 1) / BLOCK;
        Tensor packed = held(torch.empty(new long[]{blocks * BLOCK / 2}, new TensorOptions(ScalarType.Byte), null));
        Tensor absmax = held(torch.empty(new long[]{blocks}, new TensorOptions(ScalarType.Float), null));
        try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            Tensor flat = w.reshape(-1);
            Tensor bounds = type == QuantType.NF4 ? midpoints(Codebooks.NF4) : midpoints(FP4_MAGNITUDES);
            Tensor fp4Codes = type == QuantType.FP4 ? Tensors.longs(FP4_MAGNITUDE_CODES, 8).to(ScalarType.Byte) : null;
            for (long b0 = 0; b0 < blocks; b0 += CHUNK_BLOCKS) {
                try (PointerScope c = new PointerScope()) {
                    long nb = Math.min(CHUNK_BLOCKS, blocks - b0), start = b0 * BLOCK, len = Math.min(nb * BLOCK, n - start);
                    Tensor x = flat.narrow(0, start, len).to(ScalarType.Float);
                    if (len < nb * BLOCK) x = torch.constant_pad_nd(x, new long[]{0, nb * BLOCK - len}, new Scalar(0.0));
                    x = x.view(nb, BLOCK);
                    Tensor m = x.abs().amax(new long[]{1}, false); // [nb]
                    Tensor scaled = clamp1(x.mul(m.clamp_min(new Scalar(1e-38)).reciprocal().unsqueeze(1))).view(-1);
                    Tensor codes; // uint8 [nb · 64]
                    if (type == QuantType.NF4) {
                        codes = torch.bucketize(scaled, bounds).to(ScalarType.Byte);
                    } else {
                        Tensor mag = fp4Codes.index_select(0, torch.bucketize(scaled.abs(), bounds));
                        codes = mag.bitwise_or(scaled.lt(new Scalar(0.0)).to(ScalarType.Byte).__lshift__(new Scalar(3)));
                    }
                    Tensor two = codes.view(-1, 2);
                    packed.narrow(0, b0 * BLOCK / 2, nb * BLOCK / 2).copy_(two.select(1, 0).__lshift__(new Scalar(4)).bitwise_or(two.select(1, 1)));
                    absmax.narrow(0, b0, nb).copy_(m);
                }
            }
        }
        if (!doubleQuant) return new Blockwise4Bit(shape, type, packed, absmax, null);
        DynamicBlockwise8Bit q = DynamicBlockwise8Bit.quantize(absmax);
        absmax.releaseReference(); // only its 8-bit form stays
        return new Blockwise4Bit(shape, type, packed, null, q);
    }

    /** FP4's 8 magnitudes in increasing order, and the 3-bit code of each. */
    private static final float[] FP4_MAGNITUDES = {0f, 0.0625f / 12, 2f / 12, 3f / 12, 4f / 12, 6f / 12, 8f / 12, 1f};
    private static final long[] FP4_MAGNITUDE_CODES = {0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011};

    /** Midpoints between consecutive sorted code values, fp32: bucketize against them finds the nearest code. */
    static Tensor midpoints(float[] sortedCodes) {
        Tensor c = Tensors.floats(sortedCodes, sortedCodes.length);
        long k = sortedCodes.length - 1;
        return c.narrow(0, 0, k).add(c.narrow(0, 1, k)).div(new Scalar(2.0));
    }

    static Tensor clamp1(Tensor t) {
        return t.clamp(new ScalarOptional(new Scalar(-1.0)), new ScalarOptional(new Scalar(1.0)));
    }

    /** [256, 2] fp32: for each byte, the code values of its high and its low nibble. */
    private static Tensor pairTable(float[] code) {
        float[] v = new float[512];
        for (int b = 0; b < 256; b++) {
            v[2 * b] = code[b >> 4];
            v[2 * b + 1] = code[b & 15];
        }
        return Tensors.floats(v, 256, 2);
    }

    @Override
    protected void fill(Tensor flat) {
        long n = numel(), blocks = blocks();
        Tensor m = absmax();
        for (long b0 = 0; b0 < blocks; b0 += CHUNK_BLOCKS) {
            try (PointerScope c = new PointerScope()) {
                long nb = Math.min(CHUNK_BLOCKS, blocks - b0), start = b0 * BLOCK, len = Math.min(nb * BLOCK, n - start);
                Tensor bytes = packed.narrow(0, b0 * BLOCK / 2, nb * BLOCK / 2).to(ScalarType.Int);
                Tensor v = pairs.index_select(0, bytes).view(nb, BLOCK).mul(m.narrow(0, b0, nb).unsqueeze(1)); // [nb, 64] fp32
                flat.narrow(0, start, len).copy_(v.view(-1).narrow(0, 0, len));
            }
        }
    }
}
