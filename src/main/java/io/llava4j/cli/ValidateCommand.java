package io.llava4j.cli;

import io.llava4j.config.LlavaConfig;
import io.llava4j.data.DataReport;
import io.llava4j.data.LlavaTokenizer;
import io.llava4j.train.Batches;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/**
 * {@code llava4j validate}: the data check {@code train} runs before it loads the model, alone. Exit code 0 when
 * training would start, 1 when a record would stop it (or, under {@code --on_bad_sample skip}, none is usable).
 */
@Command(name = "validate", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Check a LLaVA data file as train does before loading the model: JSON shape, roles, <image> count, images"
                + " (present, inside --image_folder, decodable), masking, length. Exits non-zero if a record would stop training.")
public class ValidateCommand implements Callable<Integer> {
    @Option(names = "--model_name_or_path", required = true, description = "model folder (its tokenizer, config and preprocessor_config.json; no weight is read)") Path model;
    @Option(names = "--vision_tower", description = "CLIP folder (original LLaVA / plain LLaMA folders)") Path visionTower;
    @Option(names = "--data_path", required = true, description = "LLaVA JSON (or JSONL) file") Path data;
    @Option(names = "--image_folder", description = "folder the records' image paths are relative to") Path imageFolder;
    @Option(names = "--version", defaultValue = "v1", description = "conversation template, a name of LLaVA's conv_templates, as train (default: ${DEFAULT-VALUE})") String version;
    @Option(names = "--model_max_length", defaultValue = "2048", description = "default: ${DEFAULT-VALUE}") int maxLength;
    @Option(names = "--image_aspect_ratio", description = "square or pad (default: the config's image_aspect_ratio, else square)") String aspect;
    @Option(names = "--mm_projector_type", description = "as train, for a LLaMA folder with --vision_tower") String projectorType;
    @Option(names = "--mm_vision_select_layer", description = "as train") Integer selectLayer;
    @Option(names = "--mm_vision_select_feature", description = "as train: patch (default) or cls_patch (an image is one row longer)") String selectFeature;
    @Option(names = "--on_bad_sample", defaultValue = "error", description = "as train: error (default) or skip") String onBadSample;
    @Option(names = "--threads", description = "worker threads (default: the number of CPUs)") Integer threads;
    @Option(names = "--list", defaultValue = "50", description = "findings listed per class (default: ${DEFAULT-VALUE})") int list;
    @Option(names = "--report", description = "write every finding here (tab-separated: index, id, problem, effect, message)") Path report;

    @Override
    public Integer call() throws Exception {
        DataReport.OnBadSample policy = DataReport.OnBadSample.of(onBadSample);
        if (maxLength <= 0) throw new IllegalArgumentException("--model_max_length must be > 0, got " + maxLength);
        if (threads != null && threads < 1) throw new IllegalArgumentException("--threads must be >= 1, got " + threads);
        LlavaConfig.ProjectorSpec projector = LlavaConfig.ProjectorSpec.orDefaults(projectorType, selectLayer, selectFeature);
        LlavaTokenizer tok = Batches.preflight(model, visionTower, projector, maxLength);
        LlavaConfig cfg = LlavaConfig.load(model, visionTower, projector);
        cfg.checkFlags(visionTower, projectorType, selectLayer, selectFeature);
        DataReport r = Batches.validate(tok, model, cfg, data, imageFolder, version, aspect, maxLength,
                threads != null ? threads : Runtime.getRuntime().availableProcessors());
        System.out.print(r.render(list));
        if (report != null) {
            r.write(report);
            System.out.println("every finding: " + report);
        } else if (r.truncatedAt(list)) {
            System.out.println("(--report FILE lists every finding)");
        }
        try {
            int keep = r.forTraining(policy).size();
            System.out.println("training would use " + keep + " of " + r.records() + " records");
            return 0;
        } catch (io.llava4j.data.DataException e) {
            System.err.println("error: " + e.getMessage());
            return 1;
        }
    }
}
