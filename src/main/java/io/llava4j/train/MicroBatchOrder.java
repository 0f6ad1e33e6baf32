package io.llava4j.train;

import java.util.ArrayDeque;
import java.util.Deque;
import java.util.function.Supplier;

/**
 * The dataset indices of each micro-batch of a run, in training order: {@link AccumulationSteps} says which micro-batch
 * of which epoch comes next, {@link Sampler#order} each epoch's sample order (computed once per epoch). Ends after the
 * micro-batches of {@code steps} optimizer steps (null from then on).
 */
final class MicroBatchOrder implements Supplier<int[]> {
    private final AccumulationSteps steps;
    private final int size, batch, accumulation;
    private final long seed;
    private final int[] modality;
    private final boolean groupByModality;
    private final Deque<int[]> pending = new ArrayDeque<>();
    private int stepsLeft;
    private int[] order;
    private int orderEpoch = -1;

    /**
     * @param start the optimizer step the run starts at (a resumed run skips the ones before)
     * @param total the run's last step
     */
    MicroBatchOrder(int size, int batch, int accumulation, long seed, int[] modality, boolean groupByModality, int start, int total) {
        this.size = size;
        this.batch = batch;
        this.accumulation = accumulation;
        this.seed = seed;
        this.modality = modality;
        this.groupByModality = groupByModality;
        this.steps = new AccumulationSteps((size + batch - 1) / batch, accumulation);
        steps.skip(start);
        this.stepsLeft = total - start;
    }

    @Override
    public int[] get() {
        if (pending.isEmpty()) {
            if (stepsLeft <= 0) return null;
            stepsLeft--;
            pending.addAll(steps.next());
        }
        int[] em = pending.pollFirst(); // {epoch, micro-batch}
        if (em[0] != orderEpoch) {
            order = Sampler.order(size, seed, em[0], batch, accumulation, modality, groupByModality);
            orderEpoch = em[0];
        }
        int from = em[1] * batch, to = Math.min(size, from + batch);
        int[] idx = new int[to - from];
        System.arraycopy(order, from, idx, 0, idx.length);
        return idx;
    }
}
