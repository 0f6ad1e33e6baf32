package io.llava4j.model;

/**
 * Called around each decoder layer's use in {@link Llama#checkpointedBackward}, in a fixed order that does not depend
 * on the data: {@link #gather} / {@link #release} around every layer's forward (without a graph, layers 0 to L−1),
 * then {@link #gather} / {@link #backwardDone} around every layer's recompute and backward (L−1 down to 0; a layer the
 * backward need not reach gets both calls too, with no gradient). ZeRO stage 3 all-gathers a layer's partitioned
 * parameters in {@code gather}, frees them in {@code release}, and reduce-scatters and frees its gradients in
 * {@code backwardDone}. {@link #NONE} does nothing.
 */
public interface LayerHooks {
    /** Before decoder layer {@code layer} runs (its forward without a graph, or its recompute in the backward). */
    void gather(int layer);

    /** After layer {@code layer}'s forward without a graph: its parameters are not read again until its recompute. */
    void release(int layer);

    /** After layer {@code layer}'s recompute and backward: its gradients of this micro-batch are complete. */
    void backwardDone(int layer);

    LayerHooks NONE = new LayerHooks() {
        @Override public void gather(int layer) {}
        @Override public void release(int layer) {}
        @Override public void backwardDone(int layer) {}
    };
}
