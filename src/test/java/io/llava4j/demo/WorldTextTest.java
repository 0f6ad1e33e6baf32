package io.llava4j.demo;

import io.llava4j.data.Conversation;
import io.llava4j.data.LlavaRecord;
import io.llava4j.data.LlavaTokenizer;
import io.llava4j.demo.ShapesWorld.Scene;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** The world's word-level tokenizer works with LLaVA's data pipeline; captions read back to their scene. */
class WorldTextTest {
    @Test
    void tokenizerCoversTheWorldAndLlavaTemplatesMaskAsLlava(@TempDir Path dir) throws Exception {
        WorldText.writeTokenizer(dir);
        try (LlavaTokenizer tok = LlavaTokenizer.load(dir)) {
            assertEquals(1, tok.bos());
            assertEquals(2, tok.eos());
            assertEquals(0, tok.pad());
            Random r = new Random(1);
            for (int i = 0; i < 300; i++) {
                String doc = WorldText.document(r);
                int[] ids = tok.encode(doc, true);
                assertEquals(1, ids[0]);
                for (int id : ids) assertNotEquals(0, id, "unknown word in: " + doc);
                assertEquals(WorldText.pieces(doc.replace("</s>", " ")).size() + 1 + (int) doc.chars().filter(c -> c == '/').count(),
                        ids.length, doc);
            }
            assertEquals(List.of("USER", ":", "red", "\n", "what"), tok.tokens("USER: red\nwhat"));
            int[] ids = tok.encode("yes</s>USER", false);
            assertEquals(3, ids.length);
            assertEquals(2, ids[1]);
            Scene s = ShapesWorld.scene(new Random(3));
            LlavaRecord rec = new LlavaRecord("t", 0, "x", "a.png", List.of(new LlavaRecord.Turn("human", "<image>\n" + "how many shapes are there ?"),
                    new LlavaRecord.Turn("gpt", "two"), new LlavaRecord.Turn("human", "is there a red circle ?"), new LlavaRecord.Turn("gpt", "no")));
            Conversation c = new Conversation(Conversation.Template.VICUNA_V1, tok, -200);
            Conversation.Tokenized t = c.tokenize(rec, 2048);
            assertNull(t.warning(), t.warning());
            StringBuilder sup = new StringBuilder();
            for (int i = 0; i < t.labels().length; i++) if (t.labels()[i] >= 0) sup.append(tok.decode(new int[]{t.labels()[i]})).append(' ');
            assertEquals(": two </s> : no </s>", sup.toString().trim(), "LLaVA's -2 leaves the ':' before the answer supervised with a word-level tokenizer");
        }
    }

    @Test
    void gridWordsAreOneTokenPerCellAndComposeFromTheirParts(@TempDir Path dir) throws Exception {
        WorldText.writeTokenizer(dir);
        try (LlavaTokenizer tok = LlavaTokenizer.load(dir)) {
            Random r = new Random(5);
            for (int i = 0; i < 200; i++) {
                Scene s = ShapesWorld.scene(r);
                String[] cells = ShapesWorld.grid(s).split(" ");
                assertEquals(9, cells.length);
                int filled = 0;
                for (String c : cells) if (!c.equals(ShapesWorld.EMPTY_CELL)) filled++;
                assertEquals(s.objects().size(), filled);
                for (ShapesWorld.Obj o : s.objects()) assertEquals(ShapesWorld.cellWord(o), cells[o.row() * 3 + o.position()]);
                int[] ids = tok.encode(ShapesWorld.grid(s), false);
                assertEquals(9, ids.length, "one token per cell");
                for (int id : ids) assertNotEquals(0, id);
            }
            int v = tok.vocabSize();
            float[] m = io.llava4j.engine.Tensors.toFloats(Pretraining.composition(tok, v));
            int w = tok.tokenIdOf("left_small_red_circle"), red = tok.tokenIdOf("red"), circle = tok.tokenIdOf("circle");
            assertEquals(0f, m[w * v + w]);
            assertEquals(0.5f, m[w * v + red]);
            assertEquals(0.5f, m[w * v + circle]);
            assertEquals(1f, m[red * v + red], "other words keep their own embedding");
            float rowSum = 0;
            for (int j = 0; j < v; j++) rowSum += m[w * v + j];
            assertEquals(2f, rowSum, "four parts, halved");
        }
    }

    @Test
    void everyPhrasingParsesBackToItsScene() {
        Random r = new Random(7);
        for (int i = 0; i < 500; i++) {
            Scene s = ShapesWorld.scene(r);
            for (int k = 0; k < ShapesWorld.PHRASINGS; k++) {
                String cap = ShapesWorld.caption(s, k);
                assertEquals(1.0, ShapesWorld.captionAccuracy(s, ShapesWorld.parseCaption(cap)), cap);
            }
        }
        Scene s = ShapesWorld.scene(new Random(1));
        assertEquals(0.0, ShapesWorld.captionAccuracy(s, ShapesWorld.parseCaption("nothing here .")));
    }
}
