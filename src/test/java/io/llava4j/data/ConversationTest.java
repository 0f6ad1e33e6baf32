package io.llava4j.data;

import com.fasterxml.jackson.databind.JsonNode;
import io.llava4j.data.Conversation.Template;
import io.llava4j.data.Conversation.Tokenized;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.Arrays;
import java.util.List;

import static io.llava4j.data.Fixtures.IMAGE_TOKEN;
import static io.llava4j.data.Fixtures.record;
import static org.junit.jupiter.api.Assertions.*;

class ConversationTest {

    static LlavaTokenizer tok;
    static Conversation plain, v1;

    @BeforeAll
    static void load() throws IOException {
        tok = LlavaTokenizer.load(Fixtures.MODEL);
        plain = new Conversation(Template.PLAIN, tok, IMAGE_TOKEN);
        v1 = new Conversation(Template.VICUNA_V1, tok, IMAGE_TOKEN);
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    private static void assertMatchesReference(String data, String stage, Conversation conv) throws IOException {
        List<LlavaRecord> records = LlavaJson.read(Fixtures.DATA.resolve(data));
        JsonNode samples = Fixtures.json(Fixtures.REF.resolve("expected/" + stage + "/reference.json")).get("samples");
        assertEquals(samples.size(), records.size());
        for (int i = 0; i < records.size(); i++) {
            Tokenized t = conv.tokenize(records.get(i), 2048);
            assertArrayEquals(Fixtures.ints(samples.get(i).get("input_ids")), t.inputIds(), stage + " sample " + i + " input_ids");
            assertArrayEquals(Fixtures.ints(samples.get(i).get("labels")), t.labels(), stage + " sample " + i + " labels");
            assertNull(t.warning());
        }
    }

    @Test
    void stage1PlainMatchesReference() throws IOException {
        assertMatchesReference("pretrain.json", "stage1", plain);
    }

    @Test
    void stage2VicunaV1MatchesReference() throws IOException {
        assertMatchesReference("finetune.json", "stage2", v1);
    }

    @Test
    void templateNames() {
        assertEquals(Template.PLAIN, Template.of("plain"));
        assertEquals(Template.VICUNA_V1, Template.of("v1"));
        assertEquals(Template.VICUNA_V1, Template.of("vicuna_v1"));
        assertEquals(Template.LLAVA_LLAMA_2, Template.of("llava_llama_2"));
        DataException e = assertThrows(DataException.class, () -> Template.of("llava_llama"));
        assertTrue(e.getMessage().contains("\"llava_llama\"") && e.getMessage().contains("mistral_instruct"), e.getMessage());
    }

    @Test
    void imageMovedToFrontOfTurn() throws IOException {
        LlavaRecord r = record("{\"id\": \"m\", \"image\": \"x.png\", \"conversations\": ["
                + "{\"from\": \"human\", \"value\": \"  What shape is on top?\\n<image>  \"}, {\"from\": \"gpt\", \"value\": \"a red circle\"}]}");
        assertEquals(Conversation.SYSTEM_V1 + " USER: <image>\nWhat shape is on top? ASSISTANT: a red circle</s>", v1.prompt(r));
        assertEquals("<image>a red circle\n", plain.prompt(r));
        // plain: BOS and image token masked, caption and newline supervised, no EOS
        Tokenized t = plain.tokenize(r);
        assertArrayEquals(new int[]{1, 1023, 325, 458, 386, 13}, t.inputIds());
        assertArrayEquals(new int[]{-100, -100, 325, 458, 386, 13}, t.labels());
    }

    @Test
    void textOnlyRecordHasNoImageToken() throws IOException {
        LlavaRecord r = record("{\"id\": \"t\", \"conversations\": [{\"from\": \"human\", \"value\": \"How many triangles are there?\"},"
                + " {\"from\": \"gpt\", \"value\": \"two green triangles\"}]}");
        Tokenized t = v1.tokenize(r);
        // expected: LLaVA preprocess_v1 with has_image=False on toy_tokenizer.Encoder
        int[] ids = {1, 298, 381, 374, 325, 392, 491, 331, 330, 346, 430, 355, 315, 354, 406, 418, 401, 331, 445, 336, 475, 471,
                493, 455, 320, 312, 437, 485, 338, 474, 307, 487, 410, 485, 2};
        int[] labels = new int[ids.length];
        Arrays.fill(labels, -100);
        System.arraycopy(ids, 31, labels, 31, 4);
        assertArrayEquals(ids, t.inputIds());
        assertArrayEquals(labels, t.labels());
        assertNull(t.warning());
        DataException e = assertThrows(DataException.class, () -> plain.tokenize(r));
        assertTrue(e.getMessage().contains("record #0 (id \"t\")") && e.getMessage().contains("image"), e.getMessage());
    }

    @Test
    void leadingGptTurnIsSkipped() throws IOException {
        LlavaRecord r = record("{\"id\": \"g\", \"image\": \"x.png\", \"conversations\": [{\"from\": \"gpt\", \"value\": \"a red circle\"},"
                + " {\"from\": \"human\", \"value\": \"<image>\\nHow many triangles are there?\"}, {\"from\": \"gpt\", \"value\": \"two green triangles\"}]}");
        Tokenized t = v1.tokenize(r);
        // the same ids and labels as stage-2 sample 1 (reference), which has no leading gpt turn
        assertArrayEquals(new int[]{1, 298, 381, 374, 325, 392, 491, 331, 330, 346, 430, 355, 315, 354, 406, 418, 401, 331, 445,
                336, 475, 471, 493, 455, 320, 259, 1023, 259, 13, 500, 437, 485, 338, 474, 307, 487, 410, 485, 2}, t.inputIds());
        assertEquals(4, Arrays.stream(t.labels()).filter(l -> l != -100).count());
        assertNull(t.warning());
    }

    @Test
    void rolesMustAlternate() throws IOException {
        LlavaRecord r = record("{\"id\": \"alt\", \"image\": \"x.png\", \"conversations\": [{\"from\": \"human\", \"value\": \"<image>\\nq\"},"
                + " {\"from\": \"human\", \"value\": \"q2\"}]}");
        DataException e = assertThrows(DataException.class, () -> v1.tokenize(r));
        assertTrue(e.getMessage().contains("record #0 (id \"alt\")") && e.getMessage().contains("conversations[1].from"), e.getMessage());
    }

    @Test
    void plainNeedsTwoTurnsWithImageFirst() throws IOException {
        LlavaRecord three = record("{\"id\": \"p3\", \"image\": \"x.png\", \"conversations\": [{\"from\": \"human\", \"value\": \"<image>\"},"
                + " {\"from\": \"gpt\", \"value\": \"a\"}, {\"from\": \"human\", \"value\": \"b\"}]}");
        DataException e = assertThrows(DataException.class, () -> plain.tokenize(three));
        assertTrue(e.getMessage().contains("p3") && e.getMessage().contains("exactly 2 turns"), e.getMessage());
        LlavaRecord noPlaceholder = record("{\"id\": \"p4\", \"image\": \"x.png\", \"conversations\": [{\"from\": \"human\", \"value\": \"describe\"},"
                + " {\"from\": \"gpt\", \"value\": \"a\"}]}");
        e = assertThrows(DataException.class, () -> plain.tokenize(noPlaceholder));
        assertTrue(e.getMessage().contains("p4") && e.getMessage().contains("conversations[0].value"), e.getMessage());
    }

    @Test
    void imageCountMustMatch() throws IOException {
        LlavaRecord twoPlaceholders = record("{\"id\": \"two\", \"image\": \"x.png\", \"conversations\": [{\"from\": \"human\", \"value\": \"<image>\\nq\"},"
                + " {\"from\": \"gpt\", \"value\": \"a\"}, {\"from\": \"human\", \"value\": \"<image> again\"}, {\"from\": \"gpt\", \"value\": \"b\"}]}");
        DataException e = assertThrows(DataException.class, () -> v1.tokenize(twoPlaceholders));
        assertTrue(e.getMessage().contains("two") && e.getMessage().contains("at most 1"), e.getMessage());
        LlavaRecord textWithPlaceholder = record("{\"id\": \"tx\", \"conversations\": [{\"from\": \"human\", \"value\": \"<image>\\nq\"},"
                + " {\"from\": \"gpt\", \"value\": \"a\"}]}");
        e = assertThrows(DataException.class, () -> v1.tokenize(textWithPlaceholder));
        assertTrue(e.getMessage().contains("tx") && e.getMessage().contains("text-only"), e.getMessage());
    }

    @Test
    void misalignedSampleIsFullyMaskedWithWarning() throws IOException {
        // "</s>" inside an answer makes an extra round without " ASSISTANT: ": LLaVA stops counting there (cur 38 of 40)
        LlavaRecord r = record("{\"id\": \"bad\", \"image\": \"x.png\", \"conversations\": [{\"from\": \"human\", \"value\": \"<image>\\nWhat shape is on top?\"},"
                + " {\"from\": \"gpt\", \"value\": \"a red</s>circle\"}]}");
        Tokenized t = v1.tokenize(r);
        assertArrayEquals(new int[]{1, 298, 381, 374, 325, 392, 491, 331, 330, 346, 430, 355, 315, 354, 406, 418, 401, 331, 445, 336,
                475, 471, 493, 455, 320, 259, 1023, 259, 13, 503, 463, 431, 439, 477, 307, 325, 458, 2, 386, 2}, t.inputIds());
        assertTrue(Arrays.stream(t.labels()).allMatch(l -> l == -100));
        assertNotNull(t.warning());
        assertTrue(t.warning().contains("record #0 (id \"bad\")") && t.warning().contains("38") && t.warning().contains("40"), t.warning());
        // LLaVA only checks when the rounds end before model_max_length
        Tokenized cut = v1.tokenize(r, 38);
        assertNull(cut.warning());
        assertEquals(38, cut.inputIds().length);
    }

    @Test
    void truncationCutsIdsAndLabels() throws IOException {
        List<LlavaRecord> records = LlavaJson.read(Fixtures.DATA.resolve("finetune.json"));
        Tokenized full = v1.tokenize(records.get(0));
        assertEquals(48, full.inputIds().length);
        Tokenized cut = v1.tokenize(records.get(0), 40);
        assertArrayEquals(Arrays.copyOf(full.inputIds(), 40), cut.inputIds());
        assertArrayEquals(Arrays.copyOf(full.labels(), 40), cut.labels());
        assertNull(cut.warning());
        // the first round's supervision survives the cut: "a red circle</s>" at 35..38
        assertArrayEquals(new int[]{325, 458, 386, 2}, Arrays.copyOfRange(cut.labels(), 35, 39));
        Tokenized plainCut = plain.tokenize(LlavaJson.read(Fixtures.DATA.resolve("pretrain.json")).get(0), 4);
        assertArrayEquals(new int[]{1, 1023, 325, 458}, plainCut.inputIds());
        assertArrayEquals(new int[]{-100, -100, 325, 458}, plainCut.labels());
    }

    @Test
    void pythonStringMethods() {
        assertEquals(List.of("a", "", "b", ""), Conversation.pySplit("a</s></s>b</s>", "</s>"));
        assertEquals("x y", Conversation.pyStrip("\u00a0\t x y\n\u3000"));
        assertEquals(3, Conversation.pyWordCount(" one\u00a0two \n three "));
        assertEquals(0, Conversation.pyWordCount(" \t"));
    }
}
