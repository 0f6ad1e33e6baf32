package io.llava4j.train;

import java.util.ArrayDeque;
import java.util.Deque;
import java.util.function.Supplier;

/**
 * The dataset indices of each micro-batch of a run on this rank, in training order: {@link AccumulationSteps} says
 * which global micro-batch of which epoch comes next, {@link Sampler#order} each epoch's sample order (computed once
 * per epoch), {@link DataParallel#shard} this rank's part of it. Ends after the micro-batches of {@code steps}
 * optimizer steps (null from then on).
 */
final class MicroBatchOrder implements Supplier<MicroBatchOrder.Micro> {
    /**
     * Global micro-batch {@code index} of {@code epoch}: this rank's dataset indices (may be empty), and whether it is the
     * last micro-batch of its optimizer step.
     */
    record Micro(int epoch, int index, int[] indices, boolean endsStep) {}

    private final AccumulationSteps steps;
    private final int size, batch, accumulation;
    private final long seed;
    private final int[] modality;
    private final boolean groupByModality;
    private final DataParallel dp;
    private final Deque<int[]> pending = new ArrayDeque<>();
    private int stepsLeft;
    private int[] order;
    private int orderEpoch = -1;

    /**
     * @param microPerEpoch global micro-batches an epoch makes (the last incomplete one left out under drop_last)
     * @param batch per-device micro-batch size
     * @param start the optimizer step the run starts at (a resumed run skips the ones before)
     * @param total the run's last step
     */
    MicroBatchOrder(int size, int microPerEpoch, int batch, int accumulation, long seed, int[] modality, boolean groupByModality,
                    int start, int total, DataParallel dp) {
        this.size = size;
        this.batch = batch;
        this.accumulation = accumulation;
        this.seed = seed;
        this.modality = modality;
        this.groupByModality = groupByModality;
        this.dp = dp;
        this.steps = new AccumulationSteps(microPerEpoch, accumulation); // ceil(size / global), or floor with drop_last
        steps.skip(start);
        this.stepsLeft = total - start;
    }

    @Override
    public Micro get() {
        if (pending.isEmpty()) {
            if (stepsLeft <= 0) return null;
            stepsLeft--;
            pending.addAll(steps.next());
        }
        int[] em = pending.pollFirst(); // {epoch, micro-batch}
        if (em[0] != orderEpoch) {
            order = Sampler.order(size, seed, em[0], batch, accumulation * dp.worldSize(), modality, groupByModality);
            orderEpoch = em[0];
        }
        int[] shard = dp.shard(em[1], batch, size);
        int[] idx = new int[shard[1] - shard[0]];
        System.arraycopy(order, shard[0], idx, 0, idx.length);
        return new Micro(em[0], em[1], idx, pending.isEmpty());
    }
}
