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
}
