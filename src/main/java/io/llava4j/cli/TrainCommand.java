package io.llava4j.cli;

import io.llava4j.train.TrainArgs;
import io.llava4j.train.Trainer;
import picocli.CommandLine.Command;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.Option;
import picocli.CommandLine.TypeConversionException;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * {@code llava4j train}: LLaVA's train.py flags (booleans written True/False as in LLaVA's scripts). An unknown flag
 * is an error.
 */
@Command(name = "train", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Train LLaVA (stage 1: --tune_mm_mlp_adapter True; stage 2: projector + LLM) with LLaVA's flags.")
public class TrainCommand implements Callable<Integer> {
    @picocli.CommandLine.Mixin DeviceOption device = new DeviceOption();
    @picocli.CommandLine.Mixin DistOptions dist = new DistOptions();
    @picocli.CommandLine.Spec picocli.CommandLine.Model.CommandSpec spec;
    @Option(names = "--plan", description = "a stage plan (YAML or JSON; see README): runs its stages in order; only --dry_run and --device go with it") Path plan;
    /** LLaVA's booleans: True/False (also true/false). */
    public static final class Bool implements ITypeConverter<Boolean> {
        @Override
        public Boolean convert(String v) {
            return switch (v) {
                case "True", "true" -> true;
                case "False", "false" -> false;
                default -> throw new TypeConversionException("'" + v + "' is not True or False");
            };
        }
    }

    @Option(names = "--model_name_or_path", description = "LLaVA folder, or a LLaMA folder with --vision_tower") Path model;
    @Option(names = "--version", defaultValue = "v1", description = "conversation template, a name of LLaVA's conv_templates: plain, v0_plain, v1 / vicuna_v1, llava_v1, v0, llava_v0, default, v0_mmtag, v1_mmtag, llava_llama_2, llama_2, mistral_instruct, chatml_direct, mistral_direct, mpt; LLaVA-NeXT's qwen_1_5 / qwen_2; TinyLLaVA's qwen2_base, qwen2_instruct (default: ${DEFAULT-VALUE})") String version;
    @Option(names = "--data_path") Path data;
    @Option(names = "--image_folder") Path imageFolder;
    @Option(names = "--vision_tower", description = "CLIP folder") Path visionTower;
    @Option(names = "--mm_projector_type", description = "for a fresh projector: linear (default), mlp2x_gelu, identity; must match a model's own projector") String projectorType;
    @Option(names = "--mm_vision_select_layer", description = "default -1 for a fresh projector; must match a model's own") Integer selectLayer;
    @Option(names = "--mm_vision_select_feature", description = "patch (default) or cls_patch; must match a model's own") String selectFeature;
    @Option(names = "--tune_mm_mlp_adapter", defaultValue = "False", arity = "1", converter = Bool.class) boolean tune;
    @Option(names = "--freeze_backbone", defaultValue = "False", arity = "1", converter = Bool.class) boolean freezeBackbone;
    @Option(names = "--freeze_mm_mlp_adapter", defaultValue = "False", arity = "1", converter = Bool.class) boolean freezeProjector;
    @Option(names = "--unfreeze_mm_vision_tower", defaultValue = "False", arity = "1", converter = Bool.class) boolean unfreezeVision;
    @Option(names = "--mm_tunable_parts", description = "LLaVA-NeXT's list of what trains: mm_vision_tower, mm_mlp_adapter,"
            + " mm_language_model (comma-separated); when given it decides, and --tune_mm_mlp_adapter, --freeze_backbone,"
            + " --freeze_mm_mlp_adapter and --unfreeze_mm_vision_tower are ignored, as in LLaVA-NeXT") String tunableParts;
    @Option(names = "--mm_projector_lr") Double projectorLr;
    @Option(names = "--mm_vision_tower_lr") Double visionLr;
    @Option(names = "--pretrain_mm_mlp_adapter", description = "stage-1 projector (.safetensors or LLaVA's mm_projector.bin)") Path adapter;
    @Option(names = "--image_aspect_ratio", description = "square, pad, anyres or anyres_max_N (default: the config's image_aspect_ratio, else square)") String aspect;
    @Option(names = "--image_grid_pinpoints", description = "LLaVA-NeXT's AnyRes resolutions, (w, h) pairs or a range like \"(1x1),...,(6x6)\"") String gridPinpoints;
    @Option(names = "--mm_patch_merge_type", description = "flat (one tile), or spatial_unpad with AnyRes") String patchMergeType;
    @Option(names = "--model_max_length", defaultValue = "2048") int maxLength;
    @Option(names = "--output_dir") Path outputDir;
    @Option(names = "--num_train_epochs", defaultValue = "3") double epochs;
    @Option(names = "--max_steps", defaultValue = "-1") int maxSteps;
    @Option(names = "--per_device_train_batch_size", defaultValue = "8") int batch;
    @Option(names = "--gradient_accumulation_steps", defaultValue = "1") int accum;
    @Option(names = "--learning_rate", defaultValue = "5e-5") double lr;
    @Option(names = "--weight_decay", defaultValue = "0") double wd;
    @Option(names = "--warmup_ratio", defaultValue = "0") double warmupRatio;
    @Option(names = "--warmup_steps", defaultValue = "0") int warmupSteps;
    @Option(names = "--lr_scheduler_type", defaultValue = "linear", description = "constant, constant_with_warmup, linear, cosine") String scheduler;
    @Option(names = "--max_grad_norm", defaultValue = "1.0", description = "0 = no clipping") double maxGradNorm;
    @Option(names = "--adam_beta1", defaultValue = "0.9") double beta1;
    @Option(names = "--adam_beta2", defaultValue = "0.999") double beta2;
    @Option(names = "--adam_epsilon", defaultValue = "1e-8") double eps;
    @Option(names = "--seed", defaultValue = "42") long seed;
    @Option(names = "--save_steps", defaultValue = "500") int saveSteps;
    @Option(names = "--save_total_limit") Integer saveTotalLimit;
    @Option(names = "--logging_steps", defaultValue = "500") int loggingSteps;
    @Option(names = "--resume_from_checkpoint", description = "a checkpoint folder, or True for the newest in --output_dir") String resume;
    @Option(names = "--group_by_modality_length", defaultValue = "False", arity = "1", converter = Bool.class) boolean groupByModality;
    @Option(names = "--on_bad_sample", defaultValue = "error", description = "records that would stop training (see llava4j validate): error (default) stops before training, skip trains without them") String onBadSample;
    @Option(names = "--check_resources", defaultValue = "True", arity = "1", converter = Bool.class, description = "refuse a run whose memory or disk needs (from the config) exceed what is available") boolean checkResources;
    @Option(names = "--lora_enable", defaultValue = "False", arity = "1", converter = Bool.class,
            description = "LoRA adapters on the LLM's q/k/v/o/gate/up/down projections; base weights frozen, projector trained") boolean loraEnable;
    @Option(names = "--lora_r", defaultValue = "64", description = "LoRA rank (LLaVA's default 64)") int loraR;
    @Option(names = "--lora_alpha", defaultValue = "16", description = "LoRA alpha; scale = alpha / r (LLaVA's default 16)") double loraAlpha;
    @Option(names = "--lora_dropout", defaultValue = "0.05", description = "dropout on the LoRA branch's input") double loraDropout;
    @Option(names = "--lora_bias", defaultValue = "none", description = "only none") String loraBias;
    @Option(names = "--lora_weight_path", defaultValue = "", description = "a PEFT adapter folder to start the adapters from (empty: PEFT's init)") String loraWeightPath;
    @Option(names = "--bits", defaultValue = "16", description = "4 or 8: the frozen LLM's linear weights held quantized (QLoRA with --lora_enable True; stage 1 with its frozen LLM); 16 (default): none") int bits;
    @Option(names = "--quant_type", defaultValue = "nf4", description = "with --bits 4: nf4 (default) or fp4, bitsandbytes' 4-bit formats") String quantType;
    @Option(names = "--double_quant", defaultValue = "False", arity = "1", converter = Bool.class, description = "with --bits 4: the blocks' scales quantized to 8 bits too") boolean doubleQuant;
    @Option(names = "--dry_run", defaultValue = "False", arity = "1", converter = Bool.class, description = "print the trainable report and stop") boolean dryRun;

    // Flags of LLaVA's scripts that have no effect here: accepted where their value asks for nothing llava4j lacks,
    // and named in the run's notes; a value that would change results is an error.
    @Option(names = "--mm_use_im_start_end", arity = "1", converter = Bool.class, description = "only False (LLaVA-1.5)") Boolean imStartEnd;
    @Option(names = "--mm_use_im_patch_token", arity = "1", converter = Bool.class, description = "only False (LLaVA-1.5)") Boolean imPatchToken;
    @Option(names = "--bf16", arity = "1", converter = Bool.class, description = "frozen weights in bf16, fp32 master weights, bf16 GEMMs where the CPU has them") Boolean bf16;
    @Option(names = "--fp16", arity = "1", converter = Bool.class, description = "frozen weights in fp16, fp32 master weights and GEMMs on CPU") Boolean fp16;
    @Option(names = "--save_max_shard_size", defaultValue = "5GB", description = "largest weight file of a saved model, as HF (5GB, 500MB, 2GiB)") String maxShard;
    @Option(names = "--tf32", arity = "1", converter = Bool.class, description = "noted; no effect on CPU") Boolean tf32;
    @Option(names = "--gradient_checkpointing", arity = "1", converter = Bool.class, description = "recompute each decoder layer in the backward") Boolean gradCkpt;
    @Option(names = "--recompute_num_layers", paramLabel = "N", description = "with --gradient_checkpointing True: recompute only the"
            + " lowest N decoder layers in the backward; the layers above keep their activations (faster, more memory;"
            + " Megatron-LM's --recompute-num-layers). Default: all") Integer recomputeNumLayers;
    @Option(names = "--lazy_preprocess", arity = "1", converter = Bool.class, description = "samples are always prepared lazily") Boolean lazy;
    @Option(names = "--dataloader_num_workers", defaultValue = "0", description = "threads that prepare samples (tokens, decoded and preprocessed images) ahead of the step; same order and losses") int workers;
    @Option(names = "--cache_vision_features", description = "folder where the frozen vision tower's outputs are stored once per image and reused by later epochs and runs") Path cacheVisionFeatures;
    @Option(names = "--per_device_eval_batch_size", description = "noted; train runs no evaluation") Integer evalBatch;
    @Option(names = {"--evaluation_strategy", "--eval_strategy"}, description = "only no") String evalStrategy;
    @Option(names = "--save_strategy", description = "steps (default) or no") String saveStrategy;
    @Option(names = "--report_to", description = "noted; metrics go to output_dir/log.jsonl") String reportTo;
    @Option(names = "--deepspeed", description = "DeepSpeed's JSON config (LLaVA's scripts/zero2.json, zero3.json): ZeRO stage 1, 2 or 3 over the ranks; \"auto\" values from the flags") Path deepspeed;
    // LLaVA-NeXT's scripts
    @Option(names = "--attn_implementation", description = "eager, sdpa or flash_attention_2: the same attention; noted") String attnImplementation;
    @Option(names = "--run_name", description = "noted (a wandb run name)") String runName;
    @Option(names = "--video_folder", description = "noted; video records are refused") Path videoFolder;
    @Option(names = "--frames_upbound", description = "noted; video records are refused") Integer framesUpbound;
    @Option(names = "--torch_compile", arity = "1", converter = Bool.class, description = "noted; no effect") Boolean torchCompile;
    @Option(names = "--torch_compile_backend", description = "noted; no effect") String torchCompileBackend;
    @Option(names = "--dataloader_drop_last", arity = "1", converter = Bool.class, description = "True: each epoch's last incomplete batch is left out (HF's DataLoader drop_last)") Boolean dropLast;

    /** Parses LLaVA-style flags into {@link TrainArgs} (for embedding and tests); unknown flags throw. */
    public static TrainArgs parse(String... argv) {
        TrainCommand c = new TrainCommand();
        new picocli.CommandLine(c).parseArgs(argv);
        return c.toArgs();
    }

    @Override
    public Integer call() throws Exception {
        device.apply();
        if (plan != null) {
            for (picocli.CommandLine.Model.OptionSpec o : spec.commandLine().getParseResult().matchedOptions())
                if (!List.of("--plan", "--dry_run", "--device").contains(o.longestName()))
                    throw new IllegalArgumentException(o.longestName() + " with --plan: set it in the plan (its args, or the stage's keys)");
            return PlanRun.run(plan, dryRun);
        }
        TrainArgs args = toArgs(); // flags are checked once, before any rank starts
        // --dry_run with --deepspeed reports each rank's memory from the config alone: no rank is started
        if (dist.launches() && !(args.dryRun() && args.deepspeed() != null))
            return dist.launch(spec.commandLine().getParseResult().originalArgs(), device);
        try (io.llava4j.train.DataParallel dp = dist.join(device, args.deepspeed())) {
            new Trainer(args).progress(new Progress("train")).parallel(dp).run();
        }
        return 0;
    }

    private List<String> notes() {
        List<String> notes = new ArrayList<>();
        if (Boolean.TRUE.equals(imStartEnd) || Boolean.TRUE.equals(imPatchToken))
            throw new IllegalArgumentException("--mm_use_im_start_end / --mm_use_im_patch_token True are not supported (LLaVA-1.5 uses False)");
        if (evalStrategy != null && !evalStrategy.equals("no"))
            throw new IllegalArgumentException("--evaluation_strategy " + evalStrategy + ": llava4j train runs no evaluation; use no (score evaluates)");
        if (saveStrategy != null && !saveStrategy.equals("steps") && !saveStrategy.equals("no"))
            throw new IllegalArgumentException("--save_strategy " + saveStrategy + " is not supported; use steps or no");
        if (Boolean.TRUE.equals(bf16) || Boolean.TRUE.equals(fp16))
            notes.add("--" + (Boolean.TRUE.equals(bf16) ? "bf16" : "fp16") + " True: " + precision().describe());
        if (imStartEnd != null) notes.add("--mm_use_im_start_end False: no effect (llava4j never adds image start/end tokens)");
        if (imPatchToken != null) notes.add("--mm_use_im_patch_token False: no effect (llava4j never adds image patch tokens)");
        if (evalStrategy != null) notes.add("--evaluation_strategy no: no effect (train runs no evaluation)");
        if (tf32 != null) notes.add("--tf32 " + tf32 + ": no effect on CPU");
        if (lazy != null) notes.add("--lazy_preprocess " + lazy + ": no effect (samples are always prepared lazily)");
        if (evalBatch != null) notes.add("--per_device_eval_batch_size " + evalBatch + ": no effect (train runs no evaluation; score takes it)");
        if (reportTo != null && !reportTo.equals("none")) notes.add("--report_to " + reportTo + ": metrics go to " + outputDir.resolve("log.jsonl"));
        if (attnImplementation != null && !List.of("eager", "sdpa", "flash_attention_2").contains(attnImplementation))
            throw new IllegalArgumentException("--attn_implementation " + attnImplementation + " is not one of eager, sdpa, flash_attention_2");
        if (attnImplementation != null) notes.add("--attn_implementation " + attnImplementation + ": exact softmax attention either way");
        if (runName != null) notes.add("--run_name " + runName + ": noted (metrics go to " + outputDir.resolve("log.jsonl") + ")");
        if (videoFolder != null || framesUpbound != null) notes.add("--video_folder / --frames_upbound: noted; a video record is refused by name");
        if (Boolean.TRUE.equals(torchCompile) || torchCompileBackend != null) notes.add("--torch_compile / --torch_compile_backend: no effect");
        if (tunableParts != null) notes.add("--mm_tunable_parts " + tunableParts + ": decides what trains (LLaVA-NeXT); the"
                + " --tune_mm_mlp_adapter / --freeze_backbone / --freeze_mm_mlp_adapter / --unfreeze_mm_vision_tower flags are ignored");
        return notes;
    }

    private TrainArgs toArgs() {
        if (model == null || data == null || outputDir == null)
            throw new IllegalArgumentException("missing required option " + (model == null ? "--model_name_or_path" : data == null ? "--data_path" : "--output_dir")
                    + " (or --plan FILE)");
        io.llava4j.train.FreezePlan.Flags f = io.llava4j.train.FreezePlan.Flags.of(tune, freezeBackbone, freezeProjector, unfreezeVision, tunableParts);
        return new TrainArgs(model, version, data, imageFolder, visionTower, projectorType, selectLayer, selectFeature,
                f.tuneMmMlpAdapter(), f.freezeBackbone(), f.freezeMmMlpAdapter(), f.unfreezeMmVisionTower(), projectorLr, visionLr, adapter, aspect, maxLength, outputDir,
                epochs, maxSteps, batch, accum, lr, wd, warmupRatio, warmupSteps, scheduler, maxGradNorm, beta1, beta2, eps, seed,
                "no".equals(saveStrategy) ? 0 : saveSteps, saveTotalLimit, loggingSteps, resume, groupByModality, dryRun, notes(),
                precision(), Boolean.TRUE.equals(gradCkpt), recomputeNumLayers, ByteSizes.parse("--save_max_shard_size", maxShard),
                io.llava4j.data.DataReport.OnBadSample.of(onBadSample), checkResources, lora(), workers, cacheVisionFeatures,
                gridPinpoints, patchMergeType, Boolean.TRUE.equals(dropLast), deepspeedConfig(),
                io.llava4j.nn.quant.QuantSpec.of(bits, quantType, doubleQuant));
    }

    /** {@code --deepspeed FILE} read and checked against the flags and the world size; null without it. */
    private io.llava4j.config.DeepSpeedConfig deepspeedConfig() {
        if (deepspeed == null) return null;
        return io.llava4j.config.DeepSpeedConfig.read(deepspeed, new io.llava4j.config.DeepSpeedConfig.Flags(batch, accum,
                dist.worldSize(), maxGradNorm, lr, beta1, beta2, eps, wd, Boolean.TRUE.equals(bf16), Boolean.TRUE.equals(fp16),
                projectorLr != null || visionLr != null));
    }

    /** LLaVA's LoRA flags; without --lora_enable True they do nothing (as in LLaVA). */
    private io.llava4j.train.LoraSpec lora() {
        if (!loraEnable) return null;
        if (!loraBias.equals("none"))
            throw new IllegalArgumentException("--lora_bias " + loraBias + " is not supported; use none (LLaMA's projections have no bias)");
        return new io.llava4j.train.LoraSpec(loraR, loraAlpha, loraDropout, io.llava4j.train.LoraSpec.LLAVA_TARGETS,
                loraWeightPath.isEmpty() ? null : Path.of(loraWeightPath));
    }

    private io.llava4j.nn.Precision precision() {
        return io.llava4j.nn.Precision.of(Boolean.TRUE.equals(bf16), Boolean.TRUE.equals(fp16));
    }
}
