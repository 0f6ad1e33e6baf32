package io.llava4j.data;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.data.Conversation.Template;
import io.llava4j.data.Conversation.Tokenized;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Every template against LLaVA's own code: {@code resources/templates/expected.json} holds the input ids and labels
 * that LLaVA-1.5's preprocess functions and conversation.py, run verbatim ({@code make_expected.py}), give for
 * records shaped like the hard cases, on the SentencePiece fixture tokenizer with legacy true and false.
 */
class ConversationTemplatesTest {
    static final Path DIR = Path.of("src/test/resources/templates");
    static final int IMAGE_TOKEN = -200;
    static JsonNode expected;
    static final Map<String, LlavaRecord> records = new HashMap<>();

    @TempDir
    static Path tmp;

    @BeforeAll
    static void read() throws IOException {
        expected = Fixtures.json(DIR.resolve("expected.json"));
        int i = 0;
        for (JsonNode r : expected.get("records")) records.put(r.get("id").asText(), LlavaJson.parse("expected.json", i++, r));
    }

    /**
     * The SentencePiece fixture with {@code <image>}, {@code <|im_start|>}, {@code <|im_end|>} added (800-802, the last
     * two also additional special tokens), pad_token null, as make_expected.py sets it up.
     */
    static Path folder(String name, boolean legacy, String pad) throws IOException {
        Path dir = Files.createDirectories(tmp.resolve(name));
        Files.copy(SentencePieceTokenizerTest.SP.resolve("tokenizer.model"), dir.resolve("tokenizer.model"));
        ObjectNode cfg = Fixtures.JSON.createObjectNode();
        cfg.put("tokenizer_class", "LlamaTokenizer").put("add_bos_token", true).put("add_eos_token", false)
                .put("bos_token", "<s>").put("eos_token", "</s>").put("unk_token", "<unk>").put("legacy", legacy);
        if (pad == null) cfg.putNull("pad_token");
        else cfg.put("pad_token", pad);
        ObjectNode added = cfg.putObject("added_tokens_decoder");
        String[] tokens = {"<image>", "<|im_start|>", "<|im_end|>"};
        for (int i = 0; i < tokens.length; i++)
            added.putObject(String.valueOf(800 + i)).put("content", tokens[i]).put("lstrip", false).put("rstrip", false)
                    .put("normalized", false).put("single_word", false).put("special", true);
        cfg.putArray("additional_special_tokens").add("<|im_start|>").add("<|im_end|>");
        Files.writeString(dir.resolve("tokenizer_config.json"), cfg.toPrettyString());
        return dir;
    }

    @Test
    void idsAndLabelsAreLlavas() throws IOException {
        int compared = 0, masked = 0, refused = 0;
        for (boolean legacy : new boolean[]{true, false}) {
            try (LlavaTokenizer tok = LlavaTokenizer.load(folder("tok-" + legacy, legacy, null))) {
                assertEquals(legacy, tok.legacy());
                for (JsonNode s : expected.get("samples")) {
                    if (s.get("legacy").asBoolean() != legacy) continue;
                    String version = s.get("version").asText(), id = s.get("id").asText();
                    int max = s.has("max_length") ? s.get("max_length").asInt() : Integer.MAX_VALUE;
                    String what = version + " legacy=" + legacy + " " + id + (s.has("max_length") ? " max " + max : "");
                    Conversation c = new Conversation(Template.of(version), tok, IMAGE_TOKEN);
                    LlavaRecord r = records.get(id);
                    if (s.has("error") || s.has("image_tokens")) { // LLaVA raises, or the image count is wrong: refused
                        DataException e = assertThrows(DataException.class, () -> c.tokenize(r, max), what);
                        assertTrue(e.getMessage().contains("\"" + id + "\""), e.getMessage());
                        refused++;
                        continue;
                    }
                    int pad = s.get("pad_id").asInt();
                    assertEquals(pad == 803 ? -1 : pad, c.padId(), what + ": pad");
                    Tokenized t = c.tokenize(r, max);
                    assertArrayEquals(Fixtures.ints(s.get("input_ids")), t.inputIds(), what + ": input_ids");
                    assertArrayEquals(Fixtures.ints(s.get("labels")), t.labels(), what + ": labels");
                    boolean mismatch = s.get("mismatch").asBoolean();
                    assertEquals(mismatch, t.warning() != null && t.warning().contains("tokenization mismatch"), what + ": " + t.warning());
                    if (mismatch) {
                        assertTrue(t.warning().contains("\"" + id + "\""), t.warning());
                        masked++;
                    }
                    compared++;
                }
            }
        }
        assertEquals(expected.get("samples").size(), compared + refused);
        assertTrue(compared > 200 && masked > 30 && refused > 50, compared + " " + masked + " " + refused);
    }

