package io.llava4j.train;

import org.bytedeco.pytorch.Tensor;

import java.util.List;
import java.util.Map;

/**
 * What the {@link Trainer} asks of data-parallel training (one process per rank; the implementation is
 * {@code io.llava4j.dist.DistributedDataParallel}). {@link #SINGLE} is one process and changes nothing.
 *
 * <p>Semantics: the ranks together compute what one process computes with the global batch
 * ({@code world × per_device_train_batch_size} samples a micro-batch): each micro-batch's loss is the mean over the
 * supervised tokens of the whole global micro-batch (each rank scales its own mean by its share of those tokens),
 * and gradients are summed across ranks. HF/LLaVA under DDP instead average the ranks' own means, which equals this
 * only when every rank has the same number of supervised tokens.
 */
public interface DataParallel extends AutoCloseable {
    int rank();

    int worldSize();

    default boolean isMain() {
        return rank() == 0;
    }

    /** Called once, after the model and optimizer exist and before the first step (DDP broadcasts rank 0's weights). */
    default void start(List<String> trainable, Map<String, Tensor> params) {}

    /**
     * The scale of one micro-batch's mean loss, from its supervised-token count on this rank: a collective that
     * every rank calls once per micro-batch (with 0 tokens for an empty shard).
     */
    double lossScale(long tokens, int accumulation);

    /**
     * ZeRO stage 3's hooks around each decoder layer (gather, release, reduce), or null: with them the {@link Trainer}
     * recomputes decoder layers in the backward ({@link io.llava4j.model.Llama#checkpointedBackward} is where they run).
     */
    default io.llava4j.model.LayerHooks layerHooks() {
        return null;
    }

    /** Before a micro-batch's forward and backward on this rank (ZeRO-3 gathers the parameters outside the decoder layers). */
    default void beforeMicroBatch() {}

    /**
     * After each micro-batch's backward on this rank, once, also one this rank had no samples for (through
     * {@link #idleMicroBatch}): a collective point every rank reaches once per micro-batch. ZeRO-2 with
     * {@code overlap_comm} finishes that micro-batch's reduce-scatters here; ZeRO-3 reduce-scatters and frees the
     * gradients outside the decoder layers.
     */
    default void afterMicroBatch() {}

    /**
     * A micro-batch in which this rank has no sample: it still joins every collective the others run for it (the
     * token count; under ZeRO-3 each gather and reduction, with no gradient of its own).
     */
    default void idleMicroBatch(int accumulation) {
        lossScale(0, accumulation);
        afterMicroBatch();
    }

    /** Before the forward and backward of the step's last micro-batch (DDP starts all-reduces during that backward). */
    default void beforeLastBackward() {}

    /** After the step's backward passes and before clipping: each trainable gradient becomes the ranks' sum. */
    void syncGradients(List<String> trainable, Map<String, Tensor> params);

    /** The sum over ranks of {@code local} (a collective; the step's loss). */
    double sum(double local);

    /** The rank's samples [from, to) of global micro-batch {@code index} of an epoch of {@code n} samples. */
    default int[] shard(int index, int batch, int n) {
        int from = Math.min(n, (index * worldSize() + rank()) * batch);
        return new int[]{from, Math.min(n, from + batch)};
    }

    /** ZeRO's sharded optimizer step, or null when every rank updates the whole model (DDP, one process). */
    default ShardedOptimizer sharded() {
        return null;
    }

    /**
     * Called once with the run's optimizer (the groups and learning rates), after {@link #start}; ZeRO builds its
     * shard of AdamW's state from it ({@code llmHiddenSize}: DeepSpeed's "auto" bucket size is its square).
     */
    default void optimizer(AdamW main, int llmHiddenSize) {}

    /** Fields for the step's log record (bytes communicated). */
    default Map<String, Long> stepFields() {
        return Map.of();
    }

    /** Lines for the run's report (what is communicated a step), before training. */
    default String describe(List<String> trainable, Map<String, Tensor> params) {
        return "";
    }

    @Override
    default void close() {}

    DataParallel SINGLE = new DataParallel() {
        @Override public int rank() { return 0; }
        @Override public int worldSize() { return 1; }
        @Override public double lossScale(long tokens, int accumulation) { return 1.0 / accumulation; }
        @Override public void syncGradients(List<String> trainable, Map<String, Tensor> params) {}
        @Override public double sum(double local) { return local; }
    };
}
