package io.llava4j.data;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.List;

import static io.llava4j.data.Fixtures.IMAGE_TOKEN;
import static io.llava4j.data.Fixtures.record;
import static org.junit.jupiter.api.Assertions.*;

class LlavaDatasetTest {

    static LlavaTokenizer tok;
    static ImageProcessor proc;

    @BeforeAll
    static void load() throws IOException {
        tok = LlavaTokenizer.load(Fixtures.MODEL);
        proc = ImageProcessor.load(Fixtures.MODEL);
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    private static LlavaDataset dataset(String file, String version, int maxLen) throws IOException {
        return new LlavaDataset(LlavaJson.read(Fixtures.DATA.resolve(file)), tok, version, Fixtures.IMAGES, proc, "pad", maxLen, IMAGE_TOKEN);
    }

    @Test
    void samplesMatchReferenceWithImages() throws IOException {
        for (String[] c : new String[][]{{"pretrain.json", "plain", "stage1"}, {"finetune.json", "v1", "stage2"}}) {
            LlavaDataset ds = dataset(c[0], c[1], 2048);
            JsonNode samples = Fixtures.json(Fixtures.REF.resolve("expected/" + c[2] + "/reference.json")).get("samples");
            assertEquals(2, ds.size());
            for (int i = 0; i < ds.size(); i++) {
                LlavaDataset.Sample s = ds.get(i);
                assertEquals(ds.record(i).id(), s.id());
                assertArrayEquals(Fixtures.ints(samples.get(i).get("input_ids")), s.inputIds(), c[2] + " " + i);
                assertArrayEquals(Fixtures.ints(samples.get(i).get("labels")), s.labels(), c[2] + " " + i);
                assertNull(s.warning());
                assertTrue(s.hasImage());
                assertArrayEquals(proc.process(ds.imagePath(i), "square"), s.pixels());
            }
        }
    }

    @Test
    void lengthsAsLlava() throws IOException {
        LlavaDataset ds = dataset("finetune.json", "v1", 2048);
        // v0: "<image>\nWhat shape is on top?" (6) + "a red circle" (3) + "And below it?" (3) + "a blue square" (3);
        // v1: "<image>\nHow many triangles are there?" (6) + "two green triangles" (3)
        assertArrayEquals(new int[]{15 + 128, 9 + 128}, ds.lengths());
        assertArrayEquals(new int[]{15, 9}, ds.modalityLengths());
        LlavaRecord text = record("{\"id\": \"t\", \"conversations\": [{\"from\": \"human\", \"value\": \"How many?\"}, {\"from\": \"gpt\", \"value\": \"two\"}]}");
        LlavaDataset mixed = new LlavaDataset(List.of(text), tok, "v1", null, null, "square", 2048, IMAGE_TOKEN);
        assertArrayEquals(new int[]{3}, mixed.lengths());
        assertArrayEquals(new int[]{-3}, mixed.modalityLengths());
        LlavaDataset.Sample s = mixed.get(0);
        assertNull(s.pixels());
        assertFalse(s.hasImage());
        for (int id : s.inputIds()) assertNotEquals(IMAGE_TOKEN, id);
    }

    @Test
    void missingImageFileNamesRecordAndPath() throws IOException {
        LlavaRecord r = record("{\"id\": \"gone\", \"image\": \"nope.png\", \"conversations\": [{\"from\": \"human\", \"value\": \"<image>\"},"
                + " {\"from\": \"gpt\", \"value\": \"a red circle\"}]}");
        LlavaDataset ds = new LlavaDataset(List.of(r), tok, "plain", Fixtures.IMAGES, proc, "square", 2048, IMAGE_TOKEN);
        DataException e = assertThrows(DataException.class, () -> ds.get(0));
        assertTrue(e.getMessage().contains("id \"gone\"") && e.getMessage().contains("nope.png"), e.getMessage());
    }

    @Test
    void badRecordsFailAtConstruction() throws IOException {
        LlavaRecord r = record("{\"id\": \"alt\", \"image\": \"img0.png\", \"conversations\": [{\"from\": \"human\", \"value\": \"<image>\"},"
                + " {\"from\": \"human\", \"value\": \"again\"}]}");
        DataException e = assertThrows(DataException.class,
                () -> new LlavaDataset(List.of(r), tok, "v1", Fixtures.IMAGES, proc, "square", 2048, IMAGE_TOKEN));
        assertTrue(e.getMessage().contains("alt"), e.getMessage());
        LlavaRecord ok = record("{\"id\": \"ok\", \"image\": \"img0.png\", \"conversations\": [{\"from\": \"human\", \"value\": \"<image>\"},"
                + " {\"from\": \"gpt\", \"value\": \"a\"}]}");
        e = assertThrows(DataException.class, () -> new LlavaDataset(List.of(ok), tok, "v1", Fixtures.IMAGES, proc, "crop", 2048, IMAGE_TOKEN));
        assertTrue(e.getMessage().contains("crop"), e.getMessage());
        e = assertThrows(DataException.class, () -> new LlavaDataset(List.of(ok), tok, "v1", Fixtures.IMAGES, null, "pad", 2048, IMAGE_TOKEN));
        assertTrue(e.getMessage().contains("image processor"), e.getMessage());
    }

    @Test
    void truncationThatDropsTheImageTokenWarns() throws IOException {
        LlavaRecord r = record("{\"id\": \"late\", \"image\": \"img0.png\", \"conversations\": [{\"from\": \"human\", \"value\": \"<image>\\nWhat shape is on top?\"},"
                + " {\"from\": \"gpt\", \"value\": \"a red circle\"}]}");
        LlavaDataset ds = new LlavaDataset(List.of(r), tok, "v1", Fixtures.IMAGES, proc, "pad", 10, IMAGE_TOKEN);
        LlavaDataset.Sample s = ds.get(0);
        assertEquals(10, s.inputIds().length);
        assertNull(s.pixels());
        assertTrue(s.warning() != null && s.warning().contains("late") && s.warning().contains("image token"), s.warning());
    }
}
