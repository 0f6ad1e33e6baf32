package io.llava4j.nn.quant;

import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.util.ArrayList;
import java.util.List;

/**
 * The code books of bitsandbytes' formats (bitsandbytes/functional.py: {@code get_4bit_type},
 * {@code create_dynamic_map}): what each code means as a fraction of its block's absolute maximum.
 */
public final class Codebooks {
    private Codebooks() {}

    /**
     * NF4, index = code: 16 quantiles of N(0, 1) normalised to [-1, 1] ({@code create_normal_map(offset=0.9677083,
     * use_extra_value=True)}: 8 negative values, zero, 7 positive ones up to 1), in the fp32 values bitsandbytes lists.
     */
    public static final float[] NF4 = {
            -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
            -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
            0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
            0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

    /**
     * FP4, index = code: bit 3 is the sign, bits 2..0 a float with 2 exponent bits and 1 mantissa bit (bias 2) whose
     * values 0, 0.0625, 8, 12, 4, 6, 2, 3 are divided by 12, the largest; e.g. 0b0011 = 1, 0b1010 = -2/3.
     */
    public static final float[] FP4 = fp4();

    private static float[] fp4() {
        float[] raw = {0f, 0.0625f, 8f, 12f, 4f, 6f, 2f, 3f, -0f, -0.0625f, -8f, -12f, -4f, -6f, -2f, -3f};
        float[] out = new float[16];
        for (int i = 0; i < 16; i++) out[i] = raw[i] / 12f; // data.div_(data.abs().max()) in fp32
        return out;
    }

    /** The 4-bit code book of a type. */
    public static float[] of(QuantType t) {
        return switch (t) {
            case NF4 -> NF4;
            case FP4 -> FP4;
            case INT8, INT4 -> throw new IllegalArgumentException(t.flag() + " has no code book");
        };
    }

    /**
     * bitsandbytes' signed 8-bit dynamic map ({@code create_dynamic_map(signed=True, max_exponent_bits=7,
     * total_bits=8)}), 256 sorted fp32 values: for i = 0..6, the midpoints of {@code linspace(0.1, 1, 2^i + 1)} times
     * ±10^(i-6), then 0 and 1. It codes the absolute maxima of 4-bit blocks under double quantization. Computed with
     * libtorch's own linspace and fp32 arithmetic, as bitsandbytes computes it.
     */
    public static float[] dynamic() {
        List<Float> data = new ArrayList<>();
        for (int i = 0; i < 7; i++) {
            int items = (1 << i) + 1;
            Tensor b = torch.linspace(new Scalar(0.1), new Scalar(1.0), items, new TensorOptions(ScalarType.Float));
            Tensor means = b.narrow(0, 0, items - 1).add(b.narrow(0, 1, items - 1)).div(new Scalar(2.0));
            double scale = Math.pow(10, -6 + i);
            for (float v : floats(means.mul(new Scalar(scale)))) data.add(v);
            for (float v : floats(means.mul(new Scalar(-scale)))) data.add(v);
        }
        data.add(0f);
        data.add(1f);
        if (data.size() != 256) throw new IllegalStateException("dynamic map has " + data.size() + " values");
        float[] out = new float[256];
        data.sort(Float::compare);
        for (int i = 0; i < 256; i++) out[i] = data.get(i);
        return out;
    }

    private static float[] floats(Tensor t) {
        float[] out = new float[(int) t.numel()];
        t.contiguous().data_ptr_float().get(out);
        return out;
    }
}
