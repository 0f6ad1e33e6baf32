package io.llava4j.train;

import io.llava4j.data.Collator;
import io.llava4j.data.LlavaDataset.Sample;
import io.llava4j.engine.Tensors;
import io.llava4j.model.Llava;
import io.llava4j.nn.Autocast;
import io.llava4j.nn.LoraDropout;
import io.llava4j.nn.Precision;
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

    /** The samples of one micro-batch (this rank's shard; may be empty) and where it sits in the run. */
    public record MicroBatch(int epoch, int index, List<Sample> samples) {}

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
    }

    /** Runs the step on its micro-batches, in order. */
    public Result run(List<MicroBatch> microBatches) {
        double loss = 0, scaled = 0; // the micro-batches' losses, and their sum × scale (this rank's share of the step's loss)
        long tokens = 0;
        int imageSize = model.config.vision().imageSize();
        for (int k = 0; k < microBatches.size(); k++) {
            MicroBatch mb = microBatches.get(k);
            if (k == microBatches.size() - 1) dp.beforeLastBackward();
            if (mb.samples().isEmpty()) { // this rank's shard of an epoch's last global micro-batch, or all skipped
                dp.lossScale(0, accumulation);
                continue;
            }
            try (PointerScope scope = new PointerScope(); Autocast ac = Autocast.enable(precision);
                 LoraDropout d = LoraDropout.seeded(LoraDropout.microBatchSeed(seed, mb.epoch(), mb.index()))) {
                Batches.Input in = Batches.input(mb.samples(), collator, imageSize); // pixels of the images not in the cache
                Tensor towerFeatures = cache == null ? null : cache.towerFeatures(mb.samples(), in.pixels(), model);
                double[] scale = new double[1];
                Llava.Step st = model.forwardBackward(in.pixels(), towerFeatures, in.inputIds(), in.labels(), in.attentionMask(),
                        maxLength, n -> scale[0] = dp.lossScale(n, accumulation), recompute);
                loss += st.loss();
                scaled += st.loss() * scale[0];
                for (int len : st.lengths()) tokens += len;
            }
        }
        double gradNorm;
        try (PointerScope scope = new PointerScope()) {
            dp.syncGradients(trainable, params);
            gradNorm = clipGradients(maxGradNorm);
            if (NonFiniteException.found(loss, gradNorm)) {
                optimizer.zeroGrad();
                return new Result(loss / accumulation, tokens, gradNorm, false);
            }
            optimizer.step();
            optimizer.zeroGrad();
        }
        double mean = dp == DataParallel.SINGLE ? loss / accumulation // HF: the sum of loss / accumulation over the micro-batches
                : dp.sum(scaled); // the global batch's loss
        return new Result(mean, tokens, gradNorm, true);
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
