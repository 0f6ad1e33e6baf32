package io.llava4j.data;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import static io.llava4j.data.Fixtures.IMAGE_TOKEN;
import static io.llava4j.data.Fixtures.record;
import static org.junit.jupiter.api.Assertions.*;

/** Records and tokenizer folders shaped like the ones where a reimplementation easily differs from upstream LLaVA. */
class LlavaCompatTest {

    /** The tiny tokenizer, with tokenizer_config's pad_token set to {@code pad}. */
    private static Path tokenizerWithPad(Path dir, String pad) throws IOException {
        for (String f : List.of("tokenizer.json", "preprocessor_config.json"))
            Files.copy(Fixtures.MODEL.resolve(f), dir.resolve(f));
        ObjectNode cfg = (ObjectNode) Fixtures.json(Fixtures.MODEL.resolve("tokenizer_config.json"));
        cfg.put("pad_token", pad);
        Fixtures.JSON.writeValue(dir.resolve("tokenizer_config.json").toFile(), cfg);
        return dir;
    }

    @Test
    void padTokenInTokenizerConfigDoesNotChangeMasking(@TempDir Path dir) throws IOException {
        try (LlavaTokenizer tok = LlavaTokenizer.load(tokenizerWithPad(dir, "</s>"))) {
            assertEquals(2, tok.pad(), "the tokenizer itself reports its configured pad");
            ImageProcessor proc = ImageProcessor.load(Fixtures.MODEL);
            for (String[] c : new String[][]{{"pretrain.json", "plain", "stage1"}, {"finetune.json", "v1", "stage2"}}) {
                LlavaDataset ds = new LlavaDataset(LlavaJson.read(Fixtures.DATA.resolve(c[0])), tok, c[1], Fixtures.IMAGES, proc,
                        "square", 2048, IMAGE_TOKEN);
                JsonNode samples = Fixtures.json(Fixtures.REF.resolve("expected/" + c[2] + "/reference.json")).get("samples");
                for (int i = 0; i < ds.size(); i++) {
                    LlavaDataset.Sample s = ds.get(i);
                    assertNull(s.warning(), c[2] + " " + i);
                    assertArrayEquals(Fixtures.ints(samples.get(i).get("input_ids")), s.inputIds(), c[2] + " " + i);
                    assertArrayEquals(Fixtures.ints(samples.get(i).get("labels")), s.labels(), c[2] + " " + i);
                }
                // LLaVA pads with unk (id 0) for plain and v1, not with the configured </s>
                int n = ds.get(0).inputIds().length + 1;
                LlavaDataset.Sample longer = new LlavaDataset.Sample("x", new int[n], new int[n], null, null);
                Collator.Batch b = ds.collator().collate(List.of(ds.get(0), longer));
                assertEquals(0, b.inputIds()[0][n - 1], c[1] + ": padded with unk");
            }
        }
    }

