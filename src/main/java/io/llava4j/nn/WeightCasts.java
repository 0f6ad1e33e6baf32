package io.llava4j.nn;

import org.bytedeco.pytorch.GradMode;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One training step's GEMM-type copies of fp32 weights ({@code --bf16} with native bf16 GEMMs), as
 * {@code torch.autocast}'s weight cache keeps them for one forward: each weight is cast once per step, however many
 * micro-batches, halves or recomputations use it, instead of once per use. Where autograd records, the copy is made
 * with its cast node, so every use's gradient flows back through it to the fp32 weight exactly as through a cast of
 * its own (converted to fp32 and added to {@code .grad}); where it does not (frozen tensors, no-grad passes), a
 * copy without a graph is kept apart. Thread-safe: the two halves of a micro-batch ({@code train.TrainStep}) share one.
 * The copies live until {@link #close}: the caller closes it after the step's last backward, before the update.
 */
public final class WeightCasts implements AutoCloseable {
    private final ScalarType type;
    private final Map<Key, Tensor> casts = new LinkedHashMap<>();

    /** A weight (its TensorImpl's address) and whether its copy records a graph. */
    private record Key(long impl, boolean graph) {}

    /** Copies in {@code type} (the precision's GEMM type). */
    public WeightCasts(ScalarType type) {
        this.type = type;
    }

    public ScalarType type() {
        return type;
    }

    /** {@code weight}'s values in {@link #type}, cast at this step's first use of it in this grad mode. */
    synchronized Tensor use(Tensor weight) {
        boolean graph = weight.requires_grad() && GradMode.is_enabled();
        Key key = new Key(weight.unsafeGetTensorImpl().address(), graph);
        Tensor cast = casts.get(key);
        if (cast == null) {
            if (graph) cast = weight.to(type);
            else try (NoGradGuard g = new NoGradGuard()) {
                cast = weight.detach().to(type);
            }
            cast.retainReference(); // outlives the scope it is made in, until close()
            casts.put(key, cast);
        }
        return cast;
    }

    /** Number of copies held. */
    public synchronized int size() {
        return casts.size();
    }

    /** Frees the copies (a later use casts anew). */
    @Override
    public synchronized void close() {
        for (Tensor t : casts.values()) t.releaseReference();
        casts.clear();
    }
}
