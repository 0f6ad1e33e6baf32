package io.llava4j.data;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.data.Conversation.Template;
import io.llava4j.data.Conversation.Tokenized;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A folder with only a SentencePiece {@code tokenizer.model}, run as LLaVA runs it (slow LlamaTokenizer, legacy true
 * or false), against ids made by the real sentencepiece library ({@code resources/sentencepiece/make_expected.py}).
 */
class SentencePieceTokenizerTest {
    static final Path SP = Path.of("src/test/resources/sentencepiece");
    static final int IMAGE_ID = 800; // <image>, added behind the 800 pieces as llava-hf's added_tokens_decoder does
    static JsonNode expected;

    @TempDir
    static Path tmp;

    @BeforeAll
    static void read() throws IOException {
        expected = Fixtures.json(SP.resolve("expected.json"));
    }

    /** A folder with tokenizer.model and a tokenizer_config.json (legacy, <image> added; null legacy = field absent). */
    static Path folder(String name, Boolean legacy) throws IOException {
        Path dir = Files.createDirectories(tmp.resolve(name));
        Files.copy(SP.resolve("tokenizer.model"), dir.resolve("tokenizer.model"));
        ObjectNode cfg = Fixtures.JSON.createObjectNode();
        cfg.put("tokenizer_class", "LlamaTokenizer").put("add_bos_token", true).put("add_eos_token", false)
                .put("bos_token", "<s>").put("eos_token", "</s>").put("unk_token", "<unk>").putNull("pad_token");
        if (legacy != null) cfg.put("legacy", legacy);
        ObjectNode image = cfg.putObject("added_tokens_decoder").putObject(String.valueOf(IMAGE_ID));
        image.put("content", "<image>").put("lstrip", false).put("rstrip", false).put("normalized", false)
                .put("single_word", false).put("special", true);
        Files.writeString(dir.resolve("tokenizer_config.json"), cfg.toPrettyString());
        return dir;
    }

    @Test
    void vocabularyIsTheModelsPiecesPlusAddedTokens() throws IOException {
        try (LlavaTokenizer tok = LlavaTokenizer.load(folder("vocab", true))) {
            JsonNode pieces = expected.get("pieces");
            assertEquals(expected.get("vocab_size").asInt(), pieces.size());
            for (int i = 0; i < pieces.size(); i++) assertEquals(i, tok.tokenIdOf(pieces.get(i).asText()), pieces.get(i).asText());
            assertEquals(IMAGE_ID, tok.tokenIdOf("<image>"));
            assertEquals(IMAGE_ID + 1, tok.vocabSize());
            assertEquals(0, tok.unk());
            assertEquals(1, tok.bos());
            assertEquals(2, tok.eos());
            assertEquals(0, tok.pad(), "pad_token null: pad with unk, as LLaVA does for v1");
        }
    }

    @Test
    void legacyIdsAreThoseOfLlamaTokenizerLegacy() throws IOException {
        try (LlavaTokenizer tok = LlavaTokenizer.load(folder("legacy", true))) {
            assertTrue(tok.legacy());
            for (JsonNode c : expected.get("cases")) {
                String text = c.get("text").asText();
                assertArrayEquals(Fixtures.ints(c.get("legacy")), tok.encode(text, false), text);
                int[] withBos = tok.encode(text, true);
                assertEquals(1, withBos[0]);
                assertEquals(c.get("legacy").size() + 1, withBos.length);
            }
        }
    }

