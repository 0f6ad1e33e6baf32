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
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.IntConsumer;

/**
 * The files of one ShapesWorld, split by content ({@link Split}): PNGs under {@code images/{train,val,test,novel,val_novel}/},
 * {@code scenes.jsonl} (one line per image: its path under {@code images/}, its split and its objects), stage-1
 * image–caption pairs in LCS-558K's JSON ({@code stage1.json}), multi-turn instruction data in llava_v1_5_mix665k's JSON
 * ({@code stage2.json}), and per held-out split ({@code val}, {@code test}, {@code novel}, {@code val_novel})
 * {@code <split>_captions.json} and {@code <split>_vqa.json} (one question of each type per image; on a novel or
 * validation-novel image each asks about its novel shape).
 */
public final class WorldData {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final List<String> INSTRUCTIONS = List.of("Describe the image concisely.", "Give a brief description of the image.",
            "Summarize the visual content of the image.", "What is in the photo?", "Render a clear and concise summary of the photo.");
    /** The held-out splits, in the order their questions are drawn; settings are chosen on val and val_novel. */
    public static final List<String> HELD_OUT = List.of("val", "test", "novel", "val_novel");

    public final Path dir, images, stage1, stage2;
    public final Split split;
    public final List<Scene> train;
    /** Per training image, the questions of its stage-2 conversation. */
    public final List<List<Qa>> trainQa;
    /** Per training image, the caption stage 1 trains on. */
    public final List<String> trainCaptions;
    /** Per held-out split ("val", "test", "novel", "val_novel"): its scenes, and per image one question of each type. */
    private final Map<String, List<Scene>> heldOut;
    private final Map<String, List<List<Qa>>> heldOutQa;

    private WorldData(Path dir, Split split, List<Scene> train, List<List<Qa>> trainQa, List<String> trainCaptions,
                      Map<String, List<List<Qa>>> heldOutQa) {
        this.dir = dir;
        this.images = dir.resolve("images");
        this.stage1 = dir.resolve("stage1.json");
        this.stage2 = dir.resolve("stage2.json");
        this.split = split;
        this.train = train;
        this.trainQa = trainQa;
        this.trainCaptions = trainCaptions;
        this.heldOut = Map.of("val", split.val, "test", split.test, "novel", split.novel, "val_novel", split.valNovel);
        this.heldOutQa = heldOutQa;
    }

    public List<Scene> scenes(String part) {
        return heldOut.get(part);
    }

    public List<List<Qa>> qa(String part) {
        return heldOutQa.get(part);
    }

    public static String trainImage(int i) {
        return image("train", i);
    }

    public static String image(String part, int i) {
        return String.format("%s/%05d.png", part, i);
    }