    @Test
    void literalUnkIsDroppedFromIdsAndLabels() throws IOException {
        try (LlavaTokenizer tok = LlavaTokenizer.load(Fixtures.MODEL)) {
            LlavaRecord r = record("{\"id\": \"u\", \"image\": \"img0.png\", \"conversations\": [{\"from\": \"human\", \"value\": \"<image>\"},"
                    + " {\"from\": \"gpt\", \"value\": \"a red <unk> circle\"}]}");
            LlavaDataset ds = new LlavaDataset(List.of(r), tok, "plain", Fixtures.IMAGES, ImageProcessor.load(Fixtures.MODEL),
                    "square", 2048, IMAGE_TOKEN);
            // LLaVA's rules: preprocess_plain's ids and labels, then the collator's mask ids != unk selects positions
            int[] full = LlavaTokenizer.tokenizerImageToken(tok, "<image>a red <unk> circle\n", IMAGE_TOKEN);
            assertTrue(Arrays.stream(full).anyMatch(id -> id == 0), "the text holds an unk token");
            int[] fullLabels = full.clone();
            Arrays.fill(fullLabels, 0, 2, Conversation.IGNORE_INDEX);
            int[] keep = java.util.stream.IntStream.range(0, full.length).filter(j -> full[j] != 0).toArray();
            LlavaDataset.Sample s = ds.get(0);
            assertArrayEquals(Arrays.stream(keep).map(j -> full[j]).toArray(), s.inputIds());
            assertArrayEquals(Arrays.stream(keep).map(j -> fullLabels[j]).toArray(), s.labels());
            assertTrue(s.warning().contains("unk"), s.warning());
            assertTrue(s.warning().contains("u"), s.warning());

            // v1: LLaVA counts total = ids != pad, so the rounds overrun by the unk: the sample is fully masked
            LlavaRecord v = record("{\"id\": \"v\", \"conversations\": [{\"from\": \"human\", \"value\": \"Say <unk>\"},"
                    + " {\"from\": \"gpt\", \"value\": \"ok\"}]}");
            LlavaDataset.Sample sv = new LlavaDataset(List.of(v), tok, "v1", null, null, "square", 2048, IMAGE_TOKEN).get(0);
            assertTrue(Arrays.stream(sv.inputIds()).noneMatch(id -> id == 0));
            assertTrue(Arrays.stream(sv.labels()).allMatch(l -> l == Conversation.IGNORE_INDEX));
            assertTrue(sv.warning().contains("mismatch"), sv.warning());
        }
    }

    private static final String SYS = Conversation.SYSTEM_V1;

    private static LlavaDataset.Sample one(LlavaTokenizer tok, String version, String json) throws IOException {
        LlavaRecord r = record(json);
        ImageProcessor proc = ImageProcessor.load(Fixtures.MODEL);
        return new LlavaDataset(List.of(r), tok, version, Fixtures.IMAGES, proc, "square", 2048, IMAGE_TOKEN).get(0);
    }

    private static int[] masked(int n) {
        int[] l = new int[n];
        Arrays.fill(l, Conversation.IGNORE_INDEX);
        return l;
    }

    @Test
    void emptyValueIsTrainedOrMaskedAsLlavaDoes(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("data.json");
        Files.writeString(file, "[{\"id\": \"ok\", \"conversations\": [{\"from\": \"human\", \"value\": \"Hi\"}, {\"from\": \"gpt\", \"value\": \"yes\"}]},"
                + " {\"id\": \"empty\", \"conversations\": [{\"from\": \"human\", \"value\": \"Hi\"}, {\"from\": \"gpt\", \"value\": \"yes\"},"
                + " {\"from\": \"human\", \"value\": \"More?\"}, {\"from\": \"gpt\", \"value\": \"\"}]}]");
        try (LlavaTokenizer tok = LlavaTokenizer.load(Fixtures.MODEL)) {
            LlavaDataset ds = new LlavaDataset(LlavaJson.read(file), tok, "v1", null, null, "square", 2048, IMAGE_TOKEN);
            assertEquals(2, ds.size(), "the file loads");
            assertNull(ds.get(0).warning());
            // get_prompt (SeparatorStyle.TWO) writes an empty message as "ASSISTANT:" with no separator; the last round
            // then has no " ASSISTANT: ", the rounds end short of the sample, and preprocess_v1 masks it all
            LlavaDataset.Sample s = ds.get(1);
            int[] want = tok.encode(SYS + " USER: Hi ASSISTANT: yes</s>USER: More? ASSISTANT:", true);
            assertArrayEquals(want, s.inputIds());
            assertArrayEquals(masked(want.length), s.labels());
            assertTrue(s.warning().contains("\"empty\"") && s.warning().contains("mismatch"), s.warning());

            // plain: "<image>" + "" + "\n", supervised after BOS and the image token
            LlavaDataset.Sample p = one(tok, "plain", "{\"id\": \"p\", \"image\": \"img0.png\", \"conversations\": ["
                    + "{\"from\": \"human\", \"value\": \"<image>\"}, {\"from\": \"gpt\", \"value\": \"\"}]}");
            int[] ids = LlavaTokenizer.tokenizerImageToken(tok, "<image>\n", IMAGE_TOKEN);
            int[] labels = ids.clone();
            Arrays.fill(labels, 0, 2, Conversation.IGNORE_INDEX);
            assertArrayEquals(ids, p.inputIds());
            assertArrayEquals(labels, p.labels());
            assertNotNull(p.pixels());
        }
    }

