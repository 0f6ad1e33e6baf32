package io.llava4j.cli;

import io.llava4j.train.TrainArgs;
import io.llava4j.train.Trainer;
import picocli.CommandLine.Command;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.Option;
import picocli.CommandLine.TypeConversionException;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/**
 * {@code llava4j train}: LLaVA's train.py flags (booleans written True/False as in LLaVA's scripts). An unknown flag
 * is an error.
 */
@Command(name = "train", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Train LLaVA (stage 1: --tune_mm_mlp_adapter True; stage 2: projector + LLM) with LLaVA's flags.")
public class TrainCommand implements Callable<Integer> {
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

    @Option(names = "--model_name_or_path", required = true, description = "LLaVA folder, or a LLaMA folder with --vision_tower") Path model;
    @Option(names = "--version", defaultValue = "v1", description = "conversation template: plain or v1") String version;
    @Option(names = "--data_path", required = true) Path data;
    @Option(names = "--image_folder") Path imageFolder;
    @Option(names = "--vision_tower", description = "CLIP folder") Path visionTower;
    @Option(names = "--mm_projector_type", defaultValue = "linear", description = "for a fresh projector: linear, mlp2x_gelu, identity") String projectorType;
    @Option(names = "--mm_vision_select_layer", defaultValue = "-1") int selectLayer;
    @Option(names = "--mm_vision_select_feature", defaultValue = "patch") String selectFeature;
    @Option(names = "--tune_mm_mlp_adapter", defaultValue = "False", arity = "1", converter = Bool.class) boolean tune;
    @Option(names = "--freeze_backbone", defaultValue = "False", arity = "1", converter = Bool.class) boolean freezeBackbone;
    @Option(names = "--freeze_mm_mlp_adapter", defaultValue = "False", arity = "1", converter = Bool.class) boolean freezeProjector;
    @Option(names = "--unfreeze_mm_vision_tower", defaultValue = "False", arity = "1", converter = Bool.class) boolean unfreezeVision;
    @Option(names = "--mm_projector_lr") Double projectorLr;
    @Option(names = "--mm_vision_tower_lr") Double visionLr;
    @Option(names = "--pretrain_mm_mlp_adapter", description = "stage-1 projector (.safetensors or LLaVA's mm_projector.bin)") Path adapter;
    @Option(names = "--image_aspect_ratio", defaultValue = "square", description = "square or pad") String aspect;
    @Option(names = "--model_max_length", defaultValue = "2048") int maxLength;
    @Option(names = "--output_dir", required = true) Path outputDir;
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
    @Option(names = "--dry_run", defaultValue = "False", arity = "1", converter = Bool.class, description = "print the trainable report and stop") boolean dryRun;

    /** Parses LLaVA-style flags into {@link TrainArgs} (for embedding and tests); unknown flags throw. */
    public static TrainArgs parse(String... argv) {
        TrainCommand c = new TrainCommand();
        new picocli.CommandLine(c).parseArgs(argv);
        return c.toArgs();
    }

    @Override
    public Integer call() throws Exception {
        new Trainer(toArgs()).run();
        return 0;
    }

    private TrainArgs toArgs() {
        return new TrainArgs(model, version, data, imageFolder, visionTower, projectorType, selectLayer, selectFeature,
                tune, freezeBackbone, freezeProjector, unfreezeVision, projectorLr, visionLr, adapter, aspect, maxLength, outputDir,
                epochs, maxSteps, batch, accum, lr, wd, warmupRatio, warmupSteps, scheduler, maxGradNorm, beta1, beta2, eps, seed,
                saveSteps, saveTotalLimit, loggingSteps, resume, groupByModality, dryRun);
    }
}
