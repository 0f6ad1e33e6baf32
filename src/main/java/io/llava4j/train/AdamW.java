package io.llava4j.train;

import io.llava4j.engine.Tensors;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * AdamW on libtorch tensors, step for step torch.optim.AdamW (decoupled weight decay, bias correction; the same
 * in-place ops as its single-tensor path). Its state is keyed by parameter name and readable: the presets do not
 * expose the state map of libtorch's {@code torch::optim::AdamW}, so neither a test nor a checkpoint could see it.
 * State is created lazily, at a parameter's first step with a gradient, for the parameters of its groups only.
 */
public final class AdamW {

    /** A parameter group: its own learning rate (the schedule scales {@link #baseLr}) and weight decay. */
    public static final class Group {
        public final String name;
        public final Map<String, Tensor> params;
        public final double baseLr, weightDecay;
        double lr;

        public Group(String name, Map<String, Tensor> params, double lr, double weightDecay) {
            this.name = name;
            this.params = params;
            this.baseLr = lr;
            this.lr = lr;
            this.weightDecay = weightDecay;
        }

        public double lr() {
            return lr;
        }
    }

    /** Per-parameter state, as torch's: step, exp_avg, exp_avg_sq. */
    public static final class State {
        public long step;
        public final Tensor expAvg;   // same shape as the parameter
        public final Tensor expAvgSq; // same shape as the parameter

        State(long step, Tensor expAvg, Tensor expAvgSq) {
            this.step = step;
            this.expAvg = expAvg;
            this.expAvgSq = expAvgSq;
        }
    }

    private final List<Group> groups = new ArrayList<>();
    private final Map<String, State> state = new LinkedHashMap<>();
    private final Map<String, Double> paramLr = new java.util.HashMap<>(); // per-tensor factors on the group's lr
    private final double beta1, beta2, eps;
    /**
     * float32 tensors take {@link FusedAdamW}'s one-pass update; off ({@code LLAVA4J_FUSED_ADAMW=0} or property
     * {@code llava4j.fused_adamw=0}): libtorch's tensor ops (the same arithmetic).
     */
    private boolean fusedEnabled = !"0".equals(System.getProperty("llava4j.fused_adamw", System.getenv("LLAVA4J_FUSED_ADAMW")));

    public AdamW(List<Group> groups, double beta1, double beta2, double eps) {
        this.groups.addAll(groups);
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
    }

    /** Chooses the one-pass float32 update (default) or libtorch's tensor ops; both compute torch's AdamW. */
    public AdamW fused(boolean on) {
        fusedEnabled = on;
        return this;
    }

    public double beta1() {
        return beta1;
    }

    public double beta2() {
        return beta2;
    }

    public double eps() {
        return eps;
    }

    public List<Group> groups() {
        return groups;
    }

    /** The optimizer's state by parameter name (only parameters that have taken a step). */
    public Map<String, State> state() {
        return state;
    }

    /** Bytes held by the optimizer state. */
    public long stateBytes() {
        long b = 0;
        for (State s : state.values()) b += (s.expAvg.numel() + s.expAvgSq.numel()) * s.expAvg.element_size();
        return b;
    }

    /** Sets every group's lr to {@code factor × baseLr}. */
    public void scaleLr(double factor) {
        for (Group g : groups) g.lr = g.baseLr * factor;
    }

    /**
     * A factor on one tensor's learning rate, on top of its group's (a group unfrozen mid-stage warms up on its own;
     * see {@link FreezeSchedule}). 1 by default.
     */
    public void scaleParamLr(String name, double factor) {
        if (factor == 1.0) paramLr.remove(name);
        else paramLr.put(name, factor);
    }

    /**
     * Drops the gradients (PyTorch's {@code zero_grad(set_to_none=True)}): their memory is free until the next backward
     * writes them again, instead of held through the next forward's activations.
     */
    public void zeroGrad() {
        for (Group g : groups)
            for (Tensor p : g.params.values())
                if (p.grad().defined()) p.mutable_grad().reset();
    }