    @Test
    void nonLegacyIdsAreThoseOfLlamaTokenizerNonLegacy() throws IOException {
        try (LlavaTokenizer tok = LlavaTokenizer.load(folder("non-legacy", false))) {
            assertFalse(tok.legacy());
            for (JsonNode c : expected.get("cases")) {
                String text = c.get("text").asText();
                assertArrayEquals(Fixtures.ints(c.get("non_legacy")), tok.encode(text, false), text);
                List<String> pieces = new ArrayList<>();
                c.get("non_legacy_pieces").forEach(p -> pieces.add(p.asText()));
                assertEquals(pieces, tok.tokens(text), text);
            }
            // the text behind </s> gets no "▁" of its own, unlike the legacy tokenizer
            assertEquals(List.of("▁a", "</s>", "USER", ":", "▁b"), tok.tokens("a</s>USER: b"));
        }
        try (LlavaTokenizer legacy = LlavaTokenizer.load(folder("legacy-for-contrast", true))) {
            assertEquals(List.of("▁a", "</s>", "▁", "USER", ":", "▁b"), legacy.tokens("a</s>USER: b"));
        }
    }

    @Test
    void withoutSpecialTokensInTheTextTheIdsAreSentencepiecesOwn() throws IOException {
        Path dir = Files.createDirectories(tmp.resolve("bare"));
        Files.copy(SP.resolve("tokenizer.model"), dir.resolve("tokenizer.model"));
        try (LlavaTokenizer tok = LlavaTokenizer.load(dir)) { // no tokenizer_config.json: legacy by default
            assertTrue(tok.legacy());
            assertEquals(expected.get("vocab_size").asInt(), tok.vocabSize());
            int checked = 0;
            for (JsonNode c : expected.get("cases")) {
                String text = c.get("text").asText();
                if (text.contains("<")) continue;
                assertArrayEquals(Fixtures.ints(c.get("sp")), tok.encode(text, false), text);
                checked++;
            }
            assertTrue(checked >= 10);
        }
    }

    @Test
    void llavaV1MaskingWithLegacyAndNonLegacyTokenizers() throws IOException {
        ObjectNode rec = Fixtures.JSON.createObjectNode();
        rec.put("id", "multi-turn").put("image", "img0.png");
        ArrayNode turns = rec.putArray("conversations");
        expected.get("v1_conversation").forEach(t -> turns.add(t.deepCopy()));
        LlavaRecord r = LlavaJson.parse("test.json", 0, rec);
        for (String mode : List.of("legacy", "non_legacy")) {
            try (LlavaTokenizer tok = LlavaTokenizer.load(folder("v1-" + mode, mode.equals("legacy")))) {
                Conversation conv = new Conversation(Template.VICUNA_V1, tok, -200);
                assertEquals(expected.get("v1_prompt").asText(), conv.prompt(r));
                Tokenized t = conv.tokenize(r);
                JsonNode want = expected.get("v1").get(mode);
                assertArrayEquals(Fixtures.ints(want.get("input_ids")), t.inputIds(), mode);
                assertArrayEquals(Fixtures.ints(want.get("labels")), t.labels(), mode);
                assertNull(t.warning(), mode);
            }
        }
    }

    /** Characters outside the BMP are left out: DJL's binding hands decoded text back through JNI's modified UTF-8. */
    @Test
    void decodeUndoesEncode() throws IOException {
        for (boolean legacy : new boolean[]{true, false}) {
            try (LlavaTokenizer tok = LlavaTokenizer.load(folder("decode-" + legacy, legacy))) {
                for (String text : List.of("a red circle", "What shape is on top?", "unknown é ü and 中文", "line one\nline two")) {
                    int[] ids = tok.encode(text, true);
                    assertEquals(text, tok.decode(ids, true), text);
                    assertTrue(tok.decode(ids, false).startsWith("<s>"), text);
                }
            }
        }
    }

    @Test
    void tokenizerModelIsPreferredOverTokenizerJson() throws IOException {
        Path dir = folder("both", false);
        Files.copy(Fixtures.MODEL.resolve("tokenizer.json"), dir.resolve("tokenizer.json"));
        try (LlavaTokenizer tok = LlavaTokenizer.load(dir)) {
            assertEquals(IMAGE_ID + 1, tok.vocabSize(), "LLaVA loads the slow tokenizer (use_fast=False): tokenizer.model");
            assertFalse(tok.legacy());
        }
    }

