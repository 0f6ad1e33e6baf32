package io.llava4j.train;

import java.io.IOException;
import java.nio.file.Path;

/**
 * The optimizer step under ZeRO ({@code --deepspeed} stage 1 or 2; the implementation is
 * {@code io.llava4j.dist.ZeroDataParallel}): each rank holds AdamW's state for its 1/W of the trainable values only,
 * so the {@link TrainStep} asks it, instead of the whole-model {@link AdamW}, for the gradient norm, the update and
 * the state's checkpoint files. The whole-model AdamW keeps the groups, learning rates and schedule; it holds no state.
 */
public interface ShardedOptimizer {
    /** The global L2 norm of the step's reduced gradients (all ranks' shards); scales them to {@code max} when above it (0 = never). */
    double clip(double max);

    /** AdamW on this rank's shard with {@code main}'s learning rates, then every rank gets every updated value (all-gather). */
    void step(AdamW main);

    /** Forgets the step's reduced gradients (a step stopped before the update). */
    void dropGradients();

    /** Bytes of this rank's AdamW state. */
    long stateBytes();

    /**
     * Writes this rank's optimizer state into the (unpublished) checkpoint folder {@code dir} under
     * {@link OptimizerShards#FOLDER}, atomically. Every rank calls it; it returns once every rank's file is written.
     */
    void save(Path dir) throws IOException;

    /** Reads this rank's slices of the optimizer state from checkpoint {@code dir}, whatever world size wrote it. */
    void restore(Path dir) throws IOException;

    /**
     * Makes every trainable parameter whole on this rank (a collective; every rank calls it): ZeRO-3 all-gathers its
     * partitioned parameters before a checkpoint or the saved model reads them. Stage 1 and 2 keep them whole anyway.
     */
    default void gatherAll() {}

    /** Frees what {@link #gatherAll} gathered (this rank alone). */
    default void releaseAll() {}

    /** Returns once every rank has called it ({@code what} names the moment in errors). */
    void barrier(String what);
}
