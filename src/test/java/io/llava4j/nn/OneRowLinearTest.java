package io.llava4j.nn;

import io.llava4j.engine.Engine;
import io.llava4j.engine.Tensors;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** The matrix-vector path for a single input row gives torch.linear's values, shape and gradients. */
class OneRowLinearTest {
    @Test
    void oneRowEqualsLinear() {
        Engine.init();
        torch.manual_seed(3);
        Tensor w = torch.randn(40, 24).requires_grad_(true), b = torch.randn(40);
        for (long[] shape : new long[][]{{24}, {1, 24}, {1, 1, 24}}) {
            Tensor x = torch.randn(shape).requires_grad_(true);
            Tensor y = Autocast.linear(x, w, b);
            Tensor ref = torch.linear(x, w, new TensorOptional(b));
            assertArrayEquals(Tensors.shape(ref), Tensors.shape(y));
            assertTrue(Tensors.relativeError(y, ref) < 1e-6);
            y.sum().backward();
            Tensor gx = x.grad().clone(), gw = w.grad().clone();
            x.grad().zero_();
            w.grad().zero_();
            ref.sum().backward();
            assertTrue(Tensors.relativeError(gx, x.grad()) < 1e-6);
            assertTrue(Tensors.relativeError(gw, w.grad()) < 1e-6);
            w.grad().zero_();
        }
    }

    @Test
    void oneRowAgainstBf16WeightsIsCloseToFp32() {
        Engine.init();
        torch.manual_seed(4);
        Tensor w = torch.randn(64, 48), b = torch.randn(64), x = torch.randn(1, 1, 48);
        Tensor wb = w.to(torch.ScalarType.BFloat16);
        Tensor ref = torch.linear(x, wb.to(torch.ScalarType.Float), new TensorOptional(b));
        try (Autocast ac = Autocast.enable(Precision.BF16)) {
            Tensor y = Autocast.linear(x, wb, b);
            assertEquals(torch.ScalarType.Float, y.scalar_type().intern());
            assertArrayEquals(Tensors.shape(ref), Tensors.shape(y));
            double err = Tensors.relativeError(y, ref);
            assertTrue(err < 1e-2, "rel err " + err);
        }
    }
}