    @Test
    void everyTrainingTemplateOfLlavaIsCovered() {
        java.util.Set<Template> seen = java.util.EnumSet.noneOf(Template.class);
        for (JsonNode s : expected.get("samples")) seen.add(Template.of(s.get("version").asText()));
        seen.add(Template.PLAIN); // ConversationTest and the stage-1 reference run cover preprocess_plain
        // LLaVA-NeXT's and TinyLLaVA's templates are not LLaVA's: QwenConversationTest covers them (OneVision reference,
        // hand-checked TinyLLaVA labels)
        seen.addAll(List.of(Template.QWEN, Template.QWEN2_BASE, Template.QWEN2_INSTRUCT));
        assertEquals(java.util.EnumSet.allOf(Template.class), seen);
    }

    @Test
    void namesAreLlavasConvTemplatesKeys() {
        assertEquals(Template.V0, Template.of("v0"));
        assertEquals(Template.LLAVA_V0, Template.of("llava_v0"));
        assertEquals(Template.CHATML_DIRECT, Template.of("mistral_direct"));
        assertEquals(Template.MISTRAL_INSTRUCT, Template.of("mistral_instruct"));
        assertEquals(Template.MPT, Template.of("mpt"));
        assertEquals(Template.LLAVA_V1, Template.of("llava_v1"));
        assertEquals(Template.DEFAULT, Template.of("default"));
        assertEquals(Template.V1_MMTAG, Template.of("v1_mmtag"));
        for (String refused : List.of("v0.5", "vicuna", "llava_v1_5", "V1"))
            assertTrue(assertThrows(DataException.class, () -> Template.of(refused)).getMessage().contains("\"" + refused + "\""));
    }

    @Test
    void v0KeepsTheTokenizersPadAndRefusesEos() throws IOException {
        LlavaRecord r = records.get("literal-unk");
        try (LlavaTokenizer unkPad = LlavaTokenizer.load(folder("pad-unk", true, "<unk>"));
             LlavaTokenizer none = LlavaTokenizer.load(folder("pad-none", true, null));
             LlavaTokenizer eosPad = LlavaTokenizer.load(folder("pad-eos", true, "</s>"))) {
            // pad_token <unk>: LLaVA's v0 pads with it, counts the literal <unk> as padding, and the rounds overrun
            Conversation withUnk = new Conversation(Template.V0, unkPad, IMAGE_TOKEN);
            assertEquals(0, withUnk.padId());
            assertTrue(withUnk.tokenize(r).warning().contains("mismatch"));
            // no pad_token: LLaVA adds [PAD]; the <unk> is an ordinary token, the sample trains (see expected.json)
            Conversation withNew = new Conversation(Template.V0, none, IMAGE_TOKEN);
            assertEquals(-1, withNew.padId());
            assertEquals(0, withNew.collatorPadId());
            assertNull(withNew.tokenize(r).warning());
            DataException e = assertThrows(DataException.class, () -> new Conversation(Template.V0, eosPad, IMAGE_TOKEN));
            assertTrue(e.getMessage().contains("pad_token") && e.getMessage().contains("--version v1"), e.getMessage());
            // every other template pads with unk whatever the config says
            assertEquals(0, new Conversation(Template.MPT, eosPad, IMAGE_TOKEN).padId());
        }
    }

