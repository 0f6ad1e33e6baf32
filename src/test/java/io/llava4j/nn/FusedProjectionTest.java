package io.llava4j.nn;

import io.llava4j.engine.Engine;
import io.llava4j.engine.Tensors;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Layers packed as one matrix give each layer's own output, and no longer compute alone. */
class FusedProjectionTest {
    @Test
    void eachPartOfTheFusedProductIsThatLayersOutput() {
        Engine.init();
        Assumptions.assumeTrue(PackedWeight.available(), "libtorch without oneDNN");
        torch.manual_seed(11);
        long[] outs = {128, 64, 64}; // q, k, v of a grouped-query layer
        Linear[] parts = new Linear[3], plain = new Linear[3];
        try (NoGradGuard g = new NoGradGuard()) {
            for (int i = 0; i < 3; i++) {
                parts[i] = new Linear(48, outs[i], true);
                parts[i].resetParameters();
                plain[i] = new Linear(48, outs[i], true);
                plain[i].weight.copy_(parts[i].weight);
                plain[i].bias.copy_(parts[i].bias);
            }
            FusedProjection f = FusedProjection.pack(torch.ScalarType.Float, parts);
            assertNotNull(f);
            assertEquals(256L * 48 * 4, f.bytes());
            for (long[] shape : new long[][]{{1, 1, 48}, {2, 7, 48}}) {
                Tensor x = torch.randn(shape);
                Tensor[] y = f.forward(x);
                for (int i = 0; i < 3; i++) {
                    Tensor ref = plain[i].forward(x);
                    assertArrayEquals(Tensors.shape(ref), Tensors.shape(y[i]));
                    assertTrue(Tensors.relativeError(y[i], ref) < 1e-6, "part " + i + " of input " + java.util.Arrays.toString(shape));
                }
            }
            for (Linear p : parts) {
                assertTrue(p.isPacked());
                assertEquals(0, p.weight.stride(0), "the part's own weight is released");
                assertThrows(IllegalStateException.class, () -> p.forward(torch.randn(1, 48)));
            }
        }
    }

    @Test
    void partsThatCannotShareAMatrixAreLeftAlone() {
        Engine.init();
        Assumptions.assumeTrue(PackedWeight.available(), "libtorch without oneDNN");
        Linear a = new Linear(32, 64, false), b = new Linear(32, 64, false), c = new Linear(16, 64, false), d = new Linear(32, 64, true);
        for (Linear l : new Linear[]{a, b, c, d}) l.resetParameters();
        b.attachLora(2, 4, 0, 0);
        assertNull(FusedProjection.pack(torch.ScalarType.Float, a, b), "an adapter");
        assertNull(FusedProjection.pack(torch.ScalarType.Float, a, c), "another input width");
        assertNull(FusedProjection.pack(torch.ScalarType.Float, a, d), "bias on one part only");
        assertFalse(a.isPacked());
        Tensor x = torch.randn(2, 32);
        assertTrue(Tensors.relativeError(a.forward(x), torch.linear(x, a.weight)) < 1e-6, "still computes on its own");
    }
}