    public void step() {
        step(null);
    }

    /**
     * One update with the gradients {@code gradOf} gives by parameter name (null or undefined: that tensor takes no
     * step, as one without {@code .grad}); {@code gradOf} null reads each parameter's {@code .grad}. A ZeRO shard's
     * optimizer updates views of its slices of the parameters with its slices of the reduced gradients this way.
     */
    public void step(java.util.function.Function<String, Tensor> gradOf) {
        List<FusedAdamW.Update> fused = new ArrayList<>();
        try (NoGradGuard ng = new NoGradGuard()) {
            for (Group g : groups) {
                for (Map.Entry<String, Tensor> e : g.params.entrySet()) {
                    Tensor p = e.getValue();
                    Tensor grad = gradOf == null ? p.grad() : gradOf.apply(e.getKey());
                    if (grad == null || !grad.defined()) continue;
                    State s = state.computeIfAbsent(e.getKey(), k -> new State(0, kept(torch.zeros_like(p)), kept(torch.zeros_like(p))));
                    s.step++;
                    Double f = paramLr.get(e.getKey());
                    double lr = f == null ? g.lr : g.lr * f;
                    double bc1 = 1 - Math.pow(beta1, s.step);
                    double bc2Sqrt = Math.sqrt(1 - Math.pow(beta2, s.step));
                    if (fusedEnabled && FusedAdamW.applies(p, grad, s.expAvg, s.expAvgSq)) {
                        fused.add(new FusedAdamW.Update(p, grad, s.expAvg, s.expAvgSq, (float) (1 - lr * g.weightDecay),
                                (float) (1 - beta1), (float) beta2, (float) (1 - beta2), (float) bc2Sqrt, (float) eps,
                                (float) (-lr / bc1)));
                        continue;
                    }
                    p.mul_(new Scalar(1 - lr * g.weightDecay));
                    s.expAvg.lerp_(grad, new Scalar(1 - beta1));
                    s.expAvgSq.mul_(new Scalar(beta2)).addcmul_(grad, grad, new Scalar(1 - beta2));
                    Tensor denom = s.expAvgSq.sqrt().div_(new Scalar(bc2Sqrt)).add_(new Scalar(eps));
                    p.addcdiv_(s.expAvg, denom, new Scalar(-lr / bc1));
                }
            }
            FusedAdamW.run(fused);
        }
    }

    /**
     * Takes the learning rates of {@code main} (group by group, by name) and its per-tensor factors, {@code paramOf}
     * naming the tensor of {@code main} each of this optimizer's entries is a slice of (a ZeRO shard's optimizer).
     */
    public void followLr(AdamW main, java.util.function.Function<String, String> paramOf) {
        Map<String, Double> lrs = new java.util.HashMap<>();
        for (Group g : main.groups) lrs.put(g.name, g.lr);
        for (Group g : groups) g.lr = lrs.getOrDefault(g.name, g.lr);
        paramLr.clear();
        for (Group g : groups)
            for (String n : g.params.keySet()) {
                Double f = main.paramLr.get(paramOf.apply(n));
                if (f != null) paramLr.put(n, f);
            }
    }

    /** Restores the state of one parameter (resume). */
    public void putState(String name, long step, Tensor expAvg, Tensor expAvgSq) {
        Tensor p = null;
        for (Group g : groups) if (g.params.containsKey(name)) p = g.params.get(name);
        if (p == null) throw new IllegalArgumentException("optimizer state for '" + name + "', which this optimizer does not train");
        if (!java.util.Arrays.equals(Tensors.shape(p), Tensors.shape(expAvg)))
            throw new IllegalArgumentException("optimizer state for '" + name + "' has shape " + java.util.Arrays.toString(Tensors.shape(expAvg)));
        state.put(name, new State(step, kept(expAvg.clone()), kept(expAvgSq.clone())));
    }

    /** State outlives the step's PointerScope: one extra reference keeps the scope from freeing it. */
    private static Tensor kept(Tensor t) {
        t.retainReference();
        return t;
    }
}
