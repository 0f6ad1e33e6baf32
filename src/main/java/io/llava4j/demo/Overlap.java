package io.llava4j.demo;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.llava4j.demo.ShapesWorld.Obj;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * How much of the held-out content any training corpus holds, computed from the files of {@code world/} alone (what a
 * reviewer can check): {@code scenes.jsonl}, {@code clip_captions.jsonl}, {@code llm_text.jsonl},
 * {@code ppl_heldout.jsonl}, {@code stage1.json}, {@code stage2.json} and each held-out split's {@code <split>_vqa.json}.
 * A scene's content is its object list (kind, colour, size and position of each shape): read from scenes.jsonl for an
 * image, from its grid words for a document that has them, and from its caption otherwise. Every count is 0 when the
 * split holds.
 */
public final class Overlap {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern GRID_WORD = Pattern.compile("\\b(left|middle|right)_(small|large)_([a-z]+)_([a-z]+)\\b");
    private static final Pattern TURN = Pattern.compile("USER: (.*?) ASSISTANT: (.*?)</s>", Pattern.DOTALL);

    private Overlap() {}

    /** A (content, question, answer) triple. */
    private record Triple(List<Obj> scene, String question, String answer) {}

    /**
     * The counts, by name: per held-out split S (val, test, novel, val_novel) {@code S_scenes_in_training} (its scenes whose object
     * list is that of a training image, tower caption, stage-1 caption or LLM document), {@code S_scenes_as_llm_grid_documents}
     * (those written as grid words in the LLM's text), {@code S_qa_in_training} (its (content, question, answer) triples
     * also in stage 2 or in the LLM's chats); {@code ppl_documents_in_llm_text} (perplexity documents that are also
     * pre-training documents); {@code novel_pairs_in_training} (training shapes with a novel (kind, colour) or (kind,
     * position) pair, plus training lines naming a novel colour and kind together, plus the tower's attribute-only shapes
     * ({@code tower_attribute_shapes.jsonl}, where written) drawn as a novel pair).
     */
    public static Map<String, Long> count(Path world) throws IOException {
        Map<String, List<Obj>> imageScene = new HashMap<>();
        Map<String, List<List<Obj>>> byPart = new LinkedHashMap<>();
        for (String line : Files.readAllLines(world.resolve("scenes.jsonl"))) {
            if (line.isBlank()) continue;
            JsonNode n = JSON.readTree(line);
            List<Obj> objs = new ArrayList<>();
            for (JsonNode o : n.get("objects"))
                objs.add(new Obj(index(ShapesWorld.KINDS, o, "kind"), index(ShapesWorld.COLOURS, o, "colour"),
                        index(ShapesWorld.SIZES, o, "size"), index(ShapesWorld.POSITIONS, o, "position")));
            imageScene.put(n.get("image").asText(), objs);
            byPart.computeIfAbsent(n.get("split").asText(), k -> new ArrayList<>()).add(objs);
        }

        Set<List<Obj>> training = new HashSet<>(byPart.getOrDefault("train", List.of()));
        Set<List<Obj>> llmGrids = new HashSet<>();
        Set<Triple> trainingQa = new HashSet<>();
        List<String> trainingText = new ArrayList<>();
        for (String line : Files.readAllLines(world.resolve("clip_captions.jsonl"))) {
            if (line.isBlank()) continue;
            String caption = JSON.readTree(line).get("caption").asText();
            training.add(fromCaption(caption));
            trainingText.add(caption);
        }
        for (JsonNode r : JSON.readTree(world.resolve("stage1.json").toFile())) {
            String caption = r.get("conversations").get(1).get("value").asText();
            training.add(fromCaption(caption));
            trainingText.add(caption);
        }
        for (JsonNode r : JSON.readTree(world.resolve("stage2.json").toFile())) {
            List<Obj> scene = imageScene.get(r.get("image").asText());
            JsonNode c = r.get("conversations");
            for (int i = 0; i + 1 < c.size(); i += 2) {
                String q = question(c.get(i).get("value").asText());
                trainingQa.add(new Triple(scene, q, c.get(i + 1).get("value").asText()));
                trainingText.add(q);
            }
        }
        Set<String> llmTexts = new HashSet<>();
        for (String line : Files.readAllLines(world.resolve("llm_text.jsonl"))) {
            if (line.isBlank()) continue;
            String text = JSON.readTree(line).get("text").asText();
            llmTexts.add(text);
            trainingText.add(text);
            List<Obj> grid = fromGrid(text);
            List<Obj> scene = grid.isEmpty() ? fromCaption(text) : grid;
            training.add(scene);
            if (!grid.isEmpty()) llmGrids.add(grid);
            Matcher m = TURN.matcher(text);
            while (m.find()) trainingQa.add(new Triple(scene, question(m.group(1)), m.group(2).trim()));
        }

        Map<String, Long> out = new LinkedHashMap<>();
        for (String part : WorldData.HELD_OUT) {
            List<List<Obj>> scenes = byPart.getOrDefault(part, List.of());
            out.put(part + "_scenes_in_training", scenes.stream().filter(training::contains).count());
            out.put(part + "_scenes_as_llm_grid_documents", scenes.stream().filter(llmGrids::contains).count());
            long qa = 0;
            Path vqa = world.resolve(part + "_vqa.json");
            if (Files.exists(vqa))
                for (JsonNode r : JSON.readTree(vqa.toFile())) {
                    JsonNode c = r.get("conversations");
                    Triple t = new Triple(imageScene.get(r.get("image").asText()), question(c.get(0).get("value").asText()), c.get(1).get("value").asText());
                    if (trainingQa.contains(t)) qa++;
                }
            out.put(part + "_qa_in_training", qa);
        }
        long ppl = 0;
        for (String line : Files.readAllLines(world.resolve("ppl_heldout.jsonl")))
            if (!line.isBlank() && llmTexts.contains(JSON.readTree(line).get("text").asText())) ppl++;
        out.put("ppl_documents_in_llm_text", ppl);
        long novel = 0;
        for (List<Obj> scene : training) for (Obj o : scene) if (Split.novel(o)) novel++;
        for (String text : trainingText)
            for (int[] p : Split.NOVEL_KIND_COLOUR)
                if (text.contains(ShapesWorld.COLOURS.get(p[1]) + " " + ShapesWorld.KINDS.get(p[0]))) novel++;
        Path shapes = world.resolve("tower_attribute_shapes.jsonl");
        if (Files.exists(shapes))
            for (String line : Files.readAllLines(shapes)) {
                if (line.isBlank()) continue;
                for (JsonNode o : JSON.readTree(line).get("shapes")) {
                    int kind = ShapesWorld.KINDS.indexOf(o.path("shape").asText()), colour = ShapesWorld.COLOURS.indexOf(o.path("colour").asText());
                    int position = index(ShapesWorld.POSITIONS, o, "position");
                    if (kind >= 0 && (colour >= 0 && !Split.askable(kind, colour) || Split.novelPlace(kind, position))) novel++;
                }
            }
        out.put("novel_pairs_in_training", novel);
        return out;
    }