    @Test
    void v0WithoutPadKeepsLiteralUnkAndPadsWithAValidId() throws IOException {
        try (LlavaTokenizer none = LlavaTokenizer.load(folder("ds-pad-none", true, null))) {
            LlavaRecord r = records.get("literal-unk");
            LlavaDataset v0 = new LlavaDataset(List.of(r), none, "v0", null, null, "square", 2048, IMAGE_TOKEN);
            LlavaDataset v1 = new LlavaDataset(List.of(r), none, "v1", null, null, "square", 2048, IMAGE_TOKEN);
            LlavaDataset.Sample s0 = v0.get(0), s1 = v1.get(0);
            assertNull(s0.warning(), "LLaVA's [PAD] is not in the text: the <unk> stays and the rounds add up");
            assertTrue(java.util.Arrays.stream(s0.inputIds()).anyMatch(id -> id == 0));
            assertTrue(s1.warning().contains("unk"), "v1 pads with unk: the collator drops it, the sample is masked");
            assertEquals(s0.inputIds().length - 2, s1.inputIds().length);
            int n = s0.inputIds().length + 3;
            Collator.Batch b = v0.collator().collate(List.of(s0, new LlavaDataset.Sample("x", new int[n], new int[n], null, null)));
            assertEquals(0, b.inputIds()[0][n - 1], "padded with a real id (unk); the position is masked out");
            assertFalse(b.attentionMask()[0][n - 1]);
            assertNull(v0.caveat());
            assertTrue(new LlavaDataset(List.of(r), none, "llava_v0", null, null, "square", 2048, IMAGE_TOKEN).caveat().contains("llava_v0"));
        }
    }

    /** preprocess_mpt reads getattr(tokenizer, 'legacy', False): a LLaMA tokenizer.json has it (true), GPT-NeoX's has not. */
    @Test
    void mptLegacyCorrectionFollowsTheTokenizerClass() throws IOException {
        String[] outcome = new String[2];
        String[] classes = {"LlamaTokenizer", "GPTNeoXTokenizer"};
        for (int i = 0; i < 2; i++) {
            Path dir = Files.createDirectories(tmp.resolve("json-" + classes[i]));
            Files.copy(Fixtures.MODEL.resolve("tokenizer.json"), dir.resolve("tokenizer.json"));
            ObjectNode cfg = (ObjectNode) Fixtures.json(Fixtures.MODEL.resolve("tokenizer_config.json"));
            cfg.put("tokenizer_class", classes[i]);
            Fixtures.JSON.writeValue(dir.resolve("tokenizer_config.json").toFile(), cfg);
            try (LlavaTokenizer tok = LlavaTokenizer.load(dir)) {
                assertTrue(tok.legacy());
                assertEquals(i == 0, tok.legacyAttribute(), classes[i]);
                Tokenized t = new Conversation(Template.MPT, tok, IMAGE_TOKEN).tokenize(records.get("text-3-rounds"));
                outcome[i] = java.util.Arrays.toString(t.labels()) + t.warning();
            }
        }
        assertNotEquals(outcome[0], outcome[1], "one token more per later round changes the masking or the rounds' count");
    }

    @Test
    void caveatsNameTheTemplatesWhoseMaskingIsOff() {
        assertNull(Template.VICUNA_V1.caveat());
        assertNull(Template.MISTRAL_INSTRUCT.caveat());
        assertTrue(Template.LLAVA_V0.caveat().contains("llava_v0"));
        assertTrue(Template.MPT.caveat().contains("mpt"));
        assertTrue(Template.CHATML_DIRECT.caveat().contains("chatml_direct"));
    }

    @Test
    void inferencePromptsAreGetPrompts() {
        for (JsonNode p : expected.get("prompts")) {
            Template t = Template.of(p.get("mode").asText());
            String[] roles = t.roles();
            List<String[]> one = new java.util.ArrayList<>();
            List<String[]> init = t.initialMessages();
            assertEquals(t == Template.V0 || t == Template.DEFAULT ? 2 : 0, init.size());
            one.addAll(init);
            one.add(new String[]{roles[0], "<image>\nWhat is it?"});
            one.add(new String[]{roles[1], null});
            assertEquals(p.get("one_turn").asText(), t.prompt(one), t.name());
            assertEquals(p.get("stop").asText(), t.stop(), t.name());
        }
    }
}
