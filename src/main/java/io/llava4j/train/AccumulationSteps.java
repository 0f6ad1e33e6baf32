package io.llava4j.train;

import java.util.ArrayList;
import java.util.List;

/**
 * Which micro-batches make each optimizer step, as transformers 4.37's Trainer groups them: an epoch has
 * {@code ceil(samples / batch)} micro-batches; {@code floor(micro / accumulation)} (at least 1) optimizer steps per
 * epoch count towards {@code --num_train_epochs}; a step ends when the micro-batches seen so far (counted across
 * epochs) are a multiple of the accumulation steps, or at the last micro-batch of an epoch that has no more
 * micro-batches than the accumulation steps. So when accumulation does not divide an epoch, its leftover micro-batches
 * are added into the next epoch's first step, as HF does.
 */
final class AccumulationSteps {
    private final int micro, accumulation;
    private int epoch, index;
    private long seen;

    AccumulationSteps(int microPerEpoch, int accumulation) {
        if (microPerEpoch < 1 || accumulation < 1) throw new IllegalArgumentException("micro-batches and accumulation must be >= 1");
        this.micro = microPerEpoch;
        this.accumulation = accumulation;
    }

    /** HF's num_update_steps_per_epoch: floor(micro-batches / accumulation), at least 1. */
    static int stepsPerEpoch(int microPerEpoch, int accumulation) {
        return Math.max(1, microPerEpoch / accumulation);
    }

    /** The micro-batches of the next optimizer step, each as {epoch, index in the epoch}. */
    List<int[]> next() {
        List<int[]> out = new ArrayList<>();
        while (true) {
            out.add(new int[]{epoch, index});
            seen++;
            boolean end = seen % accumulation == 0 || (micro <= accumulation && index == micro - 1);
            if (++index == micro) {
                index = 0;
                epoch++;
            }
            if (end) return out;
        }
    }

    /** Skips {@code steps} optimizer steps (a resumed run). */
    void skip(int steps) {
        for (int s = 0; s < steps; s++) next();
    }
}
