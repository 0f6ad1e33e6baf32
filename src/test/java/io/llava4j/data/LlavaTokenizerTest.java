package io.llava4j.data;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static io.llava4j.data.Fixtures.IMAGE_TOKEN;
import static org.junit.jupiter.api.Assertions.*;

class LlavaTokenizerTest {

    static LlavaTokenizer tok;

    @BeforeAll
    static void load() throws IOException {
        tok = LlavaTokenizer.load(Fixtures.MODEL);
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    @Test
    void specialTokensFromConfig() {
        assertEquals(1, tok.bos());
        assertEquals(2, tok.eos());
        assertEquals(0, tok.unk());
        assertEquals(0, tok.pad());
        assertEquals(1024, tok.vocabSize());
        assertEquals(IMAGE_TOKEN, tok.tokenIdOf("<image>"));
        assertEquals(259, tok.tokenIdOf("\u2581"));
        assertEquals(-1, tok.tokenIdOf("no such token"));
        assertTrue(tok.addsBos());
    }

    @Test
    void encodeWithAndWithoutBos() {
        assertArrayEquals(new int[]{1, 325, 458, 386}, tok.encode("a red circle", true));
        assertArrayEquals(new int[]{325, 458, 386}, tok.encode("a red circle", false));
        assertArrayEquals(new int[]{1}, tok.encode("", true));
        assertArrayEquals(new int[]{}, tok.encode("", false));
        // special tokens written in the text are recognised; the text after them gets its own "▁"
        assertArrayEquals(new int[]{1, 325, 2, 320}, tok.encode("a</s>USER:", true));
        // no truncation, whatever DJL's default
        String longText = "a ".repeat(700);
        assertEquals(701 + 1, tok.encode(longText, true).length);
    }

    @Test
    void decode() {
        int[] ids = tok.encode("a red circle é", true);
        assertEquals("a red circle é", tok.decode(ids, true));
        assertEquals("<s> a red circle é", tok.decode(ids));
        assertThrows(IllegalArgumentException.class, () -> tok.decode(new int[]{1, -200}));
    }

    @Test
    void imageTokenFirstMiddleLastNoneTwice() {
        // expected ids from llava_ref.image_token_ids with toy_tokenizer.Encoder
        assertArrayEquals(new int[]{1, 1023, 259, 13, 71, 272, 281, 285, 282, 283, 279, 272, 471, 419, 294, 277, 289, 272,
                356, 282, 283, 272, 284, 286, 295, 287}, LlavaTokenizer.tokenizerImageToken(tok, "<image>\nDescribe the image briefly.", IMAGE_TOKEN));
        assertArrayEquals(new int[]{1, 259, 275, 272, 266, 267, 272, 282, 325, 378, 286, 272, 277, 282, 1023, 259, 459, 290, 294,
                294, 277, 282, 295}, LlavaTokenizer.tokenizerImageToken(tok, "Render a clear<image> summary", IMAGE_TOKEN));
        assertArrayEquals(new int[]{1, 325, 458, 386, 13, 1023},
                LlavaTokenizer.tokenizerImageToken(tok, "a red circle\n<image>", IMAGE_TOKEN));
        assertArrayEquals(new int[]{1, 259, 266, 269, 419, 294, 277, 289, 272, 412, 282, 272},
                LlavaTokenizer.tokenizerImageToken(tok, "no image here", IMAGE_TOKEN));
        assertArrayEquals(new int[]{1, 1023}, LlavaTokenizer.tokenizerImageToken(tok, "<image>", IMAGE_TOKEN));
        assertArrayEquals(new int[]{1, 487, 1023, 410, 1023}, LlavaTokenizer.tokenizerImageToken(tok, "two<image>green<image>", IMAGE_TOKEN));
        // original LLaVA's IMAGE_TOKEN_INDEX
        assertArrayEquals(new int[]{1, -200}, LlavaTokenizer.tokenizerImageToken(tok, "<image>", -200));
    }

    @Test
    void configVariants(@TempDir Path dir) throws IOException {
        Files.copy(Fixtures.MODEL.resolve("tokenizer.json"), dir.resolve("tokenizer.json"));
        // no tokenizer_config.json: LlamaTokenizer's defaults
        try (LlavaTokenizer t = LlavaTokenizer.load(dir)) {
            assertEquals(1, t.bos());
            assertEquals(2, t.eos());
            assertEquals(0, t.pad());
            assertArrayEquals(new int[]{1, 325}, t.encode("a", true));
        }
        // AddedToken objects, explicit pad, no BOS, EOS added
        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"add_bos_token\": false, \"add_eos_token\": true,"
                + " \"bos_token\": {\"__type\": \"AddedToken\", \"content\": \"<s>\"}, \"eos_token\": \"</s>\","
                + " \"unk_token\": \"<unk>\", \"pad_token\": \"</s>\"}");
        try (LlavaTokenizer t = LlavaTokenizer.load(dir)) {
            assertEquals(2, t.pad());
            assertFalse(t.addsBos());
            assertArrayEquals(new int[]{325, 2}, t.encode("a", true));
            // without BOS, tokenizer_image_token keeps every chunk whole (offset 0)
            assertArrayEquals(new int[]{325, 2, 1023, 458, 2}, LlavaTokenizer.tokenizerImageToken(t, "a<image>red", 1023));
        }
        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"pad_token\": \"<pad>\"}");
        DataException e = assertThrows(DataException.class, () -> LlavaTokenizer.load(dir));
        assertTrue(e.getMessage().contains("tokenizer_config.json") && e.getMessage().contains("pad_token"), e.getMessage());
    }

    @Test
    void missingTokenizerJson(@TempDir Path dir) {
        DataException e = assertThrows(DataException.class, () -> LlavaTokenizer.load(dir));
        assertTrue(e.getMessage().contains("tokenizer.json"), e.getMessage());
    }
}
