package io.llava4j.demo;

import io.llava4j.data.ImageProcessor;
import io.llava4j.data.LlavaTokenizer;
import io.llava4j.demo.ShapesWorld.Qa;
import io.llava4j.demo.ShapesWorld.Scene;
import io.llava4j.engine.Engine;
import io.llava4j.model.Checkpoints;
import io.llava4j.model.Llava;
import org.bytedeco.pytorch.Tensor;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * Development tool (not a test): {@code DemoInspect RUN_DIR [seed] [train images] [test images]} (with
 * {@code -Dmodel=DIR} for another stage-2 folder) remakes the run's world, loads its stage-2 model and prints VQA accuracy
 * by type on held-out images, on training images, and with each question asked about the wrong image, then answers
 * beside the truth for a few images.
 */
public final class DemoInspect {
    public static void main(String[] args) throws Exception {
        Path run = Path.of(args[0]);
        long seed = args.length > 1 ? Long.parseLong(args[1]) : 42;
        int nTrain = args.length > 2 ? Integer.parseInt(args[2]) : Demo.Settings.FULL.trainImages();
        int nTest = args.length > 3 ? Integer.parseInt(args[3]) : Demo.Settings.FULL.heldOutImages();
        Engine.init();
        WorldData world = WorldData.write(java.nio.file.Files.createTempDirectory("demo-inspect"), seed, nTrain, nTest, Demo.Settings.FULL.imageSize(), i -> {});
        LlavaTokenizer tok = LlavaTokenizer.load(run.resolve("world/tokenizer"));
        Llava model = Checkpoints.load(Path.of(System.getProperty("model", run.resolve("models/stage2").toString()))).model();
        ImageProcessor proc = ImageProcessor.load(run.resolve("models/clip/preprocessor_config.json"));
        List<Tensor> testPx = new ArrayList<>(), trainPx = new ArrayList<>();
        for (int i = 0; i < nTest; i++) testPx.add(Evaluation.pixels(proc, world.images.resolve(WorldData.image("val", i))));
        for (int i = 0; i < nTest; i++) trainPx.add(Evaluation.pixels(proc, world.images.resolve(WorldData.trainImage(i))));
        Random r = new Random(7);
        List<List<Qa>> trainQa = new ArrayList<>();
        for (int i = 0; i < nTest; i++) {
            List<Qa> q = new ArrayList<>();
            for (String t : ShapesWorld.QA_TYPES) q.add(ShapesWorld.question(world.train.get(i), t, r));
            trainQa.add(q);
        }
        var ansTest = Evaluation.answers(model, tok, testPx, world.qa("val"), 48);
        var ansTrain = Evaluation.answers(model, tok, trainPx, trainQa, 48);
        System.out.println("test  " + Evaluation.vqaAccuracy(world.qa("val"), ansTest));
        System.out.println("train " + Evaluation.vqaAccuracy(trainQa, ansTrain));
        // shuffled images: answers to test questions with the wrong image
        List<Tensor> shuffled = new ArrayList<>(testPx);
        java.util.Collections.rotate(shuffled, 1);
        var ansShuf = Evaluation.answers(model, tok, shuffled, world.qa("val"), 48);
        System.out.println("wrong image " + Evaluation.vqaAccuracy(world.qa("val"), ansShuf));
        for (int i = 0; i < 12; i++) {
            Scene s = world.scenes("val").get(i);
            System.out.println("# " + ShapesWorld.caption(s, 2));
            for (int j = 0; j < world.qa("val").get(i).size(); j++) {
                Qa q = world.qa("val").get(i).get(j);
                System.out.printf("  %-50s exp=%-8s got=%-10s wrongimg=%s%n", q.question(), q.answer(), ansTest.get(i).get(j), ansShuf.get(i).get(j));
            }
        }
        // by question form and number of shapes, as GridQa tallies the LLM alone
        GridQa.printByKey(world.scenes("val"), world.qa("val"), ansTest, "by form ");
        // answer distribution for colour questions
        Map<String, Integer> dist = new java.util.TreeMap<>();
        for (int i = 0; i < nTest; i++) dist.merge(ansTest.get(i).get(0), 1, Integer::sum);
        System.out.println("colour answers " + dist);
    }
}
