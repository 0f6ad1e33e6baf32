package io.llava4j.demo;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.demo.ShapesWorld.Qa;
import io.llava4j.demo.ShapesWorld.Scene;
import io.llava4j.io.JsonFiles;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.IntConsumer;

/**
 * The files of one ShapesWorld: PNGs under {@code images/{train,test}/}, stage-1 image–caption pairs in LCS-558K's JSON
 * ({@code stage1.json}), multi-turn instruction data in llava_v1_5_mix665k's JSON ({@code stage2.json}), and the
 * held-out test split ({@code test_captions.json}, {@code test_vqa.json}, one question of each type per image).
 */
public final class WorldData {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final List<String> INSTRUCTIONS = List.of("Describe the image concisely.", "Give a brief description of the image.",
            "Summarize the visual content of the image.", "What is in the photo?", "Render a clear and concise summary of the photo.");

    public final Path dir, images, stage1, stage2;
    public final List<Scene> train, test;
    /** Per test image, one question of each type. */
    public final List<List<Qa>> testQa;
    /** Per training image, the caption stage 1 trains on. */
    public final List<String> trainCaptions;

    private WorldData(Path dir, List<Scene> train, List<Scene> test, List<List<Qa>> testQa, List<String> trainCaptions) {
        this.dir = dir;
        this.images = dir.resolve("images");
        this.stage1 = dir.resolve("stage1.json");
        this.stage2 = dir.resolve("stage2.json");
        this.train = train;
        this.test = test;
        this.testQa = testQa;
        this.trainCaptions = trainCaptions;
    }

    public static String trainImage(int i) {
        return String.format("train/%05d.png", i);
    }

    public static String testImage(int i) {
        return String.format("test/%05d.png", i);
    }

    /** Makes and writes the world of {@code seed}: {@code nTrain} training and {@code nTest} held-out images. */
    public static WorldData write(Path dir, long seed, int nTrain, int nTest, int imageSize, IntConsumer progress) throws IOException {
        Random sceneRandom = new Random(seed), textRandom = new Random(seed ^ 0x5DEECE66DL), testRandom = new Random(seed + 1);
        List<Scene> train = new ArrayList<>(), test = new ArrayList<>();
        for (int i = 0; i < nTrain; i++) train.add(ShapesWorld.scene(sceneRandom));
        for (int i = 0; i < nTest; i++) test.add(ShapesWorld.scene(testRandom));
        Files.createDirectories(dir.resolve("images/train"));
        Files.createDirectories(dir.resolve("images/test"));
        int done = 0;
        for (int i = 0; i < nTrain; i++) {
            ShapesWorld.writePng(train.get(i), imageSize, dir.resolve("images").resolve(trainImage(i)));
            progress.accept(++done);
        }
        for (int i = 0; i < nTest; i++) {
            ShapesWorld.writePng(test.get(i), imageSize, dir.resolve("images").resolve(testImage(i)));
            progress.accept(++done);
        }

        ArrayNode s1 = JSON.createArrayNode(), s2 = JSON.createArrayNode();
        List<String> captions = new ArrayList<>();
        for (int i = 0; i < nTrain; i++) {
            Scene s = train.get(i);
            String cap = ShapesWorld.caption(s, ShapesWorld.LIST_PHRASING);
            captions.add(cap);
            String instr = INSTRUCTIONS.get(textRandom.nextInt(INSTRUCTIONS.size()));
            s1.add(record("train-" + i, trainImage(i), List.of(
                    textRandom.nextBoolean() ? "<image>\n" + instr : instr + "\n<image>", cap)));
            List<String> turns = new ArrayList<>();
            List<Qa> qas = WorldText.questions(s, 3, textRandom);
            for (int k = 0; k < qas.size(); k++) {
                turns.add(k == 0 ? "<image>\n" + qas.get(k).question() : qas.get(k).question());
                turns.add(qas.get(k).answer());
            }
            s2.add(record("train-" + i, trainImage(i), turns));
        }
        JsonFiles.write(dir.resolve("stage1.json"), s1);
        JsonFiles.write(dir.resolve("stage2.json"), s2);

        ArrayNode tc = JSON.createArrayNode(), tv = JSON.createArrayNode();
        List<List<Qa>> testQa = new ArrayList<>();
        for (int i = 0; i < nTest; i++) {
            Scene s = test.get(i);
            tc.add(record("test-" + i, testImage(i), List.of("<image>\n" + INSTRUCTIONS.get(0), ShapesWorld.caption(s, 0))));
            List<Qa> qas = new ArrayList<>();
            for (String type : ShapesWorld.QA_TYPES) qas.add(ShapesWorld.question(s, type, testRandom));
            testQa.add(qas);
            for (int k = 0; k < qas.size(); k++) {
                ObjectNode r = record("test-" + i + "-" + k, testImage(i), List.of("<image>\n" + qas.get(k).question(), qas.get(k).answer()));
                r.put("question_type", qas.get(k).type());
                tv.add(r);
            }
        }
        JsonFiles.write(dir.resolve("test_captions.json"), tc);
        JsonFiles.write(dir.resolve("test_vqa.json"), tv);
        return new WorldData(dir, train, test, testQa, captions);
    }

    /** {id, image, conversations: [human, gpt, human, gpt, ...]} */
    private static ObjectNode record(String id, String image, List<String> turns) {
        ObjectNode r = JSON.createObjectNode();
        r.put("id", id);
        r.put("image", image);
        ArrayNode c = r.putArray("conversations");
        for (int i = 0; i < turns.size(); i++) c.addObject().put("from", i % 2 == 0 ? "human" : "gpt").put("value", turns.get(i));
        return r;
    }
}
