package io.llava4j.nn;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.GradMode;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One training step's GEMM-type copies of fp32 weights ({@code --bf16} with native bf16 GEMMs): each weight is cast
 * once per step, however many micro-batches, halves or recomputations use it, instead of once per use. Where autograd
 * records, each use gets its own leaf that shares the cast's memory; {@link #flushGradients} adds what those leaves
 * received to the fp32 weight's {@code .grad} in place. Per use that is the gradient autograd computed before —
 * the bf16 product converted to fp32 and summed into the fp32 gradient — without the fp32 temporary autograd's cast
 * node allocated for it, and in a fixed order (slot, then order of use). Thread-safe: the two halves of a micro-batch
 * ({@code train.TrainStep}) share one instance, each in its own slot.
 */
public final class WeightCasts implements AutoCloseable {
    private final ScalarType type;
    private final Map<Long, Entry> entries = new LinkedHashMap<>(); // by TensorImpl address, in order of first use
    private long uses;

    private static final class Entry {
        final Tensor master; // the fp32 weight (a handle of our own)
        final Tensor cast;   // master's values in the GEMM type, no graph; same shape
        final List<Use> uses = new ArrayList<>();

        Entry(Tensor master, Tensor cast) {
            this.master = master;
            this.cast = cast;
        }
    }

    private record Use(int slot, long order, Tensor leaf) {}

    /** Copies in {@code type} (the precision's GEMM type). */
    public WeightCasts(ScalarType type) {
        this.type = type;
    }

    public ScalarType type() {
        return type;
    }

    /**
     * {@code weight}'s values in {@link #type}: the step's one cast, as it is where no gradient is recorded (frozen
     * tensors, no-grad passes), otherwise a new leaf on it whose gradient {@link #flushGradients} hands on.
     */
    Tensor use(Tensor weight, int slot) {
        long key = weight.unsafeGetTensorImpl().address();
        Entry e;
        synchronized (this) {
            e = entries.get(key);
            if (e == null) {
                Tensor cast;
                try (NoGradGuard g = new NoGradGuard()) {
                    cast = kept(weight.detach().to(type));
                }
                e = new Entry(kept(new Tensor(weight)), cast);
                entries.put(key, e);
            }
        }
        if (!weight.requires_grad() || !GradMode.is_enabled()) return e.cast;
        Tensor leaf = kept(e.cast.detach().requires_grad_(true));
        synchronized (this) {
            e.uses.add(new Use(slot, uses++, leaf));
        }
        return leaf;
    }

    /**
     * Adds every use's gradient to its weight's fp32 {@code .grad} (made, contiguous, where it had none), slot by slot
     * and in order of use within a slot, then forgets the uses. Call after each micro-batch's backward, before the
     * gradients are read.
     */
    public synchronized void flushGradients() {
        try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            for (Entry e : entries.values()) {
                e.uses.sort(Comparator.comparingInt(Use::slot).thenComparingLong(Use::order));
                for (Use u : e.uses) {
                    Tensor lg = u.leaf().grad();
                    if (lg.defined()) {
                        Tensor pg = e.master.grad();
                        if (pg.defined()) pg.add_(lg);
                        else e.master.mutable_grad().put(torch.empty_like(e.master).copy_(lg)); // fp32, the weight's layout
                    }
                    u.leaf().releaseReference();
                }
                e.uses.clear();
            }
        }
    }

    /** Number of weights cast this step. */
    public synchronized int size() {
        return entries.size();
    }

    /** Frees the casts (and any use not flushed). */
    @Override
    public synchronized void close() {
        for (Entry e : entries.values()) {
            for (Use u : e.uses) u.leaf().releaseReference();
            e.cast.releaseReference();
            e.master.releaseReference();
        }
        entries.clear();
    }

    /** Outlives the scope it is made in: released by {@link #flushGradients} or {@link #close}. */
    private static Tensor kept(Tensor t) {
        t.retainReference();
        return t;
    }
}