    @Test
    void imageRecordWithoutImageInAKeptTurnTrainsAsText() throws IOException {
        try (LlavaTokenizer tok = LlavaTokenizer.load(Fixtures.MODEL)) {
            String turns = "{\"from\": \"human\", \"value\": \"What is it?\"}, {\"from\": \"gpt\", \"value\": \"a circle\"}";
            LlavaDataset.Sample text = one(tok, "v1", "{\"id\": \"t\", \"conversations\": [" + turns + "]}");
            assertNull(text.warning());
            // an image but no <image>: LLaVA tokenizes the same text (tokenizer_image_token finds no placeholder), the
            // image is loaded and unused
            LlavaDataset.Sample noTag = one(tok, "v1", "{\"id\": \"no-tag\", \"image\": \"img0.png\", \"conversations\": [" + turns + "]}");
            // <image> only in a leading gpt turn, which preprocess_v1 skips
            LlavaDataset.Sample skipped = one(tok, "v1", "{\"id\": \"skipped\", \"image\": \"img0.png\", \"conversations\": ["
                    + "{\"from\": \"gpt\", \"value\": \"<image>\\nHello\"}, " + turns + "]}");
            for (LlavaDataset.Sample s : List.of(noTag, skipped)) {
                assertArrayEquals(text.inputIds(), s.inputIds(), s.id());
                assertArrayEquals(text.labels(), s.labels(), s.id());
                assertNull(s.pixels(), s.id());
                assertTrue(s.warning().contains("\"" + s.id() + "\"") && s.warning().contains("text only"), s.warning());
            }
        }
    }

    @Test
    void plainTemplateTakesTextOnlyRecordsWithImageAndAnyRole() throws IOException {
        try (LlavaTokenizer tok = LlavaTokenizer.load(Fixtures.MODEL)) {
            int[] ids = LlavaTokenizer.tokenizerImageToken(tok, "<image>a red circle\n", IMAGE_TOKEN);
            int[] labels = ids.clone();
            Arrays.fill(labels, 0, 2, Conversation.IGNORE_INDEX);
            // text-only with <image>: preprocess_plain inserts the image token, the dataset gives torch.zeros(3, crop, crop)
            LlavaDataset.Sample zero = one(tok, "plain", "{\"id\": \"z\", \"conversations\": [{\"from\": \"human\", \"value\": \"Look <image>\"},"
                    + " {\"from\": \"gpt\", \"value\": \"a red circle\"}]}");
            assertArrayEquals(ids, zero.inputIds());
            assertArrayEquals(labels, zero.labels());
            assertArrayEquals(new float[3 * 16 * 16], zero.pixels());
            assertTrue(zero.warning().contains("zero image"), zero.warning());
            // preprocess_plain does not look at roles
            LlavaDataset.Sample odd = one(tok, "plain", "{\"id\": \"r\", \"image\": \"img0.png\", \"conversations\": ["
                    + "{\"from\": \"system\", \"value\": \"<image>\"}, {\"from\": \"bot\", \"value\": \"a red circle\"}]}");
            assertArrayEquals(ids, odd.inputIds());
            assertArrayEquals(labels, odd.labels());
            assertEquals(3 * 16 * 16, odd.pixels().length);
            // v1 looks roles up (KeyError in LLaVA): refused, naming the record and the turn
            DataException e = assertThrows(DataException.class, () -> one(tok, "v1", "{\"id\": \"r1\", \"conversations\": ["
                    + "{\"from\": \"human\", \"value\": \"q\"}, {\"from\": \"bot\", \"value\": \"a\"}]}"));
            assertTrue(e.getMessage().contains("\"r1\"") && e.getMessage().contains("conversations[1].from: unknown role \"bot\""), e.getMessage());
            // plain without <image> in the first turn: LLaVA's assert fails, refused
            assertThrows(DataException.class, () -> one(tok, "plain", "{\"id\": \"n\", \"conversations\": ["
                    + "{\"from\": \"human\", \"value\": \"q\"}, {\"from\": \"gpt\", \"value\": \"a\"}]}"));
        }
    }