    /** The objects of the grid words in a text, by column (empty when it has none). */
    static List<Obj> fromGrid(String text) {
        Map<Integer, Obj> byColumn = new TreeMap<>();
        Matcher m = GRID_WORD.matcher(text);
        while (m.find()) {
            Obj o = new Obj(ShapesWorld.KINDS.indexOf(m.group(4)), ShapesWorld.COLOURS.indexOf(m.group(3)),
                    ShapesWorld.SIZES.indexOf(m.group(2)), ShapesWorld.POSITIONS.indexOf(m.group(1)));
            byColumn.putIfAbsent(o.position(), o);
        }
        return List.copyOf(byColumn.values());
    }

    /** The objects a caption (or a text of captions about one scene) names, by column. */
    static List<Obj> fromCaption(String text) {
        Map<Integer, Obj> byColumn = new TreeMap<>();
        for (ShapesWorld.Parsed p : ShapesWorld.parseCaption(text.replace("\n", " ")))
            byColumn.putIfAbsent(p.position(), new Obj(p.kind(), p.colour(), p.size(), p.position()));
        return List.copyOf(byColumn.values());
    }

    /** A user turn's question: its last line, without the image token. */
    private static String question(String turn) {
        String t = turn.replace("<image>", "").trim();
        return t.substring(t.lastIndexOf('\n') + 1).trim();
    }

    private static int index(List<String> values, JsonNode o, String key) {
        int i = values.indexOf(o.path(key).asText());
        if (i < 0) throw new IllegalArgumentException("scenes.jsonl: unknown " + key + " " + o.path(key));
        return i;
    }
}
