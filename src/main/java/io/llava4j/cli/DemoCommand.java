package io.llava4j.cli;

import io.llava4j.engine.Engine;
import io.llava4j.demo.Demo;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/** {@code llava4j demo}: trains a LLaVA from nothing on ShapesWorld, in both stages, and reports what freezing the LLM buys. */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = "Make a synthetic ShapesWorld, pre-train a tiny LLaMA and CLIP on it, run LLaVA's stage 1 (LLM frozen), "
                + "its ablation (LLM unfrozen; 10x learning rate) and stage 2, evaluate by generation, write report.md/report.json.")
public class DemoCommand implements Callable<Integer> {
    @Option(names = "--output_dir", defaultValue = "runs/demo", description = "where models, data and the report go (default: ${DEFAULT-VALUE})") Path output;
    @Option(names = "--quick", description = "the CI-sized run (a few minutes)") boolean quick;
    @Option(names = "--seed", defaultValue = "42", description = "world, initialisation and data order (default: ${DEFAULT-VALUE})") long seed;
    @Option(names = "--threads", description = "libtorch and OpenBLAS threads (default: OMP_NUM_THREADS if set, else 1: the demo's "
            + "tensors are tiny, and on a shared machine threads that wait on each other made steps up to 10x slower)") Integer threads;
    @Option(names = "--setting", hidden = true, description = "lab switch: FIELD=VALUE replaces one of the demo's settings (Demo.Settings) for this run")
    java.util.List<String> settingOverrides = new java.util.ArrayList<>();

    @Override
    public Integer call() throws Exception {
        Demo.Settings settings = quick ? Demo.Settings.QUICK : Demo.Settings.FULL;
        if (!settingOverrides.isEmpty()) {
            java.util.Map<String, String> fields = new java.util.LinkedHashMap<>();
            for (String o : settingOverrides) {
                String[] kv = o.split("=", 2);
                if (kv.length != 2) throw new IllegalArgumentException("--setting wants FIELD=VALUE, got " + o);
                fields.put(kv[0], kv[1]);
            }
            fields.put("name", settings.name() + " (" + String.join(", ", settingOverrides) + ")");
            settings = settings.with(fields);
        }
        if (threads == null && System.getenv("OMP_NUM_THREADS") == null) threads = 1;
        if (threads != null) Engine.setThreads(threads, "--threads");
        var report = new Demo(settings, output, seed, Progress::new, TrainCommand::parse).run();
        var bars = report.get("bars");
        var s1 = report.get("stage1");
        var s2 = report.get("stage2");
        var ppl = report.get("text_ppl");
        System.out.printf("demo (%s) done in %.1f min: stage-2 VQA test %.3f, validation %.3f, novel combinations %.3f (validation-novel %.3f); "
                        + "frozen stage-1 captions test %.3f (best constant caption %.3f); text ppl %.4f before / %.4f after frozen stage 1 / "
                        + "%.4f after unfrozen%n",
                settings.name(), bars.get("minutes_total").asDouble(), s2.get("vqa_accuracy").asDouble(), s2.get("vqa_accuracy_val").asDouble(),
                s2.get("vqa_accuracy_novel").asDouble(), s2.get("vqa_accuracy_val_novel").asDouble(), s1.get("caption_accuracy").asDouble(), s1.get("caption_baseline").asDouble(),
                ppl.get("before").asDouble(), ppl.get("after_stage1").asDouble(), ppl.get("after_stage1_unfrozen").asDouble());
        System.out.println("by question type (test; margin over the best blind baseline): " + s2.get("vqa_accuracy_by_type")
                + "; " + s2.get("margin_over_blind_by_type"));
        System.out.println("overlap with training (from the files in world/): " + report.get("overlap"));
        System.out.println("report: " + output.resolve("report.md"));
        return 0;
    }
}
