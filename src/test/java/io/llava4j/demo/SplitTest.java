package io.llava4j.demo;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.llava4j.demo.ShapesWorld.Obj;
import io.llava4j.demo.ShapesWorld.Scene;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/** The split by content: every corpus's files hold no held-out object list, novel pair or perplexity document, and a planted leak is counted. */
class SplitTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** A small world with every corpus written as the demo writes it. */
    private static WorldData world(Path dir) throws Exception {
        WorldData w = WorldData.write(dir, 11, 300, 40, 48, i -> {});
        w.writeLlmText(WorldText.pretrainingText(w.split, 11, 3000));
        w.writePplText(WorldText.heldOutText(w.scenes("test"), 14, 60));
        Pretraining.writeCaptions(Pretraining.towerScenes(w, true, 15), w.train.size(), dir.resolve("clip_captions.jsonl"));
        return w;
    }

    @Test
    void theWrittenCorporaHoldNoHeldOutContentAndAPlantedLeakIsCounted(@TempDir Path dir) throws Exception {
        WorldData w = world(dir);
        Map<String, Long> counts = Overlap.count(dir);
        assertEquals(14, counts.size(), counts.toString());
        counts.forEach((k, v) -> assertEquals(0L, v, k + " in " + counts));
        assertEquals(300 + 4 * 40, Files.readAllLines(dir.resolve("scenes.jsonl")).size());

        // a held-out scene as a pre-training document: its object list, its grid and its question are counted
        Scene test0 = w.scenes("test").get(0);
        ShapesWorld.Qa q = w.qa("test").get(0).get(0);
        append(dir.resolve("llm_text.jsonl"), "chat", "USER: " + ShapesWorld.grid(test0) + "\n" + q.question() + " ASSISTANT: " + q.answer() + "</s>");
        Map<String, Long> leaked = Overlap.count(dir);
        assertEquals(1L, leaked.get("test_scenes_in_training"), leaked.toString());
        assertEquals(1L, leaked.get("test_scenes_as_llm_grid_documents"), leaked.toString());
        assertEquals(1L, leaked.get("test_qa_in_training"), leaked.toString());
        assertEquals(0L, leaked.get("val_scenes_in_training"), leaked.toString());

        // a perplexity document in the pre-training text; a purple circle in the tower's captions
        String ppl = JSON.readTree(Files.readAllLines(dir.resolve("ppl_heldout.jsonl")).get(0)).get("text").asText();
        append(dir.resolve("llm_text.jsonl"), "caption", ppl);
        Files.writeString(dir.resolve("clip_captions.jsonl"), JSON.writeValueAsString(JSON.createObjectNode()
                .put("image", "twin of x").put("caption", "left : small purple circle .")) + "\n", StandardOpenOption.APPEND);
        leaked = Overlap.count(dir);
        assertEquals(1L, leaked.get("ppl_documents_in_llm_text"), leaked.toString());
        assertEquals(2L, leaked.get("novel_pairs_in_training"), leaked.toString() + ": the shape and the words");
    }

    @Test
    void trainingDrawsAvoidHeldOutListsAndNovelPairsThatPlainDrawsHit() {
        Split split = new Split(3, 120, 120, 120, 120);
        assertEquals(480, split.val.size() + split.test.size() + split.novel.size() + split.valNovel.size());
        for (int i = 0; i < split.novel.size(); i++) assertTrue(Split.novel(split.novel.get(i).objects().get(split.novelObject.get(i))));
        for (Scene s : split.val) assertTrue(s.objects().stream().noneMatch(Split::novel));
        Random plain = new Random(9), constrained = new Random(9);
        int plainHits = 0;
        for (int i = 0; i < 20000; i++) {
            if (!split.trainable(ShapesWorld.scene(plain))) plainHits++;
            Scene s = split.trainingScene(constrained);
            assertTrue(split.trainable(s), s.toString());
            for (Obj o : s.objects()) assertFalse(Split.novel(o));
            assertTrue(s.objects().size() >= 1 && s.objects().size() <= 3);
        }
        assertTrue(plainHits > 2000, "plain draws hit held-out content " + plainHits + " times");
        Random r = new Random(4);
        for (int i = 0; i < 2000; i++) {
            ShapesWorld.Qa q = ShapesWorld.question(split.trainingScene(r), "yes/no", r, -1, Split::askable);
            assertFalse(q.question().contains("purple circle") || q.question().contains("orange triangle"), q.question());
        }
    }

    @Test
    void validationNovelScenesAreNovelHeldOutAndDistinctFromEveryOtherSplit(@TempDir Path dir) throws Exception {
        Split split = new Split(3, 120, 120, 120, 120);
        assertEquals(120, split.valNovel.size());
        Set<List<Obj>> others = new HashSet<>();
        for (List<Scene> part : List.of(split.val, split.test, split.novel)) for (Scene s : part) others.add(s.objects());
        Set<List<Obj>> seen = new HashSet<>();
        int byColour = 0, byPosition = 0;
        for (int i = 0; i < split.valNovel.size(); i++) {
            Scene s = split.valNovel.get(i);
            Obj made = s.objects().get(split.valNovelObject.get(i));
            assertTrue(Split.novel(made), "validation-novel scene " + i + " asks about " + made);
            if (Split.askable(made.kind(), made.colour())) byPosition++;
            else byColour++;
            assertFalse(others.contains(s.objects()), "validation-novel scene " + i + " is also in another split: " + s.objects());
            assertTrue(seen.add(s.objects()), "validation-novel scene " + i + " repeats an object list");
            assertFalse(split.trainable(s), "a validation-novel scene may not occur in training");
        }
        assertTrue(byColour > 30 && byPosition > 20, "both kinds of novel pair: " + byColour + " / " + byPosition);
        // the other splits are the draws they were before validation-novel was added
        Split without = new Split(3, 120, 120, 120, 0);
        assertEquals(without.val, split.val);
        assertEquals(without.test, split.test);
        assertEquals(without.novel, split.novel);
        assertEquals(without.novelObject, split.novelObject);
        assertNotEquals(split.novel, split.valNovel);

        // written as the demo writes it, and counted: its questions ask about the novel shape, a planted leak is found
        WorldData w = world(dir);
        List<String> lines = Files.readAllLines(dir.resolve("scenes.jsonl"));
        assertEquals(40, lines.stream().filter(l -> l.contains("\"split\":\"val_novel\"")).count());
        assertTrue(Files.isRegularFile(dir.resolve("val_novel_vqa.json")) && Files.isRegularFile(dir.resolve("images/val_novel/00000.png")));
        for (int i = 0; i < w.scenes("val_novel").size(); i++) {
            Obj made = w.scenes("val_novel").get(i).objects().get(w.split.valNovelObject.get(i));
            ShapesWorld.Qa shape = w.qa("val_novel").get(i).get(ShapesWorld.QA_TYPES.indexOf("shape"));
            assertEquals(made.kindName(), shape.answer(), shape.question());
        }
        Scene leak = w.scenes("val_novel").get(0);
        append(dir.resolve("llm_text.jsonl"), "grid", ShapesWorld.grid(leak) + "\n" + ShapesWorld.caption(leak, ShapesWorld.LIST_PHRASING));
        Map<String, Long> leaked = Overlap.count(dir);
        assertEquals(1L, leaked.get("val_novel_scenes_in_training"), leaked.toString());
        assertEquals(1L, leaked.get("val_novel_scenes_as_llm_grid_documents"), leaked.toString());
        assertEquals(0L, leaked.get("novel_scenes_in_training"), leaked.toString());
    }

    private static void append(Path file, String kind, String text) throws Exception {
        Files.writeString(file, JSON.writeValueAsString(JSON.createObjectNode().put("kind", kind).put("text", text)) + "\n", StandardOpenOption.APPEND);
    }
}
