package io.llava4j.demo;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** The tower's attribute-only shapes hold no (kind, colour) pair and no novel (kind, position) pair, and teach only what they show. */
class AttributeShapesTest {
    @Test
    void eachShapeShowsOneOfKindAndColourAndNoneANovelPlace() {
        List<AttributeShapes.Image> images = AttributeShapes.draw(new Random(1), 3000);
        int kindOnly = 0, colourOnly = 0;
        int[] colours = new int[ShapesWorld.COLOURS.size()], kinds = new int[ShapesWorld.KINDS.size()];
        for (AttributeShapes.Image im : images) {
            assertTrue(im.shapes().size() >= 1 && im.shapes().size() <= 3);
            for (AttributeShapes.Shape s : im.shapes()) {
                long[] t = s.targets();
                if (s.showsKind()) {
                    kindOnly++;
                    kinds[s.kind()]++;
                    assertEquals(-1, s.colour(), s.toString());
                    assertFalse(Split.novelPlace(s.kind(), s.position()), s.toString());
                    assertEquals(s.kind(), t[0]);
                    assertEquals(-100, t[1], "a kind-only shape teaches no colour");
                } else {
                    colourOnly++;
                    colours[s.colour()]++;
                    assertEquals(-1, s.kind(), s.toString());
                    assertEquals(-100, t[0], "a colour-only shape teaches no kind");
                    assertEquals(s.colour(), t[1]);
                }
                assertEquals(s.size(), t[2]);
            }
        }
        assertTrue(kindOnly > 2500 && colourOnly > 2500, kindOnly + " / " + colourOnly);
        for (int c : colours) assertTrue(c > 300, "every world colour, purple and orange included, on shapes of no kind");
        for (int k : kinds) assertTrue(k > 400, "every kind in colours of no name");
    }

    @Test
    void kindOnlyShapesAreDrawnInNoWorldColour() {
        // a kind-only shape alone in the middle: its pixels are far from every world colour
        AttributeShapes.Image im = new AttributeShapes.Image(List.of(new AttributeShapes.Shape(0, 2, -1, -1, 1, 1)), 5);
        BufferedImage img = AttributeShapes.render(im, 48);
        int centre = img.getRGB(24, 24);
        int[] rgb = {(centre >> 16) & 255, (centre >> 8) & 255, centre & 255};
        for (int c = 0; c < ShapesWorld.COLOURS.size(); c++) {
            int[] w = ShapesWorld.rgb(c);
            int d = Math.abs(rgb[0] - w[0]) + Math.abs(rgb[1] - w[1]) + Math.abs(rgb[2] - w[2]);
            assertTrue(d > 120, "the cyan circle's centre " + java.util.Arrays.toString(rgb) + " is near " + ShapesWorld.COLOURS.get(c));
        }
    }

    @Test
    void theWrittenShapesAreCountedWhereOneWouldBeANovelPair(@TempDir Path dir) throws Exception {
        WorldData w = WorldData.write(dir, 11, 200, 20, 48, i -> {});
        w.writeLlmText(WorldText.pretrainingText(w.split, 11, 200));
        w.writePplText(WorldText.heldOutText(w.scenes("test"), 14, 20));
        Pretraining.writeCaptions(Pretraining.towerScenes(w, true, 15), w.train.size(), dir.resolve("clip_captions.jsonl"));
        Path file = dir.resolve("tower_attribute_shapes.jsonl");
        AttributeShapes.write(AttributeShapes.draw(new Random(2), 500), file);
        JsonNode first = new ObjectMapper().readTree(Files.readAllLines(file).get(0));
        assertEquals(2, first.get("shapes").get(0).get("labels").size());
        assertEquals(0L, Overlap.count(dir).get("novel_pairs_in_training"));
        Files.writeString(file, "{\"image\":\"attribute x\",\"shapes\":[{\"shape\":\"circle\",\"colour\":\"purple\",\"size\":\"small\","
                + "\"position\":\"left\",\"labels\":[\"kind\",\"size\"]},{\"shape\":\"square\",\"colour\":\"white\",\"size\":\"small\","
                + "\"position\":\"right\",\"labels\":[\"kind\",\"size\"]}]}\n", StandardOpenOption.APPEND);
        Map<String, Long> counts = Overlap.count(dir);
        assertEquals(2L, counts.get("novel_pairs_in_training"), counts.toString());
    }
}
