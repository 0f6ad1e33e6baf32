package io.llava4j.train;

import java.nio.file.Path;
import java.util.List;

/**
 * A step whose loss or gradient norm is NaN or infinite: the run stops before applying it. The message names the
 * step, its samples and the checkpoint that holds the state before the step (the last good state).
 */
public final class NonFiniteException extends RuntimeException {
    private final int step;
    private final List<String> sampleIds;
    private final Path checkpoint;

    NonFiniteException(int step, double loss, double gradNorm, List<String> sampleIds, Path checkpoint, String precision) {
        super("step " + step + ": the " + (Double.isFinite(loss) ? "gradient norm is " + gradNorm : "loss is " + loss)
                + " (samples " + String.join(", ", sampleIds) + "); the update was not applied and the state before it is in "
                + checkpoint + (precision.equals("FP32") ? "" : " (under --" + precision.toLowerCase(java.util.Locale.ROOT)
                + " a value beyond the half type's range overflows: try without it)")
                + "; fix or drop these samples (or lower --learning_rate) and resume with --resume_from_checkpoint " + checkpoint);
        this.step = step;
        this.sampleIds = List.copyOf(sampleIds);
        this.checkpoint = checkpoint;
    }

    /** True when the step must not be applied. */
    static boolean found(double loss, double gradNorm) {
        return !Double.isFinite(loss) || !Double.isFinite(gradNorm);
    }

    /** The step (1-based, as logged) that went bad. */
    public int step() {
        return step;
    }

    public List<String> sampleIds() {
        return sampleIds;
    }

    /** The checkpoint of the state before the bad step. */
    public Path checkpoint() {
        return checkpoint;
    }
}
