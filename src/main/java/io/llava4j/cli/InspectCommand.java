package io.llava4j.cli;

import io.llava4j.model.Checkpoints;
import io.llava4j.model.Llava;
import io.llava4j.train.ModuleGroups;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/** {@code llava4j inspect}: the layout found and the parameter count of each module. */
@Command(name = "inspect", mixinStandardHelpOptions = true,
        description = "Print a model folder's layout, config and parameter counts (vision, projector, LLM).")
public class InspectCommand implements Callable<Integer> {
    private static final java.util.Map<String, String> LLM_NAMES = java.util.Map.of("llama", "LLaMA", "vicuna", "LLaMA",
            "mistral", "Mistral", "qwen2", "Qwen2");
    @picocli.CommandLine.Mixin DeviceOption device = new DeviceOption();
    @Option(names = "--model_name_or_path", required = true, description = "HF model folder") Path model;
    @Option(names = "--vision_tower", description = "CLIP folder (original LLaVA / plain LLaMA folders)") Path visionTower;
    @picocli.CommandLine.Mixin PrecisionOption precisionOption = new PrecisionOption();

    @Override
    public Integer call() {
        device.apply();
        io.llava4j.nn.Precision precision = precisionOption.precision();
        Checkpoints.Loaded l = Checkpoints.load(model, visionTower, null, precision);
        Llava m = l.model();
        var c = m.config;
        System.out.printf("folder:    %s%n", l.folder());
        System.out.printf("layout:    %s (%s config)%n", l.layout(), c.family());
        System.out.printf("vision:    %s %d layers, width %d, %dx%d px, patch %d%s%n", c.vision().isSiglip() ? "SigLIP" : "CLIP",
                c.vision().numHiddenLayers(),
                c.vision().hiddenSize(), c.vision().imageSize(), c.vision().imageSize(), c.vision().patchSize(),
                c.visionTowerFolder() == null ? "" : " (" + c.visionTowerFolder() + ")");
        System.out.printf("features:  layer %d, strategy %s, %d rows per %s%n", c.visionFeatureLayer(),
                c.visionFeatureSelectStrategy(), c.imageFeatureTokens(), c.anyres() == null ? "image" : "tile");
        if (c.anyres() != null)
            System.out.printf("anyres:    a base tile + a grid of tiles over %d pinpoints, image_newline after each row%s%n",
                    c.anyres().pinpointsHW().size(), c.anyres().maxN() == null ? "" : "; grid features downsampled above " + c.anyres().maxN() + " tiles");
        System.out.printf("projector: %s%n", c.projectorType());
        System.out.printf("llm:       %s %d layers, width %d, heads %d/%d kv, vocab %d, rope_theta %s%s%n",
                LLM_NAMES.getOrDefault(c.text().modelType(), "LLaMA"), c.text().numHiddenLayers(), c.text().hiddenSize(), c.text().numAttentionHeads(), c.text().numKeyValueHeads(),
                c.text().vocabSize(), c.text().ropeTheta(), c.text().tieWordEmbeddings() ? ", tied embeddings (a stored lm_head copy is ignored, not counted)" : "");
        System.out.printf("image token index: %d%n%n", c.imageTokenIndex());
        long total = 0;
        System.out.printf("%-13s %15s%n", "module", "parameters");
        for (var e : ModuleGroups.moduleCounts(m).entrySet()) {
            System.out.printf("%-13s %,15d%n", e.getKey(), e.getValue());
            total += e.getValue();
        }
        System.out.printf("%-13s %,15d%n", "total", total);
        long bytes = io.llava4j.engine.Tensors.parameterBytes(m);
        System.out.printf("%nprecision: %s%nweights in memory: %.1f MiB%n", precision.describe(), bytes / 1048576.0);
        return 0;
    }
}
