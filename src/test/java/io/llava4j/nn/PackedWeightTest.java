package io.llava4j.nn;

import io.llava4j.engine.Engine;
import io.llava4j.engine.Tensors;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** A linear layer packed for inference gives the plain layer's values on both of its paths (few rows, many rows). */
class PackedWeightTest {
    @Test
    void packedLinearEqualsThePlainOneForEveryRowCount() {
        Engine.init();
        Assumptions.assumeTrue(PackedWeight.available(), "libtorch without oneDNN");
        torch.manual_seed(5);
        Linear plain = new Linear(48, 64, true), packed = new Linear(48, 64, true);
        plain.resetParameters();
        try (NoGradGuard g = new NoGradGuard()) {
            packed.weight.copy_(plain.weight);
            packed.bias.copy_(plain.bias);
            assertEquals(64L * 48 * 4, packed.packForInference(torch.ScalarType.Float));
            assertTrue(packed.isPacked());
            assertArrayEquals(new long[]{64, 48}, Tensors.shape(packed.weight), "the parameter keeps its shape");
            assertEquals(0, packed.weight.stride(0), "and holds no memory of its own");
            for (long[] shape : new long[][]{{48}, {1, 1, 48}, {3, 48}, {2, 8, 48}, {1, 17, 48}, {3, 40, 48}}) {
                Tensor x = torch.randn(shape);
                Tensor ref = plain.forward(x), y = packed.forward(x);
                assertArrayEquals(Tensors.shape(ref), Tensors.shape(y), "shape for input " + java.util.Arrays.toString(shape));
                assertEquals(torch.ScalarType.Float, y.scalar_type().intern());
                double err = Tensors.relativeError(y, ref);
                assertTrue(err < 1e-6, "input " + java.util.Arrays.toString(shape) + ": relative error " + err);
            }
        }
    }

    @Test
    void bf16PackedLinearIsTheBf16GemmOfTheSameWeights() {
        Engine.init();
        Assumptions.assumeTrue(PackedWeight.available(), "libtorch without oneDNN");
        Assumptions.assumeTrue(Precision.BF16.gemm() == torch.ScalarType.BFloat16, "no native bf16 GEMMs on this CPU");
        torch.manual_seed(6);
        Tensor w = torch.randn(64, 32).to(torch.ScalarType.BFloat16), b = torch.randn(64);
        PackedWeight p = PackedWeight.of(w, torch.ScalarType.BFloat16);
        for (long rows : new long[]{1, 5, 30}) {
            Tensor x = torch.randn(rows, 32);
            Tensor ref = torch.linear(x.to(torch.ScalarType.BFloat16), w, new TensorOptional(b.to(torch.ScalarType.BFloat16))).to(torch.ScalarType.Float);
            Tensor y = p.linear(x, b);
            assertEquals(torch.ScalarType.Float, y.scalar_type().intern(), "fp32 in, fp32 out (as autocast returns)");
            double err = Tensors.relativeError(y, ref);
            assertTrue(err < 1e-2, rows + " rows: relative error " + err);
        }
    }

    @Test
    void matricesTheReorderWouldCorruptAreNotPackedByOneDnn() {
        Engine.init();
        Assumptions.assumeTrue(PackedWeight.available(), "libtorch without oneDNN");
        for (long out : new long[]{48, 80, 1000}) {
            Linear l = new Linear(32, out, false);
            l.resetParameters();
            Tensor w = l.weight.detach().clone(), x = torch.randn(2, 32);
            assertNull(PackedWeight.of(w, torch.ScalarType.Float), out + " rows");
            l.packForInference(torch.ScalarType.Float); // plain, or row-major where the JVM has the vector API
            assertTrue(Tensors.relativeError(l.forward(x), torch.linear(x, w)) < 1e-6, out + " rows");
        }
    }

    @Test
    void aLayerWithALoraAdapterIsNotPacked() {
        Engine.init();
        Linear l = new Linear(8, 8, false);
        l.attachLora(2, 4, 0, 0);
        assertEquals(0, l.packForInference(torch.ScalarType.Float));
        assertFalse(l.isPacked());
        assertEquals(64, l.weight.numel());
    }
}
