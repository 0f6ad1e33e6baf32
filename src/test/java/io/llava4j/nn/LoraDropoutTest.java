package io.llava4j.nn;

import io.llava4j.engine.Engine;
import io.llava4j.engine.Tensors;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** torch.nn.Dropout's definition, with masks decided by the seed and the branch alone. */
class LoraDropoutTest {
    @Test
    void dropsAFractionPScalesTheRestAndRepeatsPerSeedAndBranch() {
        Engine.init();
        Tensor x = torch.ones(64, 512);
        assertSame(x, LoraDropout.apply(x, 0.25, 3), "no seed: no dropout (inference)");
        try (LoraDropout d = LoraDropout.seeded(LoraDropout.microBatchSeed(42, 0, 1))) {
            Tensor a = LoraDropout.apply(x, 0.25, 3), again = LoraDropout.apply(x, 0.25, 3), other = LoraDropout.apply(x, 0.25, 4);
            float[] v = Tensors.toFloats(a);
            int zeros = 0;
            for (float f : v) {
                if (f == 0) zeros++;
                else assertEquals(1 / 0.75, f, 1e-6, "kept values scaled by 1 / (1 − p)");
            }
            assertEquals(0.25, zeros / (double) v.length, 0.01);
            assertArrayEquals(v, Tensors.toFloats(again), "the same branch in the same micro-batch: the same mask (recompute)");
            assertFalse(java.util.Arrays.equals(v, Tensors.toFloats(other)), "another branch: another mask");
            assertSame(x, LoraDropout.apply(x, 0, 3));
        }
        try (LoraDropout d = LoraDropout.seeded(LoraDropout.microBatchSeed(42, 0, 2))) {
            Tensor b = LoraDropout.apply(x, 0.25, 3);
            try (LoraDropout e = LoraDropout.seeded(LoraDropout.microBatchSeed(42, 0, 1))) {
                assertFalse(java.util.Arrays.equals(Tensors.toFloats(b), Tensors.toFloats(LoraDropout.apply(x, 0.25, 3))), "another micro-batch");
            }
        }
    }
}
