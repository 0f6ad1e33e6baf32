package io.llava4j.train;

import java.nio.file.Path;

/**
 * LLaVA's / HF TrainingArguments' flags that {@code llava4j train} takes, with their meanings and defaults
 * (LLaVA's ModelArguments / DataArguments / TrainingArguments). {@code notes}: flags of LLaVA's scripts that have no
 * effect here, said before training. {@code imageAspectRatio} null: the model config's (original LLaVA), else square.
 * {@code mmProjectorType}, {@code mmVisionSelectLayer}, {@code mmVisionSelectFeature} null: not given (LLaVA's defaults
 * linear, -1, patch for a fresh projector; a model's own otherwise). {@code onBadSample}: what to do with records
 * that would stop training ({@link io.llava4j.data.DataValidator}); {@code checkResources}: refuse a run whose memory or
 * disk needs exceed what is there ({@link RunResources}); {@code lora}: LoRA adapters on the LLM
 * ({@code --lora_enable True}); null = none. {@code dataloaderNumWorkers}: threads preparing samples ahead
 * ({@link SampleLoader}); {@code cacheVisionFeatures}: a {@link FeatureCache} folder, or null.
 * {@code imageGridPinpoints}, {@code mmPatchMergeType}: LLaVA-NeXT's AnyRes flags (null: not given), which build an AnyRes
 * model on a plain LLM folder and must agree with a LLaVA model's own config. {@code dataloaderDropLast}: an epoch's
 * last incomplete (global) micro-batch is left out, as HF's {@code --dataloader_drop_last True}. {@code deepspeed}: the
 * checked {@code --deepspeed} file (ZeRO stage, buckets), or null. {@code quant}: LLaVA's
 * {@code --bits 4|8} ({@code --quant_type}, {@code --double_quant}): the frozen LLM's linear weights held quantized
 * ({@link io.llava4j.model.QuantizedLlm}); null = none.
 */
