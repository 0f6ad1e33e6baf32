package io.llava4j.generate;

import io.llava4j.TestData;
import io.llava4j.data.LlavaTokenizer;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Streamed pieces add up to the decoded text, and no piece ends inside a UTF-8 sequence of byte-fallback tokens. */
class TextStreamTest {
    @Test
    void piecesAddUpToTheText() throws Exception {
        try (LlavaTokenizer tok = LlavaTokenizer.load(TestData.tinyLlava())) {
            String text = "A red circle, héllo 世界 — done.";
            int[] ids = tok.encode(text, false);
            TextStream s = new TextStream(tok);
            StringBuilder out = new StringBuilder();
            int pieces = 0;
            for (int id : ids) {
                String p = s.push(id);
                assertFalse(p.contains("\uFFFD"), "piece with a broken character: " + p);
                if (!p.isEmpty()) pieces++;
                out.append(p);
            }
            out.append(s.flush());
            assertEquals(tok.decode(ids, true), out.toString());
            assertTrue(pieces > 3);
            assertEquals(text, out.toString().strip());
            s.push(tok.eos());
            assertEquals("", s.flush(), "special tokens are not printed");
        }
    }
}