    /**
     * Makes and writes the world of {@code seed}: {@code nTrain} training images and {@code nHeldOut} images in each of
     * validation, test, novel and validation-novel.
     */
    public static WorldData write(Path dir, long seed, int nTrain, int nHeldOut, int imageSize, IntConsumer progress) throws IOException {
        Split split = new Split(seed, nHeldOut, nHeldOut, nHeldOut, nHeldOut);
        Random sceneRandom = new Random(seed), textRandom = new Random(seed ^ 0x5DEECE66DL), qaRandom = new Random(seed + 7);
        List<Scene> train = new ArrayList<>();
        for (int i = 0; i < nTrain; i++) train.add(split.trainingScene(sceneRandom));
        Map<String, List<Scene>> parts = new LinkedHashMap<>();
        parts.put("train", train);
        parts.put("val", split.val);
        parts.put("test", split.test);
        parts.put("novel", split.novel);
        parts.put("val_novel", split.valNovel);
        int done = 0;
        StringBuilder scenesJsonl = new StringBuilder();
        for (Map.Entry<String, List<Scene>> e : parts.entrySet()) {
            Files.createDirectories(dir.resolve("images").resolve(e.getKey()));
            for (int i = 0; i < e.getValue().size(); i++) {
                ShapesWorld.writePng(e.getValue().get(i), imageSize, dir.resolve("images").resolve(image(e.getKey(), i)));
                scenesJsonl.append(JSON.writeValueAsString(sceneLine(image(e.getKey(), i), e.getKey(), e.getValue().get(i)))).append('\n');
                progress.accept(++done);
            }
        }
        JsonFiles.writeText(dir.resolve("scenes.jsonl"), scenesJsonl.toString());

        ArrayNode s1 = JSON.createArrayNode(), s2 = JSON.createArrayNode();
        List<String> captions = new ArrayList<>();
        List<List<Qa>> trainQa = new ArrayList<>();
        for (int i = 0; i < nTrain; i++) {
            Scene s = train.get(i);
            String cap = ShapesWorld.caption(s, ShapesWorld.LIST_PHRASING);
            captions.add(cap);
            String instr = INSTRUCTIONS.get(textRandom.nextInt(INSTRUCTIONS.size()));
            s1.add(record("train-" + i, trainImage(i), List.of(
                    textRandom.nextBoolean() ? "<image>\n" + instr : instr + "\n<image>", cap)));
            List<String> turns = new ArrayList<>();
            List<Qa> qas = WorldText.questions(s, 3, textRandom, Split::askable);
            trainQa.add(qas);
            for (int k = 0; k < qas.size(); k++) {
                turns.add(k == 0 ? "<image>\n" + qas.get(k).question() : qas.get(k).question());
                turns.add(qas.get(k).answer());
            }
            s2.add(record("train-" + i, trainImage(i), turns));
        }
        JsonFiles.write(dir.resolve("stage1.json"), s1);
        JsonFiles.write(dir.resolve("stage2.json"), s2);

        Map<String, List<List<Qa>>> heldOutQa = new LinkedHashMap<>();
        for (String part : HELD_OUT) {
            List<Scene> scenes = parts.get(part);
            ArrayNode tc = JSON.createArrayNode(), tv = JSON.createArrayNode();
            List<List<Qa>> partQa = new ArrayList<>();
            for (int i = 0; i < scenes.size(); i++) {
                Scene s = scenes.get(i);
                tc.add(record(part + "-" + i, image(part, i), List.of("<image>\n" + INSTRUCTIONS.get(0), ShapesWorld.caption(s, 0))));
                int about = split.novelShape(part, i);
                List<Qa> qas = new ArrayList<>();
                for (String type : ShapesWorld.QA_TYPES) qas.add(ShapesWorld.question(s, type, qaRandom, about, (k, c) -> true));
                partQa.add(qas);
                for (int k = 0; k < qas.size(); k++) {
                    ObjectNode r = record(part + "-" + i + "-" + k, image(part, i), List.of("<image>\n" + qas.get(k).question(), qas.get(k).answer()));
                    r.put("question_type", qas.get(k).type());
                    tv.add(r);
                }
            }
            heldOutQa.put(part, partQa);
            JsonFiles.write(dir.resolve(part + "_captions.json"), tc);
            JsonFiles.write(dir.resolve(part + "_vqa.json"), tv);
        }
        return new WorldData(dir, split, train, trainQa, captions, heldOutQa);
    }

    /** A line of scenes.jsonl: {"image", "split", "objects": [{"kind", "colour", "size", "position"}, …]}. */
    static ObjectNode sceneLine(String image, String part, Scene s) {
        ObjectNode n = JSON.createObjectNode();
        n.put("image", image);
        n.put("split", part);
        ArrayNode objs = n.putArray("objects");
        for (ShapesWorld.Obj o : s.objects())
            objs.addObject().put("kind", o.kindName()).put("colour", o.colourName()).put("size", o.sizeName()).put("position", o.positionName());
        return n;
    }

    /** Writes the LLM's pre-training documents to llm_text.jsonl, {"kind", "text"} per line. */
    public void writeLlmText(List<WorldText.Doc> docs) throws IOException {
        StringBuilder b = new StringBuilder();
        for (WorldText.Doc d : docs) b.append(JSON.writeValueAsString(JSON.createObjectNode().put("kind", d.kind()).put("text", d.text()))).append('\n');
        JsonFiles.writeText(dir.resolve("llm_text.jsonl"), b.toString());
    }

    /** Writes the perplexity documents to ppl_heldout.jsonl, {"text"} per line. */
    public void writePplText(List<String> docs) throws IOException {
        StringBuilder b = new StringBuilder();
        for (String d : docs) b.append(JSON.writeValueAsString(JSON.createObjectNode().put("text", d))).append('\n');
        JsonFiles.writeText(dir.resolve("ppl_heldout.jsonl"), b.toString());
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
