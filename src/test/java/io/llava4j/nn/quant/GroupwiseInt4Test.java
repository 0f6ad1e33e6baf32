package io.llava4j.nn.quant;

import io.llava4j.engine.Engine;
import io.llava4j.engine.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** The int4 groups of generate's {@code --load_4bit}: quantization, read-back, and the kernel's product. */
class GroupwiseInt4Test {
    /** Each value read back lies within half a step of its group's grid; values on a grid come back exactly. */
    @Test
    void roundTripWithinHalfAStepAndExactOnTheGrid() {
        Engine.init();
        try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            torch.manual_seed(3);
            for (long in : new long[]{128, 100}) { // whole groups; a padded last group
                Tensor w = torch.randn(96, in);
                GroupwiseInt4 q = GroupwiseInt4.quantize(w);
                assertEquals(QuantType.INT4, q.type());
                long groups = (in + 63) / 64;
                assertEquals(96 * groups * 64 / 2 + 96 * groups * 2 * 2, q.bytes(), "half a byte a value, a bf16 scale and zero a group");
                Tensor d = q.dequantize(ScalarType.Float);
                Tensor pad = torch.constant_pad_nd(w, new long[]{0, groups * 64 - in}, new Scalar(0.0)).view(96, groups, 64);
                Tensor step = pad.amax(new long[]{-1}, true).sub(pad.amin(new long[]{-1}, true)).div(new Scalar(15.0)); // [96, groups, 1]
                Tensor err = torch.constant_pad_nd(d.sub(w), new long[]{0, groups * 64 - in}, new Scalar(0.0)).view(96, groups, 64).abs();
                // half a step, plus the bf16 rounding of scale and zero (relative 2^-8 of the group's range)
                assertTrue(err.le(step.mul(new Scalar(0.5 + 9 * Math.pow(2, -8)))).all().item_bool(), in + " columns: " + err.max().item_double());
            }
            // a matrix on the grid, every group spanning codes 0..15 with a bf16 step and zero: read back exactly
            float[] v = new float[32 * 128];
            java.util.Random r = new java.util.Random(9);
            for (int i = 0; i < v.length; i++) {
                int code = i % 64 == 0 ? 0 : i % 64 == 1 ? 15 : r.nextInt(16);
                v[i] = (code - 8) * 0.125f + 0.5f + (i / 64) * 0.25f; // step 1/8; zero 0.5 plus a quarter a group
            }
            Tensor grid = Tensors.floats(v, 32, 128);
            assertEquals(0.0, GroupwiseInt4.quantize(grid).dequantize(ScalarType.Float).sub(grid).abs().max().item_double());
        }
    }

    /** The kernel multiplies by exactly the values read back (bf16 activations, fp32 sums, bf16 result), for one row and many. */
    @Test
    void kernelProductIsTheProductWithTheValuesReadBack() {
        Engine.init();
        try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            torch.manual_seed(4);
            Tensor w = torch.randn(128, 192);
            GroupwiseInt4 q = GroupwiseInt4.quantize(w);
            QuantizedLinear lin = new QuantizedLinear(q, "t", new DequantBuffer());
            Tensor deq = q.dequantize(ScalarType.Float);
            for (long rows : new long[]{1, 20}) {
                Tensor x = torch.randn(rows, 192), b = torch.randn(128);
                Tensor y = lin.forward(x, b);
                Tensor want = x.to(ScalarType.BFloat16).to(ScalarType.Float).matmul(deq.t()).add(b);
                double maxDiff = y.sub(want).abs().max().item_double(), maxVal = want.abs().max().item_double();
                assertTrue(maxDiff <= maxVal * Math.pow(2, -7), rows + " rows: " + maxDiff + " of " + maxVal);
                assertTrue(Tensors.relativeError(y, x.matmul(w.t()).add(b)) < 0.2, "near the unquantized product");
            }
        }
    }

    @Test
    void aGraphThatNeedsTheInputGradientIsRefused() {
        Engine.init();
        GroupwiseInt4 q = GroupwiseInt4.quantize(torch.randn(64, 64));
        QuantizedLinear lin = new QuantizedLinear(q, "t", new DequantBuffer());
        Tensor x = torch.randn(2, 64).requires_grad_(true);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> lin.forward(x, null));
        assertTrue(e.getMessage().contains("--load_4bit"), e.getMessage());
    }
}
