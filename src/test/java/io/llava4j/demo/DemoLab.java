package io.llava4j.demo;

import io.llava4j.cli.Progress;
import io.llava4j.cli.TrainCommand;
import io.llava4j.config.VisionConfig;
import io.llava4j.data.ImageProcessor;
import io.llava4j.data.LlavaTokenizer;
import io.llava4j.engine.Engine;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Development loop for the demo's settings (not a test): {@code DemoLab [tower|full] out=DIR seed=S field=value ...}
 * overrides any {@link Demo.Settings} field of FULL (or of QUICK with {@code base=quick}). {@code tower} makes the world,
 * pre-trains only the CLIP tower and prints the {@link VisionProbe} readings of every layer; {@code full} runs the demo.
 * With {@code -Dllava4j.demo.terms=true} the tower's progress lines also show each loss term's mean (clip, region, kind,
 * colour, size; the word terms as weighted): a word term sitting at ln(values) (1.386 for kind) has not left its plateau.
 */
public final class DemoLab {
    public static void main(String[] args) throws Exception {
        String mode = args.length > 0 ? args[0] : "tower";
        Path out = Path.of(System.getProperty("llava4j.lab.dir", "target/demo-lab"));
        long seed = 42;
        Demo.Settings s = Demo.Settings.FULL;
        for (String a : args) if (a.equals("base=quick")) s = Demo.Settings.QUICK;
        java.util.Map<String, String> fields = new java.util.LinkedHashMap<>();
        for (int i = 1; i < args.length; i++) {
            String[] kv = args[i].split("=", 2);
            switch (kv[0]) {
                case "out" -> out = Path.of(kv[1]);
                case "seed" -> seed = Long.parseLong(kv[1]);
                case "base" -> {}
                default -> fields.put(kv[0], kv[1]);
            }
        }
        s = s.with(fields);
        System.out.println(s);
        Engine.init();
        long t0 = System.nanoTime();
        if (mode.equals("full")) {
            var r = new Demo(s, out, seed, Progress::new, TrainCommand::parse).run();
            System.out.println("stage1 " + r.get("stage1").get("caption_accuracy") + " base " + r.get("stage1").get("caption_baseline")
                    + " unfrozen " + r.get("stage1_unfrozen").get("caption_accuracy"));
            System.out.println("vqa " + r.get("stage2").get("vqa_accuracy") + " " + r.get("stage2").get("vqa_accuracy_by_type"));
            System.out.println("probe " + r.get("vision_probe").get("pretrained"));
            System.out.println("ppl " + r.get("text_ppl"));
            System.out.println("phases " + r.get("phases"));
            return;
        }
        WorldData world = WorldData.write(out.resolve("world"), seed, s.trainImages(), s.heldOutImages(), s.imageSize(), i -> {});
        Path tokDir = out.resolve("world/tokenizer");
        Files.createDirectories(tokDir);
        WorldText.writeTokenizer(tokDir);
        LlavaTokenizer tok = LlavaTokenizer.load(tokDir);
        if (mode.equals("llm")) { // pre-train the LLM only; how well it reads the true grid words
            var tc = new io.llava4j.config.TextConfig("llama", s.llmHidden(), s.llmHidden() * 8 / 3 / 16 * 16, s.llmLayers(), 4, 4, null,
                    tok.vocabSize(), 1e-5, 10000.0, 512, "silu", false, false, false, null, null, null);
            io.llava4j.model.Llama lm = new io.llava4j.model.Llama(tc);
            Pretraining.init(lm, seed);
            int steps = s.llmSteps();
            boolean composed = s.llmComposed();
            List<String> texts = WorldText.pretrainingText(world.split, seed, steps * s.llmBatch()).stream().map(WorldText.Doc::text).toList();
            Pretraining.Curve c = Pretraining.trainLlm(lm, tok, texts, s.llmBatch(), s.llmLr(), composed, () -> true, (i, loss) -> {
                if (i % Math.max(1, steps / 10) == 0) System.out.printf("  step %d loss %.4f (%.1f s)%n", i, loss, (System.nanoTime() - t0) / 1e9);
                if (!composed && i % Math.max(1, steps / 4) == 0 && i < steps)
                    System.out.println("  from grid words " + Evaluation.fromGridWords(lm, tok, world.scenes("val"), world.qa("val")));
            });
            System.out.printf("llm %.1f s%n", c.seconds());
            System.out.println("from grid words " + Evaluation.fromGridWords(lm, tok, world.scenes("val"), world.qa("val")));
            List<int[]> rp = new ArrayList<>();
            for (var sc : world.scenes("val")) rp.add(tok.encode(ShapesWorld.caption(sc, 0) + " a picture showing", true));
            List<String> caps = new ArrayList<>();
            for (int[] ids : Evaluation.textGreedy(lm, rp, 48, tok.tokenIdOf("\n"))) caps.add(tok.decode(ids, true).trim());
            for (int i = 0; i < 4; i++) System.out.println("  rephrase: " + ShapesWorld.caption(world.scenes("val").get(i), 0) + " => " + caps.get(i));
            System.out.println("rephrase caption accuracy " + Evaluation.captionAccuracy(world.scenes("val"), caps));
            return;
        }
        VisionConfig vc = Demo.visionConfig(s);
        Path clipDir = out.resolve("clip");
        Pretraining.saveClipVision(new io.llava4j.model.ClipVisionTower(vc), vc, clipDir);
        ImageProcessor proc = ImageProcessor.load(clipDir.resolve("preprocessor_config.json"));
        Pretraining.TowerData data = Pretraining.towerData(world, proc, tok, s.imageSize(), s.clipTwins(), s.clipRegions(), s.clipWords(), s.clipAttributeShapes(), seed + 4);
        System.out.printf("world + data %.1f s%n", (System.nanoTime() - t0) / 1e9);
        Pretraining.Clip clip = Demo.newClip(s, vc, tok.vocabSize(), seed + 1);
        long t1 = System.nanoTime();
        List<Double> tail = new ArrayList<>();
        int steps = s.clipSteps();
        Pretraining.Curve c = Pretraining.trainClip(clip, data, tok.pad(), steps, s.clipBatch(), s.clipAttributeBatch(), s.clipLr(), seed + 1, (i, loss) -> {
            tail.add(loss);
            if (i % Math.max(1, steps / 10) == 0) {
                double m = tail.stream().mapToDouble(Double::doubleValue).average().orElse(0);
                System.out.printf("  step %d loss %.4f (%.1f s)%s%n", i, m, (System.nanoTime() - t1) / 1e9, terms(clip.terms, tail.size()));
                tail.clear();
            }
        });
        System.out.printf("clip %.1f s (%.4f s/step), load %s%n", c.seconds(), c.seconds() / steps, Files.readString(Path.of("/proc/loadavg")).trim());
        for (int layer = 1; layer <= vc.numHiddenLayers(); layer++) {
            long t2 = System.nanoTime();
            var m = Demo.probe(clip.vision, data.anchorPixels(), world.train, layer);
            System.out.printf("probe layer %d%s: %s (%.1f s)%n", layer, layer == vc.numHiddenLayers() + 1 + s.selectLayer() ? " (selected)" : "", m, (System.nanoTime() - t2) / 1e9);
            System.out.printf("  val_novel (kind, colour) shapes: %s%n", Demo.novelProbe(clip.vision, proc, data.anchorPixels(), world, "val_novel", layer));
        }
    }

    /** The mean of each loss term since the last call (clip, region, kind, colour, size), and resets them. */
    private static String terms(double[] t, int n) {
        if (t == null) return "";
        StringBuilder b = new StringBuilder(" terms");
        for (int i = 0; i < t.length; i++) {
            b.append(String.format(" %.3f", t[i] / n));
            t[i] = 0;
        }
        return b.toString();
    }
}
