package io.llava4j.dist;

import io.llava4j.train.DataParallel;
import io.llava4j.train.Sampler;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Each rank's share of an epoch: disjoint shards that together are the epoch (one process's global micro-batches
 * split in rank order), seeded per epoch, and LLaVA's modality grouping across ranks (megabatches of
 * batch × world × accumulation, so every rank's batch in a global micro-batch has one modality); torchrun's variables.
 */
class DistributedSamplingTest {

    static DataParallel rank(int r, int w) {
        return new DataParallel() {
            @Override public int rank() { return r; }
            @Override public int worldSize() { return w; }
            @Override public double lossScale(long tokens, int accumulation) { throw new UnsupportedOperationException(); }
            @Override public void syncGradients(List<String> trainable, Map<String, Tensor> params) {}
            @Override public double sum(double local) { return local; }
        };
    }

    @Test
    void shardsAreDisjointAndCoverEachEpochInOneProcesssOrder() {
        int n = 11, batch = 2, world = 3, global = batch * world;
        for (int epoch = 0; epoch < 3; epoch++) {
            int[] order = Sampler.order(n, 9, epoch, batch, world, null, false);
            List<Integer> seen = new ArrayList<>();
            for (int mb = 0; mb < (n + global - 1) / global; mb++)
                for (int r = 0; r < world; r++) {
                    int[] s = rank(r, world).shard(mb, batch, n);
                    assertTrue(s[1] - s[0] <= batch);
                    for (int i = s[0]; i < s[1]; i++) seen.add(order[i]);
                }
            assertEquals(n, seen.size());
            assertEquals(n, new HashSet<>(seen).size(), "each sample once in epoch " + epoch);
            // the ranks' shards of global micro-batch mb, in rank order, are one process's micro-batch of batch × world
            List<Integer> oneProcess = new ArrayList<>();
            for (int i = 0; i < n; i++) oneProcess.add(order[i]);
            assertEquals(oneProcess, seen);
        }
        assertArrayEquals(Sampler.order(n, 9, 1, batch, world, null, false), Sampler.order(n, 9, 1, batch, world, null, false), "seeded");
        assertFalse(java.util.Arrays.equals(Sampler.order(n, 9, 1, batch, world, null, false), Sampler.order(n, 9, 2, batch, world, null, false)));
        // 11 samples: rank 2 holds one of the last global micro-batch; with 9 it holds none (an empty range)
        assertArrayEquals(new int[]{10, 11}, rank(2, world).shard(1, batch, n));
        int[] none = rank(2, world).shard(1, batch, 9);
        assertEquals(none[0], none[1]);
    }

    @Test
    void modalityGroupingAcrossRanksGivesEachGlobalMicroBatchOneModality() {
        int n = 40, batch = 2, world = 2, accumulation = 2;
        int[] lengths = new int[n];
        for (int i = 0; i < n; i++) lengths[i] = (i % 3 == 0 ? -1 : 1) * (5 + (i * 7) % 13); // LLaVA: text-only lengths negative
        int[] order = Sampler.order(n, 4, 0, batch, world * accumulation, lengths, true);
        int mega = batch * world * accumulation;
        Set<Integer> all = new HashSet<>();
        for (int i : order) all.add(i);
        assertEquals(n, all.size());
        int mixed = 0, full = 0;
        for (int mb = 0; mb < n / (batch * world); mb++) {
            Set<Boolean> modality = new HashSet<>();
            for (int r = 0; r < world; r++) {
                int[] s = rank(r, world).shard(mb, batch, n);
                for (int i = s[0]; i < s[1]; i++) modality.add(lengths[order[i]] > 0);
            }
            full++;
            if (modality.size() > 1) mixed++;
        }
        // only the joined tail of the two modalities' partial megabatches may mix (LLaVA's "additional_batch")
        assertTrue(mixed <= mega / (batch * world), mixed + " of " + full + " global micro-batches mix modalities");
    }

    @Test
    void torchrunVariables() {
        DistEnv e = DistEnv.of(Map.of("RANK", "3", "WORLD_SIZE", "4", "LOCAL_RANK", "1", "MASTER_ADDR", "10.1.2.3", "MASTER_PORT", "29600"));
        assertEquals(new DistEnv(3, 4, 1, 4, "10.1.2.3", 29600), e);
        assertNull(DistEnv.of(Map.of()), "no WORLD_SIZE: one process");
        assertEquals(29500, DistEnv.of(Map.of("RANK", "0", "WORLD_SIZE", "1")).masterPort());
        assertThrows(IllegalArgumentException.class, () -> DistEnv.of(Map.of("WORLD_SIZE", "2")));
        assertThrows(IllegalArgumentException.class, () -> DistEnv.of(Map.of("RANK", "2", "WORLD_SIZE", "2")));
        Map<String, String> env = Launcher.rankEnv(new Launcher.Spec(2, 2, 1, "10.0.0.1", 29501), 1);
        assertEquals("3", env.get("RANK"));
        assertEquals("4", env.get("WORLD_SIZE"));
        assertEquals("1", env.get("LOCAL_RANK"));
        assertEquals("2", env.get("LOCAL_WORLD_SIZE"));
        assertEquals("1", env.get("GROUP_RANK"));
        assertEquals("10.0.0.1", env.get("MASTER_ADDR"));
        assertEquals("29501", env.get("MASTER_PORT"));
    }
}
