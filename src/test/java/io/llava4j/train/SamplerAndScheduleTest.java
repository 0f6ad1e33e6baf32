package io.llava4j.train;

import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
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

    @Test
    void modalityGroupingUsesBatchTimesAccumulationAndEvenChunks() {
        int n = 40, batch = 2, accumulation = 3, mega = batch * accumulation;
        int[] lengths = new int[n];
        for (int i = 0; i < n; i++) lengths[i] = (i % 4 == 0 ? -1 : 1) * (3 + (i * 7) % 23);
        int[] order = Sampler.order(n, 5, 0, batch, accumulation, lengths, true);
        assertEquals(n, Arrays.stream(order).distinct().count());
        int images = (int) Arrays.stream(lengths).filter(l -> l > 0).count(); // 30: 5 megabatches of 6, the last one full
        int text = n - images; // 10: one full megabatch of 6, then 4
        // the mixed tail (last image megabatch + last text megabatch = 6 + 4) is 10 >= 6: its first 6 go in front
        Set<Boolean> head = new HashSet<>();
        for (int k = 0; k < mega; k++) head.add(lengths[order[k]] > 0);
        assertEquals(Set.of(true), head, "the tail's first megabatch (images) leads");
        int full = images / mega - 1 + (text + mega - 1) / mega - 1;
        for (int m = 1; m <= full; m++) {
            Set<Boolean> kinds = new HashSet<>();
            for (int k = m * mega; k < (m + 1) * mega; k++) kinds.add(lengths[order[k]] > 0);
            assertEquals(1, kinds.size(), "megabatch " + m + " of batch x accumulation mixes images and text");
        }
        // split_to_even_chunks: a sorted megabatch [a>=b>=c>=d>=e>=f] into 3 chunks goes a|b|c, then d to the chunk
        // with the least total (c's), e to b's, f to a's
        List<Integer> sorted = List.of(0, 1, 2, 3, 4, 5);
        int[] len = {60, 50, 40, 30, 20, 10};
        assertEquals(List.of(List.of(0, 5), List.of(1, 4), List.of(2, 3)), Sampler.evenChunks(sorted, len, 3));
        assertEquals(List.of(List.of(0, 3), List.of(1, 4), List.of(2)), Sampler.evenChunks(List.of(0, 1, 2, 3, 4), len, 3));
    }

    @Test
    void optimizerStepsFollowHfTrainerWhenAccumulationDoesNotDivideAnEpoch() {
        assertEquals(2, AccumulationSteps.stepsPerEpoch(5, 2), "HF floors: 5 micro-batches, accumulation 2");
        assertEquals(1, AccumulationSteps.stepsPerEpoch(1, 4));
        AccumulationSteps s = new AccumulationSteps(5, 2);
        assertEquals("[[0, 0], [0, 1]]", str(s.next()));
        assertEquals("[[0, 2], [0, 3]]", str(s.next()));
        assertEquals("[[0, 4], [1, 0]]", str(s.next()), "the leftover micro-batch joins the next epoch's first step");
        assertEquals("[[1, 1], [1, 2]]", str(s.next()));
        // an epoch with no more micro-batches than the accumulation steps ends a step at its end
        AccumulationSteps short3 = new AccumulationSteps(3, 4);
        assertEquals("[[0, 0], [0, 1], [0, 2]]", str(short3.next()));
        assertEquals("[[1, 0]]", str(short3.next()), "4 micro-batches seen in all: HF steps here");
        AccumulationSteps resumed = new AccumulationSteps(5, 2);
        resumed.skip(2);
        assertEquals("[[0, 4], [1, 0]]", str(resumed.next()));
    }

    private static String str(java.util.List<int[]> l) {
        return l.stream().map(Arrays::toString).toList().toString();
    }
}
