package io.llava4j.data;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.data.Conversation.Template;
import io.llava4j.data.Conversation.Tokenized;
import io.llava4j.generate.Prompts;
import io.llava4j.io.Safetensors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static io.llava4j.data.Fixtures.record;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The Qwen-based templates against the OneVision reference (LLaVA-NeXT's preprocess_qwen run with the HF tokenizer on
 * the toy Qwen2-style tokenizer) and against hand-checked TinyLLaVA labels.
 */
class QwenConversationTest {

    static final Path REF = Path.of("src/test/resources/reference-onevision");
    static final Path MODEL = REF.resolve("tiny-onevision");
    static final int IMAGE = 1027, ENDOFTEXT = 1024, IM_START = 1025, IM_END = 1026, NEWLINE = 198;

    static LlavaTokenizer tok;
    static Conversation qwen;

    @BeforeAll
    static void load() throws IOException {
        tok = LlavaTokenizer.load(MODEL);
        qwen = new Conversation(Template.of("qwen_1_5"), tok, IMAGE);
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    // ------------------------------------------------------------------------------------------------ tokenizer

    @Test
    void qwenTokenizerHasNoBosAndNoUnk() {
        assertEquals(-1, tok.bos());
        assertFalse(tok.addsBos());
        assertEquals(IM_END, tok.eos());
        assertEquals(-1, tok.unk());
        assertEquals(ENDOFTEXT, tok.pad());
        assertEquals(ENDOFTEXT, tok.padToken());
        assertEquals(IMAGE, tok.tokenIdOf("<image>"));
        assertArrayEquals(new int[]{}, tok.encode("", true));
        assertArrayEquals(new int[]{NEWLINE}, tok.encode("\n", true));
        // the added tokens are single ids wherever they are written, and addBos adds nothing
        int[] ids = tok.encode("<|im_start|>user\n<image>\nWhat shape is on top?<|im_end|>\n<|endoftext|>", true);
        assertArrayEquals(new int[]{IM_START, 283, NEWLINE, IMAGE, NEWLINE, 416, 420, 421, 353, 423, 30, IM_END, NEWLINE, ENDOFTEXT}, ids);
        assertArrayEquals(ids, tok.encode("<|im_start|>user\n<image>\nWhat shape is on top?<|im_end|>\n<|endoftext|>", false));
    }

    @Test
    void qwenDefaultsWhenConfigOmitsFields(@TempDir Path dir) throws IOException {
        ObjectNode cfg = qwenConfig(dir);
        cfg.remove(List.of("unk_token", "pad_token", "eos_token", "bos_token", "add_bos_token"));
        Fixtures.JSON.writeValue(dir.resolve("tokenizer_config.json").toFile(), cfg);
        try (LlavaTokenizer t = LlavaTokenizer.load(dir)) { // Qwen2Tokenizer's defaults: <|endoftext|> for unk, eos, pad; no BOS
            assertEquals(ENDOFTEXT, t.unk());
            assertEquals(ENDOFTEXT, t.eos());
            assertEquals(ENDOFTEXT, t.pad());
            assertEquals(-1, t.bos());
            assertFalse(t.addsBos());
        }
        cfg.put("add_bos_token", true);
        Fixtures.JSON.writeValue(dir.resolve("tokenizer_config.json").toFile(), cfg);
        DataException e = assertThrows(DataException.class, () -> LlavaTokenizer.load(dir));
        assertTrue(e.getMessage().contains("add_bos_token"), e.getMessage());
    }

    /** A copy of the toy tokenizer folder; returns its tokenizer_config to edit. */
    private static ObjectNode qwenConfig(Path dir) throws IOException {
        Files.copy(MODEL.resolve("tokenizer.json"), dir.resolve("tokenizer.json"));
        Files.copy(MODEL.resolve("tokenizer_config.json"), dir.resolve("tokenizer_config.json"));
        return (ObjectNode) Fixtures.json(dir.resolve("tokenizer_config.json"));
    }

    // ------------------------------------------------------------------------------------------------ qwen_1_5

    private static void assertMatchesReference(String data, String stage) throws IOException {
        List<LlavaRecord> records = LlavaJson.read(REF.resolve("tiny-data/" + data));
        JsonNode samples = Fixtures.json(REF.resolve("expected/" + stage + "/reference.json")).get("samples");
        assertEquals(samples.size(), records.size());
        for (int i = 0; i < records.size(); i++) {
            Tokenized t = qwen.tokenize(records.get(i), 2048);
            assertArrayEquals(Fixtures.ints(samples.get(i).get("input_ids")), t.inputIds(), stage + " sample " + i + " input_ids");
            assertArrayEquals(Fixtures.ints(samples.get(i).get("labels")), t.labels(), stage + " sample " + i + " labels");
            assertNull(t.warning());
        }
    }

    @Test
    void stage1MatchesReference() throws IOException { // record 1 has <image> at the end of its question
        assertMatchesReference("stage1.json", "stage1");
    }

    @Test
    void stage2MatchesReference() throws IOException { // record 2's last answer is "black\nand round"
        assertMatchesReference("stage2.json", "stage2");
    }

    @Test
    void stage2MatchesForwardCases() throws IOException {
        Map<String, io.llava4j.io.HostTensor> t = Safetensors.read(REF.resolve("expected/forward-and-grads.safetensors")).tensors();
        List<LlavaRecord> records = LlavaJson.read(REF.resolve("tiny-data/stage2.json"));
        for (int k = 0; k < 3; k++) {
            Tokenized s = qwen.tokenize(records.get(k));
            assertArrayEquals(Arrays.stream(t.get("case" + k + ".input_ids").toLongs()).mapToInt(Math::toIntExact).toArray(), s.inputIds(), "case" + k);
            assertArrayEquals(Arrays.stream(t.get("case" + k + ".labels").toLongs()).mapToInt(Math::toIntExact).toArray(), s.labels(), "case" + k);
        }
    }

    @Test
    void qwenUnmasksNewlinesAndChatmlTokensInEveryTurn() throws IOException {
        LlavaRecord r = record("{\"id\": \"q\", \"image\": \"x.png\", \"conversations\": ["
                + "{\"from\": \"human\", \"value\": \"What shape is on top?\\n<image>\"}, {\"from\": \"gpt\", \"value\": \"a red circle\"}]}");
        Tokenized t = qwen.tokenize(r);
        int[] system = tok.encode("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n", false);
        int[] user = {IM_START, 283, NEWLINE, IMAGE, NEWLINE, 416, 420, 421, 353, 423, 30, IM_END, NEWLINE};
        int[] answer = tok.encode("<|im_start|>assistant\na red circle<|im_end|>\n", false);
        int[] ids = concat(system, user, answer);
        assertArrayEquals(ids, t.inputIds());
        int[] labels = new int[ids.length];
        for (int i = 0; i < ids.length; i++)
            labels[i] = i >= system.length + user.length || ids[i] == NEWLINE || ids[i] == IM_START || ids[i] == IM_END ? ids[i] : -100;
        assertArrayEquals(labels, t.labels());
        // the user turn: <|im_start|> \n(after user) \n(after <image>) <|im_end|> \n are supervised, "user" and the text not
        assertArrayEquals(new int[]{IM_START, -100, NEWLINE, -100, NEWLINE, -100, -100, -100, -100, -100, -100, IM_END, NEWLINE},
                Arrays.copyOfRange(t.labels(), system.length, system.length + user.length));
        assertEquals(Conversation.SYSTEM_QWEN, "You are a helpful assistant.");
        assertNotNull(Template.QWEN.caveat());
        assertEquals(ENDOFTEXT, qwen.padId()); // LLaVA-NeXT: no unk, so the tokenizer's pad
    }

    @Test
    void nextPreprocessMultimodalLeavesALeadingImageAlone() throws IOException {
        // LLaVA-NeXT only moves an image that is not already first: "<image>Describe  " keeps its text and spaces
        LlavaRecord r = record("{\"id\": \"lead\", \"image\": \"x.png\", \"conversations\": ["
                + "{\"from\": \"human\", \"value\": \"<image>What shape is on top?  \"}, {\"from\": \"gpt\", \"value\": \"a red circle\"}]}");
        assertTrue(qwen.prompt(r).contains("<|im_start|>user\n<image>What shape is on top?  <|im_end|>\n"), qwen.prompt(r));
        LlavaRecord moved = record("{\"id\": \"end\", \"image\": \"x.png\", \"conversations\": ["
                + "{\"from\": \"human\", \"value\": \"  What shape is on top?<video> <image> \"}, {\"from\": \"gpt\", \"value\": \"a red circle\"}]}");
        assertTrue(qwen.prompt(moved).contains("<|im_start|>user\n<image>\nWhat shape is on top?<|im_end|>\n"), qwen.prompt(moved));
    }

    @Test
    void qwenTextOnlyRecord() throws IOException {
        LlavaRecord r = record("{\"id\": \"t\", \"conversations\": [{\"from\": \"gpt\", \"value\": \"skipped\"},"
                + "{\"from\": \"human\", \"value\": \"What shape is on top?\"}, {\"from\": \"gpt\", \"value\": \"a red circle\"}]}");
        Tokenized t = qwen.tokenize(r);
        assertArrayEquals(tok.encode("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat shape is on top?"
                + "<|im_end|>\n<|im_start|>assistant\na red circle<|im_end|>\n", false), t.inputIds());
        assertEquals(Arrays.stream(t.inputIds()).filter(i -> i == NEWLINE || i == IM_START || i == IM_END).count()
                + tok.encode("assistant\na red circle", false).length - 1, Arrays.stream(t.labels()).filter(l -> l != -100).count());
    }

    // ------------------------------------------------------------------------------------------------ prompts

    @Test
    void qwenPromptMatchesReference() throws IOException {
        JsonNode g = Fixtures.json(REF.resolve("expected/generate.json"));
        String question = Fixtures.json(REF.resolve("tiny-data/generate.json")).get("prompt").asText();
        Template t = Template.of("qwen_2");
        String prompt = Prompts.runLlava(t, question, true);
        assertEquals(g.get("prompt").asText(), prompt);
        assertArrayEquals(Fixtures.ints(g.get("prompt_ids")), LlavaTokenizer.tokenizerImageToken(tok, prompt, IMAGE));
        assertEquals("<|im_end|>", new Prompts(t).stop());
    }

    @Test
    void qwenMultiTurnPrompt() {
        Prompts p = new Prompts(Template.QWEN).user(Prompts.withImage("Q1")).answer("A1").user("Q2");
        assertEquals("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<image>\nQ1<|im_end|>\n"
                + "<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n", p.prompt());
    }

    @Test
    void tinyllavaPrompts() {
        Prompts p = new Prompts(Template.of("qwen2_base")).user(Prompts.withImage("Q1"));
        assertEquals(Conversation.SYSTEM_V1 + " USER: <image>\nQ1 ASSISTANT:", p.prompt());
        p.answer("A1").user("Q2");
        assertEquals(Conversation.SYSTEM_V1 + " USER: <image>\nQ1 ASSISTANT: A1<|endoftext|>USER: Q2 ASSISTANT:", p.prompt());
        assertEquals("<|endoftext|>", p.stop());
        assertEquals("<|im_end|>", new Prompts(Template.of("qwen2_instruct")).stop());
    }

    // ------------------------------------------------------------------------------------------------ TinyLLaVA

    static final String TWO_TURNS = "{\"id\": \"tiny\", \"image\": \"x.png\", \"conversations\": ["
            + "{\"from\": \"human\", \"value\": \"What shape is on top?\\n<image>\"}, {\"from\": \"gpt\", \"value\": \"a red circle\"},"
            + "{\"from\": \"human\", \"value\": \"And below it?\"}, {\"from\": \"gpt\", \"value\": \"black\\nand round\"}]}";

    /**
     * Hand-checked against TinyLLaVA's _make_masks on the toy tokenizer: the text is
     * {@code SYSTEM + " USER: <image>\nWhat shape is on top? ASSISTANT: a red circle" + eos + "USER: And below it? ASSISTANT:
     * black\nand round" + eos}, 157 ids. Round 1: "…ASSISTANT: " alone is 128 ids (its trailing space is a token of its
     * own, "Ġ"), so 127 are masked, up to and including ":" at 126; "Ġa Ġred Ġcircle" (127..129) and eos (130) are
     * supervised; the round counts 130 + 1. Round 2 starts at 131: "USER: And below it? ASSISTANT: " is 22 ids, 21
     * masked (131..151); "Ġblack Ċ and Ġround" + eos (152..156) supervised; 25 + 1 = 26, so the rounds cover 157.
     */
    private static int[] tinyLabels(int[] ids) {
        int[] labels = new int[ids.length];
        Arrays.fill(labels, -100);
        for (int i : new int[]{127, 128, 129, 130, 152, 153, 154, 155, 156}) labels[i] = ids[i];
        return labels;
    }

    @Test
    void qwen2InstructMasksAsTinyllava() throws IOException {
        Conversation c = new Conversation(Template.of("qwen2_instruct"), tok, IMAGE);
        LlavaRecord r = record(TWO_TURNS);
        assertEquals(Conversation.SYSTEM_V1 + " USER: <image>\nWhat shape is on top? ASSISTANT: a red circle<|im_end|>"
                + "USER: And below it? ASSISTANT: black\nand round<|im_end|>", c.prompt(r));
        Tokenized t = c.tokenize(r);
        assertEquals(157, t.inputIds().length);
        assertArrayEquals(new int[]{25, 263, 316, 322, IM_END}, Arrays.copyOfRange(t.inputIds(), 126, 131));
        assertArrayEquals(new int[]{388, NEWLINE, 448, 451, IM_END}, Arrays.copyOfRange(t.inputIds(), 152, 157));
        assertEquals(IMAGE, t.inputIds()[108]); // "USER:" "Ġ" <image> "Ċ": the space before the image is its own token
        assertArrayEquals(tinyLabels(t.inputIds()), t.labels());
        assertNull(t.warning());
        assertEquals(ENDOFTEXT, c.padId()); // pad != eos: TinyLLaVA's collator drops <|endoftext|> from the attention
    }

    @Test
    void qwen2BaseWithBaseTokenizer(@TempDir Path dir) throws IOException {
        ObjectNode cfg = qwenConfig(dir);
        cfg.put("eos_token", "<|endoftext|>"); // Qwen2-0.5B (base): eos = pad = <|endoftext|>
        Fixtures.JSON.writeValue(dir.resolve("tokenizer_config.json").toFile(), cfg);
        try (LlavaTokenizer base = LlavaTokenizer.load(dir)) {
            Conversation c = new Conversation(Template.of("qwen2_base"), base, IMAGE);
            Tokenized t = c.tokenize(record(TWO_TURNS));
            assertEquals(157, t.inputIds().length);
            assertEquals(ENDOFTEXT, t.inputIds()[130]);
            assertEquals(ENDOFTEXT, t.inputIds()[156]);
            assertArrayEquals(tinyLabels(t.inputIds()), t.labels());
            assertNull(t.warning()); // 155 non-pad ids + prompt.count(eos) 2 = 157
            assertEquals(-1, c.padId()); // pad == eos: nothing is dropped from the attention
            assertEquals(ENDOFTEXT, c.collatorPadId());
        }
    }

    @Test
    void qwen2BaseWithInstructTokenizerIsFullyMasked() throws IOException {
        // TinyLLaVA compares the tokenizer's pad with the tokenizer's eos (<|im_end|>), not with the template's: the two
        // <|endoftext|> of the text are not counted and every sample is a mismatch
        Tokenized t = new Conversation(Template.of("qwen2_base"), tok, IMAGE).tokenize(record(TWO_TURNS));
        assertTrue(t.mismatch());
        assertTrue(Arrays.stream(t.labels()).allMatch(l -> l == -100));
        assertTrue(t.warning().contains("157") && t.warning().contains("155"), t.warning());
    }

    @Test
    void tinyllavaNeedsAnswerPerQuestion() throws IOException {
        LlavaRecord r = record("{\"id\": \"odd\", \"image\": \"x.png\", \"conversations\": ["
                + "{\"from\": \"human\", \"value\": \"<image>\\nq\"}, {\"from\": \"gpt\", \"value\": \"a\"}, {\"from\": \"human\", \"value\": \"q2\"}]}");
        DataException e = assertThrows(DataException.class, () -> new Conversation(Template.QWEN2_INSTRUCT, tok, IMAGE).tokenize(r));
        assertTrue(e.getMessage().contains("odd"), e.getMessage());
    }

    // ------------------------------------------------------------------------------------------------ names

    @Test
    void templateNamesAndDefaults() {
        assertSame(Template.QWEN, Template.of("qwen_1_5"));
        assertSame(Template.QWEN, Template.forTraining("qwen_2"));
        assertSame(Template.QWEN2_BASE, Template.of("qwen2_base"));
        assertSame(Template.QWEN2_INSTRUCT, Template.forTraining("qwen2_instruct"));
        assertEquals("qwen_1_5", Template.defaultConvMode("qwen2", "llava_onevision"));
        assertEquals("qwen_1_5", Template.defaultConvMode("qwen2", "llava"));
        assertEquals("qwen_1_5", Template.defaultConvMode(null, "llava_qwen"));
        assertEquals("qwen2_base", Template.defaultConvMode("qwen2", "tinyllava"));
        assertEquals("mistral_instruct", Template.defaultConvMode("mistral", "llava_next"));
        assertEquals("vicuna_v1", Template.defaultConvMode("llama", "llava_next"));
        assertEquals("v1", Template.defaultConvMode("llama", "llava"));
        assertEquals("v1", Template.defaultConvMode(null, null));
        assertEquals("v1", Template.defaultConvMode(null, "llava_llama"));
        for (String[] c : new String[][]{{"qwen2", "llava_onevision"}, {"qwen2", "tinyllava"}, {"mistral", "llava_next"}, {"llama", "llava"}})
            Template.of(Template.defaultConvMode(c[0], c[1])); // every answer is a template name
        DataException e = assertThrows(DataException.class, () -> Template.defaultConvMode("phi", "tinyllava"));
        assertTrue(e.getMessage().contains("tinyllava") && e.getMessage().contains("phi"), e.getMessage());
    }

    private static int[] concat(int[]... parts) {
        return Arrays.stream(parts).flatMapToInt(Arrays::stream).toArray();
    }
}
