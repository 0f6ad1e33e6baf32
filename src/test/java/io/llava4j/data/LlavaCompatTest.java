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

/** Records and tokenizer folders shaped like the ones where llava4j and upstream LLaVA used to differ (issue 9). */
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
}