    @Test
    void singleGptTurnIsFullyMaskedWithAWarning() throws IOException {
        try (LlavaTokenizer tok = LlavaTokenizer.load(Fixtures.MODEL)) {
            // the gpt turn is skipped, get_prompt gives system + " ", the rounds cover BOS only: fully masked
            LlavaDataset.Sample s = one(tok, "v1", "{\"id\": \"g\", \"conversations\": [{\"from\": \"gpt\", \"value\": \"hello\"}]}");
            int[] want = tok.encode(SYS + " ", true);
            assertArrayEquals(want, s.inputIds());
            assertArrayEquals(masked(want.length), s.labels());
            assertTrue(s.warning().contains("\"g\"") && s.warning().contains("mismatch"), s.warning());
        }
    }

    @Test
    void llavaLlama2TemplateAsLlava() throws IOException {
        try (LlavaTokenizer tok = LlavaTokenizer.load(Fixtures.MODEL)) {
            LlavaRecord r = record("{\"id\": \"l2\", \"image\": \"img0.png\", \"conversations\": ["
                    + "{\"from\": \"human\", \"value\": \"What shape is on top?\\n<image>\"}, {\"from\": \"gpt\", \"value\": \"a red circle\"},"
                    + "{\"from\": \"human\", \"value\": \"And below it?\"}, {\"from\": \"gpt\", \"value\": \"a blue square\"}]}");
            Conversation c = new Conversation(Conversation.Template.forTraining("llava_llama_2"), tok, IMAGE_TOKEN);
            // Conversation.get_prompt, SeparatorStyle.LLAMA_2, after preprocess_multimodal moved <image> first
            String want = "[INST] <<SYS>>\n" + Conversation.SYSTEM_LLAMA_2 + "\n<</SYS>>\n\n<image>\nWhat shape is on top? [/INST] a red circle </s>"
                    + "<s>[INST] And below it? [/INST] a blue square </s>";
            assertEquals(want, c.prompt(r));
            Conversation.Tokenized t = c.tokenize(r);
            assertNull(t.warning());
            int[] ids = LlavaTokenizer.tokenizerImageToken(tok, want, IMAGE_TOKEN);
            assertArrayEquals(ids, t.inputIds());
            // preprocess_llama_2: per round (split on </s>), mask len(tokens(instruction + "[/INST] ")) - 2 after cur_len,
            // advance by len(tokens(round)); so each answer and the </s> after it are supervised
            int[] supervised = Arrays.stream(t.labels()).filter(l -> l != Conversation.IGNORE_INDEX).toArray();
            int[] answers = java.util.stream.IntStream.concat(Arrays.stream(tok.encode("a red circle </s>", false)),
                    Arrays.stream(tok.encode("a blue square </s>", false))).toArray();
            assertArrayEquals(answers, supervised);
            for (int j = 0; j < ids.length; j++)
                if (t.labels()[j] != Conversation.IGNORE_INDEX) assertEquals(ids[j], t.labels()[j], "labels are the ids where supervised");
            assertEquals(2, t.labels()[ids.length - 1], "the last </s> is supervised");
            assertEquals(Conversation.Template.LLAVA_LLAMA_2, Conversation.Template.of("llava_llama_2"), "generation knows it too");
        }
    }
}
