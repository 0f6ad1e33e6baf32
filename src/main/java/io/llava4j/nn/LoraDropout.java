package io.llava4j.nn;

import org.bytedeco.pytorch.GeneratorOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * The dropout on the input of a LoRA branch (PEFT's {@code lora_dropout}), deterministic: the mask of a branch is a
 * function of the micro-batch's seed (set by the training loop for each micro-batch) and the branch's index, drawn from
 * a generator of its own. A resumed run therefore draws the same masks as an uninterrupted one, and a decoder layer
 * recomputed in the backward ({@code --gradient_checkpointing}) sees the mask its forward saw. Outside a
 * {@link #seeded} scope (inference, merging) there is no dropout. Thread-local, as {@link Autocast}.
 */
public final class LoraDropout implements AutoCloseable {
    private static final ThreadLocal<Long> SEED = new ThreadLocal<>();
    private final Long previous;

    private LoraDropout(Long seed) {
        previous = SEED.get();
        SEED.set(seed);
    }

    /** Dropout on, with masks derived from {@code seed}, until closed. */
    public static LoraDropout seeded(long seed) {
        return new LoraDropout(seed);
    }

    @Override
    public void close() {
        SEED.set(previous);
    }

    /** A seed for one micro-batch: the run's seed, the epoch and the micro-batch index within it. */
    public static long microBatchSeed(long seed, int epoch, int microBatch) {
        return mix(mix(mix(seed) ^ epoch) ^ microBatch);
    }

    /**
     * {@code x · mask / (1 − p)}, mask ~ Bernoulli(1 − p) elementwise (torch.nn.Dropout in training), or {@code x}
     * itself when {@code p} is 0 or no seed is set.
     *
     * @param branch the branch's index in the model (distinct branches draw distinct masks)
     */
    public static Tensor apply(Tensor x, double p, long branch) {
        Long seed = SEED.get();
        if (seed == null || p == 0) return x;
        GeneratorOptional g = new GeneratorOptional(torch.createCPUGenerator(mix(seed ^ mix(branch + 1))));
        // drawn on the CPU (the same masks on every device); kept as bool, which is what autograd saves for the backward
        Tensor keep = torch.empty(x.sizes().vec().get()).bernoulli_(1 - p, g).to(torch.ScalarType.Bool);
        return x.mul(io.llava4j.engine.Device.place(keep)).div(new org.bytedeco.pytorch.Scalar(1 - p));
    }

    /** SplitMix64's finaliser. */
    static long mix(long z) {
        z += 0x9E3779B97F4A7C15L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}