public record TrainArgs(
        Path modelNameOrPath, String version, Path dataPath, Path imageFolder, Path visionTower,
        String mmProjectorType, Integer mmVisionSelectLayer, String mmVisionSelectFeature,
        boolean tuneMmMlpAdapter, boolean freezeBackbone, boolean freezeMmMlpAdapter, boolean unfreezeMmVisionTower,
        Double mmProjectorLr, Double mmVisionTowerLr, Path pretrainMmMlpAdapter, String imageAspectRatio,
        int modelMaxLength, Path outputDir, double numTrainEpochs, int maxSteps, int perDeviceTrainBatchSize,
        int gradientAccumulationSteps, double learningRate, double weightDecay, double warmupRatio, int warmupSteps,
        String lrSchedulerType, double maxGradNorm, double adamBeta1, double adamBeta2, double adamEpsilon, long seed,
        int saveSteps, Integer saveTotalLimit, int loggingSteps, String resumeFromCheckpoint,
        boolean groupByModalityLength, boolean dryRun, java.util.List<String> notes,
        io.llava4j.nn.Precision precision, boolean gradientCheckpointing, Integer recomputeNumLayers, long saveMaxShardBytes,
        io.llava4j.data.DataReport.OnBadSample onBadSample, boolean checkResources, LoraSpec lora,
        int dataloaderNumWorkers, Path cacheVisionFeatures, String imageGridPinpoints, String mmPatchMergeType,
        boolean dataloaderDropLast, io.llava4j.config.DeepSpeedConfig deepspeed,
        io.llava4j.nn.quant.QuantSpec quant) {

    /** These arguments with LoRA set to {@code spec} (null: none) — for a stage plan's {@code llm: lora{…}}. */
    public TrainArgs withLora(LoraSpec spec) {
        return new TrainArgs(modelNameOrPath, version, dataPath, imageFolder, visionTower, mmProjectorType, mmVisionSelectLayer,
                mmVisionSelectFeature, tuneMmMlpAdapter, freezeBackbone, freezeMmMlpAdapter, unfreezeMmVisionTower, mmProjectorLr,
                mmVisionTowerLr, pretrainMmMlpAdapter, imageAspectRatio, modelMaxLength, outputDir, numTrainEpochs, maxSteps,
                perDeviceTrainBatchSize, gradientAccumulationSteps, learningRate, weightDecay, warmupRatio, warmupSteps,
                lrSchedulerType, maxGradNorm, adamBeta1, adamBeta2, adamEpsilon, seed, saveSteps, saveTotalLimit, loggingSteps,
                resumeFromCheckpoint, groupByModalityLength, dryRun, notes, precision, gradientCheckpointing, recomputeNumLayers, saveMaxShardBytes, onBadSample, checkResources, spec,
                dataloaderNumWorkers, cacheVisionFeatures, imageGridPinpoints, mmPatchMergeType, dataloaderDropLast, deepspeed, quant);
    }

    /** Micro-batches an epoch of {@code samples} makes at {@code batch} samples each: HF's DataLoader, with or without drop_last. */
    public int microBatches(int samples, int batch) {
        return dataloaderDropLast ? samples / batch : (samples + batch - 1) / batch;
    }

    public TrainArgs {
        notes = notes == null ? java.util.List.of() : java.util.List.copyOf(notes);
        require(perDeviceTrainBatchSize >= 1, "--per_device_train_batch_size must be >= 1, got " + perDeviceTrainBatchSize);
        require(gradientAccumulationSteps >= 1, "--gradient_accumulation_steps must be >= 1, got " + gradientAccumulationSteps);
        require(learningRate >= 0, "--learning_rate must be >= 0, got " + learningRate);
        require(maxSteps > 0 || numTrainEpochs > 0, "set --max_steps > 0 or --num_train_epochs > 0");
        require(warmupRatio >= 0 && warmupRatio <= 1, "--warmup_ratio must be in [0, 1], got " + warmupRatio);
        require(modelMaxLength > 0, "--model_max_length must be > 0, got " + modelMaxLength);
        require(saveTotalLimit == null || saveTotalLimit >= 1, "--save_total_limit must be >= 1, got " + saveTotalLimit);
        require(loggingSteps >= 1, "--logging_steps must be >= 1, got " + loggingSteps);
        require(maxGradNorm >= 0, "--max_grad_norm must be >= 0 (0 = off), got " + maxGradNorm);
        new LrSchedule(lrSchedulerType, 0, 1); // validates the name
        precision = precision == null ? io.llava4j.nn.Precision.FP32 : precision;
        onBadSample = onBadSample == null ? io.llava4j.data.DataReport.OnBadSample.ERROR : onBadSample;
        require(dataloaderNumWorkers >= 0, "--dataloader_num_workers must be >= 0, got " + dataloaderNumWorkers);
        require(saveMaxShardBytes > 0, "--save_max_shard_size must be positive, got " + saveMaxShardBytes);
        require(recomputeNumLayers == null || gradientCheckpointing, "--recompute_num_layers needs --gradient_checkpointing True");
        require(recomputeNumLayers == null || recomputeNumLayers >= 0, "--recompute_num_layers must be >= 0, got " + recomputeNumLayers);
    }

    private static void require(boolean ok, String message) {
        if (!ok) throw new IllegalArgumentException(message);
    }

    /** The projector flags with LLaVA's defaults filled in (for a fresh projector on a LLaMA folder). */
    public io.llava4j.config.LlavaConfig.ProjectorSpec projectorSpec() {
        return io.llava4j.config.LlavaConfig.ProjectorSpec.orDefaults(mmProjectorType, mmVisionSelectLayer, mmVisionSelectFeature)
                .withImages(imageAspectRatio, imageGridPinpoints, mmPatchMergeType);
    }

    public FreezePlan.Flags freezeFlags() {
        return new FreezePlan.Flags(tuneMmMlpAdapter, freezeBackbone, freezeMmMlpAdapter, unfreezeMmVisionTower);
    }

    public Optimizers.Hyper hyper() {
        return new Optimizers.Hyper(learningRate, weightDecay, mmProjectorLr, mmVisionTowerLr, adamBeta1, adamBeta2, adamEpsilon);
    }
}
