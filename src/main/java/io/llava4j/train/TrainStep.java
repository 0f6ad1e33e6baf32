package io.llava4j.train;

import io.llava4j.data.Collator;
import io.llava4j.data.LlavaDataset.Sample;
import io.llava4j.engine.BlasThreads;
import io.llava4j.engine.Tensors;
import io.llava4j.model.Llava;
import io.llava4j.nn.Autocast;
import io.llava4j.nn.LoraDropout;
import io.llava4j.nn.Precision;
import io.llava4j.nn.WeightCasts;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * One optimizer step of LLaVA training, shared by {@code llava4j train} ({@link Trainer}) and {@code llava4j bench}:
 * each micro-batch collated, forward and backward (loss = mean over its supervised tokens, divided by the accumulation
 * steps, as HF's Trainer; under data parallelism scaled by this rank's share of the global micro-batch's tokens), the
 * gradients summed over the ranks, then optional clipping, AdamW and dropped gradients. The learning rate and what
 * trains at this step ({@link FreezeSchedule}) are set by the caller.
 */
public final class TrainStep {
    private final Llava model;
    private final AdamW optimizer;
    private final Collator collator;
    private final Precision precision;
    private final boolean recompute;
    private final int maxLength, accumulation;
    private final double maxGradNorm;
    private final FeatureCache cache; // null: the tower runs on every image
    private final DataParallel dp;
    private final long seed;          // LoRA dropout masks are drawn per (seed, epoch, micro-batch)
    private final List<String> trainable;
    private final Map<String, Tensor> params;
    private final int intraOpThreads = torch.get_num_threads();
    private final boolean lora; // LoRA adapters train
    /**
     * {@code LLAVA4J_WEIGHT_CASTS=1} (or property {@code llava4j.weight_casts=1}): each fp32 weight cast to the GEMM
     * type once per step ({@link WeightCasts}) where GEMMs run in a half type, in one process, instead of once per use.
     * Off by default: on the bench model (one micro-batch a step, two halves) it saved no measurable time and held the
     * copies through the backward, 20-100 MB more at the peak (bench/README.md).
     */
    private final boolean castOncePerStep;
    private WeightCasts casts; // this step's, or null

    /**
     * {@code LLAVA4J_SAMPLE_THREADS=0} (or system property {@code llava4j.sample_threads=0}) turns the two-halves step
     * off, for comparing; {@code force} runs it whatever the cores and the frozen share (tests).
     */
    private static String halvesMode() {
        String p = System.getProperty("llava4j.sample_threads");
        return p != null ? p : System.getenv().getOrDefault("LLAVA4J_SAMPLE_THREADS", "auto");
    }

    private String halvesMode = halvesMode();

    /**
     * Runs micro-batches as two halves at once whatever the intra-op thread count (unless {@code llava4j.sample_threads=0}
     * turns the halves off): the result then does not depend on how many threads or cores there are.
     */
    public TrainStep alwaysHalves() {
        if (!"0".equals(halvesMode)) halvesMode = "force";
        return this;
    }
    private static final java.util.concurrent.ExecutorService HALVES = java.util.concurrent.Executors.newFixedThreadPool(2, r -> {
        Thread t = new Thread(r, "llava4j-half");
        t.setDaemon(true);
        return t;
    });

    /**
     * The samples of one micro-batch (this rank's shard; may be empty), where it sits in the run, and whether it is the
     * last micro-batch of its optimizer step.
     */
    public record MicroBatch(int epoch, int index, List<Sample> samples, boolean endsStep) {}

    /**
     * The mean micro-batch loss, the merged positions the step ran, the gradient norm before clipping, and whether the
     * weights were updated (false: the loss or the gradient norm was not finite, and the step stopped before AdamW with
     * the gradients dropped, so the state is the last good one).
     */
    public record Result(double loss, long tokens, double gradNorm, boolean updated) {}

    /**
     * @param recompute recompute decoder layers in the backward ({@code --gradient_checkpointing}, or half weights
     *                  up-cast on this CPU)
     * @param cache     frozen-tower features stored across epochs and runs ({@code --cache_vision_features}); null = none
     * @param dp        data parallelism ({@link DataParallel#SINGLE}: one process)
     * @param trainable every tensor that trains at some step of the run (the gradients the ranks sum)
     */
    public TrainStep(Llava model, AdamW optimizer, Collator collator, Precision precision, boolean recompute, int maxLength,
                     int accumulation, double maxGradNorm, FeatureCache cache, DataParallel dp, long seed, List<String> trainable) {
        this.model = model;
        this.optimizer = optimizer;
        this.collator = collator;
        this.precision = precision;
        this.recompute = recompute;
        this.maxLength = maxLength;
        this.accumulation = accumulation;
        this.maxGradNorm = maxGradNorm;
        this.cache = cache;
        this.dp = dp;
        this.seed = seed;
        this.trainable = trainable;
        this.params = Tensors.namedParameters(model);
        boolean lora = false;
        for (String n : trainable) lora |= n.contains(".lora_");
        // LoRA's dropout masks are drawn per micro-batch: halves would draw other masks than the recomputed path
        this.lora = lora;
        this.castOncePerStep = precision.gemm() != torch.ScalarType.Float && dp == DataParallel.SINGLE
                && "1".equals(System.getProperty("llava4j.weight_casts", System.getenv("LLAVA4J_WEIGHT_CASTS")));
    }

    /** Runs the step on its micro-batches, in order. */
    public Result run(List<MicroBatch> microBatches) {
        casts = castOncePerStep ? new WeightCasts(precision.gemm()) : null;
        try {
            return runSteps(microBatches);
        } finally {
            if (casts != null) casts.close();
            casts = null;
        }
    }

    private Result runSteps(List<MicroBatch> microBatches) {
        double loss = 0, scaled = 0; // the micro-batches' losses, and their sum × scale (this rank's share of the step's loss)
        long tokens = 0;
        for (int k = 0; k < microBatches.size(); k++) {
            MicroBatch mb = microBatches.get(k);
            if (k == microBatches.size() - 1) dp.beforeLastBackward();
            if (mb.samples().isEmpty()) { // this rank's shard of an epoch's last global micro-batch, or all skipped
                dp.idleMicroBatch(accumulation);
                continue;
            }
            double[] r = halves(mb) ? runHalves(mb) : runWhole(mb); // each ends with dp.afterMicroBatch()
            loss += r[0];
            scaled += r[0] * r[1];
            tokens += (long) r[2];
        }
        if (casts != null) casts.close(); // the step's backward is done: the copies are not held through the update
        double gradNorm;
        try (PointerScope scope = new PointerScope()) {
            dp.syncGradients(trainable, params);
            ShardedOptimizer zero = dp.sharded(); // ZeRO: each rank updates its shard of the state
            gradNorm = zero == null ? clipGradients(maxGradNorm) : zero.clip(maxGradNorm);
            if (NonFiniteException.found(loss, gradNorm)) {
                optimizer.zeroGrad();
                if (zero != null) zero.dropGradients();
                return new Result(loss / accumulation, tokens, gradNorm, false);
            }
            if (zero == null) optimizer.step();
            else zero.step(optimizer);
            optimizer.zeroGrad();
        }
        double mean = dp == DataParallel.SINGLE ? loss / accumulation // HF: the sum of loss / accumulation over the micro-batches
                : dp.sum(scaled); // the global batch's loss
        return new Result(mean, tokens, gradNorm, true);
    }

    /** One micro-batch as one batch: {loss, scale, positions}. */
    private double[] runWhole(MicroBatch mb) {
        double[] scale = new double[1];
        dp.beforeMicroBatch();
        double[] r = forwardBackward(mb.samples(), LoraDropout.microBatchSeed(seed, mb.epoch(), mb.index()),
                n -> scale[0] = dp.lossScale(n, accumulation));
        dp.afterMicroBatch();
        return new double[]{r[0], scale[0], r[1]};
    }

    /**
     * Forward and backward of {@code samples} as one batch on this thread: {loss (their mean), merged positions}.
     * {@code scaleOfTokens}: the loss's scale from the batch's supervised-token count.
     */
    private double[] forwardBackward(List<Sample> samples, long dropoutSeed, java.util.function.LongToDoubleFunction scaleOfTokens) {
        try (PointerScope scope = new PointerScope(); Autocast ac = Autocast.enable(precision, casts);
             LoraDropout d = LoraDropout.seeded(dropoutSeed)) {
            Batches.Input in = Batches.input(samples, collator, model.config.vision().imageSize()); // pixels of the images not in the cache
            Tensor towerFeatures = cache == null ? null : cache.towerFeatures(samples, in.pixels(), model);
            Llava.Step st = model.forwardBackward(in.pixels(), in.imageSizes(), towerFeatures, in.inputIds(), in.labels(),
                    in.attentionMask(), maxLength, scaleOfTokens, recompute);
            long positions = 0;
            for (int len : st.lengths()) positions += len;
            return new double[]{st.loss(), positions};
        }
    }

    /**
     * Whether the micro-batch runs as two halves at once, each on its own thread with one intra-op thread: on two cores
     * the GEMMs of a few hundred rows and the small element-wise ops scale poorly across threads, while two
     * independent halves keep both cores busy (bench/README.md: a stage-1 step of the bench model went ≈ 3.3 → 2.5 s,
     * a stage-2 step ≈ 5.0 → 4.4 s once AdamW's update was one pass). Only where the result is still exactly
     * reproducible: two contributions to each gradient (a + b = b + a), one process, no recomputation, no LoRA
     * dropout.
     */
    private boolean halves(MicroBatch mb) {
        if ("0".equals(halvesMode) || mb.samples().size() < 2 || dp != DataParallel.SINGLE || recompute || !BlasThreads.available())
            return false;
        return "force".equals(halvesMode) || !lora && intraOpThreads == 2;
    }

    /**
     * The micro-batch's two halves forward and backward at once. Gradients already accumulated this step are set aside
     * first, so each tensor's gradient is (first half + second half) whichever finishes first, then added to them.
     * The loss is the micro-batch's mean over all its supervised tokens, as {@link #runWhole}'s: each half's mean
     * weighted by its share of the tokens (the halves meet once both know their counts).
     */
    private double[] runHalves(MicroBatch mb) {
        double[] r;
        try (PointerScope outer = new PointerScope()) { // the gradients set aside
            r = halvesIn(mb);
        }
        dp.afterMicroBatch(); // one process only (see halves): kept for the contract
        return r;
    }

    private double[] halvesIn(MicroBatch mb) {
        List<Sample> all = mb.samples();
        int cut = (all.size() + 1) / 2;
        List<List<Sample>> parts = List.of(all.subList(0, cut), all.subList(cut, all.size()));
        Map<String, Tensor> before = new java.util.LinkedHashMap<>();
        for (String n : trainable) {
            Tensor p = params.get(n);
            if (p.requires_grad() && p.grad().defined()) {
                before.put(n, new Tensor(p.grad())); // grad() is a handle to the field itself: reset() would empty it
                p.mutable_grad().reset();
            }
        }
        long[] counts = new long[2];
        double[] losses = new double[2], positions = new double[2];
        double[] microScale = new double[1];
        java.util.concurrent.CyclicBarrier counted = new java.util.concurrent.CyclicBarrier(2,
                () -> microScale[0] = dp.lossScale(counts[0] + counts[1], accumulation));
        int blas = BlasThreads.get();
        BlasThreads.set(1);
        try {
            List<java.util.concurrent.Future<?>> running = new ArrayList<>();
            for (int h = 0; h < 2; h++) {
                int half = h;
                running.add(HALVES.submit(() -> {
                    torch.set_num_threads(1); // this thread's OpenMP team
                    try {
                        double[] r = forwardBackward(parts.get(half), LoraDropout.microBatchSeed(seed, mb.epoch(), mb.index()) + half, n -> {
                                    counts[half] = n;
                                    try {
                                        counted.await();
                                    } catch (InterruptedException | java.util.concurrent.BrokenBarrierException e) {
                                        throw new IllegalStateException("the other half of the micro-batch failed", e);
                                    }
                                    long total = counts[0] + counts[1];
                                    return total == 0 ? 0 : microScale[0] * n / total;
                                });
                        losses[half] = r[0];
                        positions[half] = r[1];
                    } catch (RuntimeException | Error e) {
                        counted.reset(); // the other half stops waiting
                        throw e;
                    }
                    return null;
                }));
            }
            awaitAll(running);
        } finally {
            BlasThreads.set(blas);
            torch.set_num_threads(Math.max(1, intraOpThreads)); // ATen's count is process-wide; the halves set it to 1
        }
        try (NoGradGuard g = new NoGradGuard()) {
            for (Map.Entry<String, Tensor> e : before.entrySet()) {
                Tensor p = params.get(e.getKey()), earlier = e.getValue();
                if (p.grad().defined()) earlier.add_(p.grad());
                p.mutable_grad().put(earlier);
            }
        }
        long total = counts[0] + counts[1];
        double loss = total == 0 ? losses[0] + losses[1] : (losses[0] * counts[0] + losses[1] * counts[1]) / total;
        return new double[]{loss, microScale[0], positions[0] + positions[1]};
    }

    /** Waits for every task; throws the first failure that is not just "the other half failed". */
    private static void awaitAll(List<java.util.concurrent.Future<?>> running) {
        Throwable first = null;
        for (java.util.concurrent.Future<?> f : running) {
            try {
                f.get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted during a training step", e);
            } catch (java.util.concurrent.ExecutionException e) {
                Throwable c = e.getCause();
                boolean echo = c instanceof IllegalStateException && c.getCause() instanceof java.util.concurrent.BrokenBarrierException;
                if (first == null || !echo && isEcho(first)) first = c;
            }
        }
        if (first instanceof RuntimeException r) throw r;
        if (first instanceof Error err) throw err;
        if (first != null) throw new IllegalStateException(first.getMessage(), first);
    }

    private static boolean isEcho(Throwable t) {
        return t instanceof IllegalStateException && t.getCause() instanceof java.util.concurrent.BrokenBarrierException;
    }

    /** Total L2 norm of the trainable gradients; scaled to {@code max} when above it (0 = no clipping). */
    private double clipGradients(double max) {
        List<Tensor> grads = new ArrayList<>();
        for (AdamW.Group g : optimizer.groups())
            for (Tensor p : g.params.values()) {
                Tensor gr = p.grad();
                if (gr.defined()) grads.add(gr);
            }
        double sq = 0;
        for (Tensor g : grads) {
            double n = g.norm().item_double();
            sq += n * n;
        }
        double norm = Math.sqrt(sq);
        if (max > 0) {
            double coef = max / (norm + 1e-6);
            if (coef < 1) for (Tensor g : grads) g.mul_(new Scalar(coef));
        }
        return norm;
    }

    /**
     * Trainable tensors loaded in a half type (--bf16/--fp16) get fp32 master weights, as mixed-precision training
     * keeps them: their gradients and AdamW state are fp32 too. Frozen tensors stay in their storage type.
     */
    public static void masterWeights(Llava model, FreezePlan plan) {
        Map<String, Tensor> params = Tensors.namedParameters(model);
        try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            for (String n : plan.trainable()) {
                Tensor p = params.get(n);
                if (p.scalar_type().intern() != torch.ScalarType.Float) p.__dispatch_set_data(p.to(torch.ScalarType.Float));
            }
        }
    }
}
