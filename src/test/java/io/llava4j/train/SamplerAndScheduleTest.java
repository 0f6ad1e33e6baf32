package io.llava4j.train;

import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/** Data order and learning-rate schedules. */
class SamplerAndScheduleTest {

    @Test
    void shuffleIsAPermutationDeterministicInSeedAndEpoch() {
        int[] a = Sampler.order(50, 3, 0, 4, null, false), b = Sampler.order(50, 3, 0, 4, null, false);
        assertArrayEquals(a, b);
        assertFalse(Arrays.equals(a, Sampler.order(50, 3, 1, 4, null, false)), "each epoch has its own order");
        assertEquals(50, Arrays.stream(a).distinct().count());
    }

    @Test
    void modalityGroupingKeepsMegabatchesSingleModality() {
        int n = 37, batch = 4;
        int[] lengths = new int[n];
        for (int i = 0; i < n; i++) lengths[i] = (i % 3 == 0 ? -1 : 1) * (5 + i);
        int[] order = Sampler.order(n, 11, 2, batch, lengths, true);
        assertEquals(n, Arrays.stream(order).distinct().count());
        int images = (int) Arrays.stream(lengths).filter(l -> l > 0).count();
        // as LLaVA: each modality's last megabatch (full or not) goes to the mixed tail, the others come first
        int full = (images + batch - 1) / batch - 1 + (n - images + batch - 1) / batch - 1;
        for (int mb = 0; mb < full; mb++) {
            Set<Boolean> kinds = new HashSet<>();
            for (int k = mb * batch; k < (mb + 1) * batch; k++) kinds.add(lengths[order[k]] > 0);
            assertEquals(1, kinds.size(), "megabatch " + mb + " mixes images and text");
            for (int k = mb * batch + 1; k < (mb + 1) * batch; k++)
                assertTrue(Math.abs(lengths[order[k - 1]]) >= Math.abs(lengths[order[k]]), "longest first inside a megabatch");
        }
        assertArrayEquals(order, Sampler.order(n, 11, 2, batch, lengths, true));
    }

    @Test
    void schedulesFollowTransformers() {
        LrSchedule cos = new LrSchedule("cosine", 3, 103);
        assertEquals(0.0, cos.factor(0));
        assertEquals(2.0 / 3, cos.factor(2), 1e-12);
        assertEquals(1.0, cos.factor(3), 1e-12);
        assertEquals(0.5, cos.factor(53), 1e-12);
        assertEquals(0.0, cos.factor(103), 1e-12);
        LrSchedule lin = new LrSchedule("linear", 0, 10);
        assertEquals(1.0, lin.factor(0));
        assertEquals(0.3, lin.factor(7), 1e-12);
        assertEquals(1.0, new LrSchedule("constant", 5, 10).factor(0));
        assertEquals(0.2, new LrSchedule("constant_with_warmup", 5, 10).factor(1), 1e-12);
        assertEquals(1.0, new LrSchedule("constant_with_warmup", 5, 10).factor(7));
        assertEquals(31, LrSchedule.warmupSteps(0, 0.03, 1017)); // ceil(0.03 * 1017) as HF
        assertEquals(7, LrSchedule.warmupSteps(7, 0.03, 1017)); // warmup_steps wins
        assertThrows(IllegalArgumentException.class, () -> new LrSchedule("polynomial", 0, 1));
    }
}