    @Test
    void originalLlavaTokenizerConfigIsRead() throws IOException {
        // llava-v1.5-7b's published tokenizer_config.json (AddedToken dicts, legacy false, pad null) and
        // special_tokens_map.json (pad <unk>), with the test model
        Path dir = Files.createDirectories(tmp.resolve("llava-v1.5"));
        Files.copy(SP.resolve("tokenizer.model"), dir.resolve("tokenizer.model"));
        Path real = Path.of("src/test/resources/real-configs/liuhaotian__llava-v1.5-7b");
        for (String f : List.of("tokenizer_config.json", "special_tokens_map.json")) Files.copy(real.resolve(f), dir.resolve(f));
        try (LlavaTokenizer tok = LlavaTokenizer.load(dir)) {
            assertFalse(tok.legacy());
            assertEquals(0, tok.pad());
            assertEquals(1, tok.bos());
            assertEquals(2, tok.eos());
            JsonNode c = expected.get("cases").get(12); // "a</s>USER: b"
            assertEquals("a</s>USER: b", c.get("text").asText());
            assertArrayEquals(Fixtures.ints(c.get("non_legacy")), tok.encode("a</s>USER: b", false));
        }
    }

    @Test
    void addedTokenStripFlagsAndAddedTokensJson() throws IOException {
        Path dir = folder("rstrip", true);
        ObjectNode cfg = (ObjectNode) Fixtures.json(dir.resolve("tokenizer_config.json"));
        ((ObjectNode) cfg.get("added_tokens_decoder").get(String.valueOf(IMAGE_ID))).put("rstrip", true).put("lstrip", true);
        Files.writeString(dir.resolve("tokenizer_config.json"), cfg.toString());
        Files.writeString(dir.resolve("added_tokens.json"), "{\"<extra>\": 801}");
        try (LlavaTokenizer tok = LlavaTokenizer.load(dir)) {
            int[] x = tok.encode("x", false), y = tok.encode("y", false);
            int[] want = new int[x.length + 1 + y.length];
            System.arraycopy(x, 0, want, 0, x.length);
            want[x.length] = IMAGE_ID;
            System.arraycopy(y, 0, want, x.length + 1, y.length);
            assertArrayEquals(want, tok.encode("x  <image>  y", false), "the spaces around <image> are eaten");
            assertEquals(801, tok.tokenIdOf("<extra>"));
            assertEquals(802, tok.vocabSize());
            int[] e = tok.encode("x<extra>y", false);
            assertEquals(801, e[x.length]);
        }
    }

    @Test
    void folderWithoutTokenizerIsRefusedByName() throws IOException {
        Path dir = Files.createDirectories(tmp.resolve("empty"));
        Files.writeString(dir.resolve("tokenizer_config.json"), "{}");
        DataException e = assertThrows(DataException.class, () -> LlavaTokenizer.load(dir));
        assertTrue(e.getMessage().contains(dir.toString()), e.getMessage());
        assertTrue(e.getMessage().contains("tokenizer.model") && e.getMessage().contains("tokenizer.json"), e.getMessage());
    }

    @Test
    void anotherTokenizerClassIsRefused() throws IOException {
        Path dir = folder("t5", true);
        ObjectNode cfg = (ObjectNode) Fixtures.json(dir.resolve("tokenizer_config.json"));
        cfg.put("tokenizer_class", "T5Tokenizer");
        Files.writeString(dir.resolve("tokenizer_config.json"), cfg.toString());
        DataException e = assertThrows(DataException.class, () -> LlavaTokenizer.load(dir));
        assertTrue(e.getMessage().contains("T5Tokenizer"), e.getMessage());
    }

    @Test
    void notASentencePieceModelNamesTheFile() throws IOException {
        Path dir = Files.createDirectories(tmp.resolve("broken"));
        Files.writeString(dir.resolve("tokenizer.model"), "this is not a protobuf");
        DataException e = assertThrows(DataException.class, () -> LlavaTokenizer.load(dir));
        assertTrue(e.getMessage().contains(dir.resolve("tokenizer.model").toString()), e.getMessage());
    }
}
