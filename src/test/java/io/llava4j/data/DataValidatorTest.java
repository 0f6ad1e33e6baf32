package io.llava4j.data;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

import static io.llava4j.data.Fixtures.IMAGE_TOKEN;
import static org.junit.jupiter.api.Assertions.*;

/** Every class of bad record is found, named (index, id, reason) and counted; good records pass untouched. */
class DataValidatorTest {
    static LlavaTokenizer tok;
    static ImageProcessor proc;
    static final int FEATURES = 16; // tiny-llava: 16 px images, patch 4

    @BeforeAll
    static void load() throws IOException {
        tok = LlavaTokenizer.load(Fixtures.MODEL);
        proc = ImageProcessor.load(Fixtures.MODEL);
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    static String rec(String id, String image, String... turns) {
        StringBuilder b = new StringBuilder("{\"id\": \"" + id + "\"");
        if (image != null) b.append(", \"image\": ").append(Fixtures.JSON.getNodeFactory().textNode(image).toString());
        b.append(", \"conversations\": [");
        for (int i = 0; i < turns.length; i += 2) {
            if (i > 0) b.append(", ");
            b.append("{\"from\": \"").append(turns[i]).append("\", \"value\": ").append(Fixtures.JSON.getNodeFactory().textNode(turns[i + 1]).toString()).append('}');
        }
        return b.append("]}").toString();
    }

    /** An image folder with the two fixture images, an empty and a corrupt file, and a file and symlinks outside it. */
    static Path images(Path dir) throws IOException {
        Path images = Files.createDirectories(dir.resolve("images"));
        Files.copy(Fixtures.IMAGES.resolve("img0.png"), images.resolve("img0.png"));
        Files.copy(Fixtures.IMAGES.resolve("img1.png"), images.resolve("img1.png"));
        Files.write(images.resolve("empty.png"), new byte[0]);
        byte[] png = Files.readAllBytes(Fixtures.IMAGES.resolve("img0.png"));
        Files.write(images.resolve("cut.png"), java.util.Arrays.copyOf(png, 30)); // a PNG cut inside its header
        Files.writeString(images.resolve("text.png"), "not an image at all");
        Files.copy(Fixtures.IMAGES.resolve("img0.png"), dir.resolve("secret.png"));
        Files.createSymbolicLink(images.resolve("out.png"), dir.resolve("secret.png"));
        Files.createSymbolicLink(images.resolve("in.png"), images.resolve("img1.png")); // a symlink that stays inside: fine
        return images;
    }

    static DataReport validate(Path file, Path images, String version, int maxLen, int threads) throws IOException {
        List<Finding> bad = new ArrayList<>();
        List<LlavaRecord> records = LlavaJson.read(file, bad::add);
        return DataValidator.validate(file, records, bad,
                new DataValidator.Settings(tok, version, images, proc, "square", maxLen, IMAGE_TOKEN, FEATURES, threads));
    }

    @Test
    void everyBadRecordIsListedWithIndexIdAndReason(@TempDir Path dir) throws IOException {
        Path images = images(dir);
        String q = "<image>\nWhat is it?";
        List<String> recs = List.of(
                rec("good", "img0.png", "human", q, "gpt", "a red circle"),                          // 0
                "{\"id\": \"noconv\", \"image\": \"img0.png\"}",                                       // 1 json shape
                rec("roles", "img0.png", "human", q, "human", "again"),                               // 2 roles
                rec("twice", "img0.png", "human", q, "gpt", "a", "human", "<image> more", "gpt", "b"), // 3 image count
                rec("gone", "nope.png", "human", q, "gpt", "a"),                                      // 4 missing
                rec("empty", "empty.png", "human", q, "gpt", "a"),                                    // 5 unreadable
                rec("cut", "cut.png", "human", q, "gpt", "a"),                                        // 6 unreadable
                rec("text", "text.png", "human", q, "gpt", "a"),                                      // 7 unreadable
                rec("dots", "../secret.png", "human", q, "gpt", "a"),                                 // 8 path escape
                rec("abs", dir.resolve("secret.png").toString(), "human", q, "gpt", "a"),             // 9 path escape
                rec("link", "out.png", "human", q, "gpt", "a"),                                       // 10 path escape
                rec("unk", null, "human", "Say <unk>", "gpt", "ok"),                                  // 11 masking mismatch
                rec("noimg", "img1.png", "human", "What is it?", "gpt", "a"),                         // 12 image unused
                rec("inlink", "in.png", "human", q, "gpt", "a"),                                      // 13 fine
                rec("sub", "./sub/../img1.png", "human", q, "gpt", "a"));                             // 14 fine: stays inside
        Path file = dir.resolve("data.json");
        Files.writeString(file, "[" + String.join(",\n", recs) + "]");

        DataReport r = validate(file, images, "v1", 2048, 3);
        assertEquals(15, r.records());
        Map<Integer, DataProblem> byIndex = r.findings().stream().collect(Collectors.toMap(Finding::index, Finding::problem));
        assertEquals(Map.ofEntries(Map.entry(1, DataProblem.JSON_SHAPE), Map.entry(2, DataProblem.ROLES),
                Map.entry(3, DataProblem.IMAGE_COUNT), Map.entry(4, DataProblem.IMAGE_MISSING),
                Map.entry(5, DataProblem.IMAGE_UNREADABLE), Map.entry(6, DataProblem.IMAGE_UNREADABLE),
                Map.entry(7, DataProblem.IMAGE_UNREADABLE), Map.entry(8, DataProblem.PATH_ESCAPE),
                Map.entry(9, DataProblem.PATH_ESCAPE), Map.entry(10, DataProblem.PATH_ESCAPE),
                Map.entry(11, DataProblem.MASKING_MISMATCH), Map.entry(12, DataProblem.IMAGE_UNUSED)), byIndex);
        for (Finding f : r.findings()) {
            String id = new String[]{"good", "noconv", "roles", "twice", "gone", "empty", "cut", "text", "dots", "abs", "link", "unk", "noimg"}[f.index()];
            assertEquals(id, f.id());
            assertTrue(f.message().contains("record #" + f.index() + " (id \"" + id + "\")") && f.message().contains(file.toString()), f.message());
        }
        assertTrue(r.findings().get(7).message().contains("secret.png") && r.findings().get(7).message().contains("outside --image_folder"));
        assertEquals(Map.of(DataProblem.JSON_SHAPE, 1, DataProblem.ROLES, 1, DataProblem.IMAGE_COUNT, 1, DataProblem.IMAGE_MISSING, 1,
                DataProblem.IMAGE_UNREADABLE, 3, DataProblem.PATH_ESCAPE, 3, DataProblem.MASKING_MISMATCH, 1, DataProblem.IMAGE_UNUSED, 1), r.counts());

        String text = r.render(50);
        assertTrue(text.contains("10 would stop training, 1 train on nothing, 1 with notes"), text);
        assertTrue(text.matches("(?s).*image unreadable\\s+3\\s+stops the run.*"), text);
        for (Finding f : r.findings()) assertTrue(text.contains(f.message()), f.message());

        DataException e = assertThrows(DataException.class, () -> r.forTraining(DataReport.OnBadSample.ERROR));
        assertTrue(e.getMessage().contains("10 of 15 records would stop training") && e.getMessage().contains("--on_bad_sample skip"), e.getMessage());
        List<String> kept = r.forTraining(DataReport.OnBadSample.SKIP).stream().map(LlavaRecord::id).toList();
        assertEquals(List.of("good", "unk", "noimg", "inlink", "sub"), kept, "skip keeps what LLaVA accepts, also what trains on nothing");

        // the same findings with one thread; the full list as a file
        assertEquals(r.findings(), validate(file, images, "v1", 2048, 1).findings());
        Path tsv = dir.resolve("report.tsv");
        r.write(tsv);
        List<String> lines = Files.readAllLines(tsv);
        assertEquals(13, lines.size());
        assertTrue(lines.get(5).startsWith("5\tempty\timage unreadable\tstops\t"), lines.get(5));
    }

    @Test
    void trainingRefusesAnEscapingPathToo(@TempDir Path dir) throws IOException {
        Path images = images(dir);
        LlavaRecord r = Fixtures.record(rec("dots", "../secret.png", "human", "<image>\nWhat?", "gpt", "a"));
        LlavaDataset ds = new LlavaDataset(List.of(r), tok, "v1", images, proc, "square", 2048, IMAGE_TOKEN);
        RecordException e = assertThrows(RecordException.class, () -> ds.get(0));
        assertEquals(DataProblem.PATH_ESCAPE, e.problem());
        assertTrue(e.getMessage().contains("\"dots\"") && e.getMessage().contains("../secret.png"), e.getMessage());
    }

    @Test
    void samplesThatTrainOnNothingOrAreCutAreCounted(@TempDir Path dir) throws IOException {
        Path images = images(dir);
        Path file = dir.resolve("plain.json");
        String longAnswer = "a red circle and a blue square ".repeat(20);
        Files.writeString(file, "[" + rec("short", "img0.png", "human", "<image>", "gpt", "a red circle") + ",\n"
                + rec("long", "img1.png", "human", "<image>", "gpt", longAnswer) + "]");
        // plain: BOS, then 16 image rows; at 12 positions no answer token is left
        DataReport cut = validate(file, images, "plain", 12, 2);
        assertEquals(Map.of(DataProblem.TRUNCATED_TO_NO_LABEL, 2), cut.counts());
        assertTrue(cut.findings().get(0).message().contains("image rows included"), cut.findings().get(0).message());
        assertEquals(2, cut.forTraining(DataReport.OnBadSample.ERROR).size(), "LLaVA accepts them: they stay, with a warning");
        // at 64 positions the short one fits and the long one loses its tail
        DataReport some = validate(file, images, "plain", 64, 2);
        assertEquals(Map.of(DataProblem.TRUNCATED, 1), some.counts());
        assertEquals("long", some.findings().get(0).id());
        assertTrue(some.findings().get(0).message().matches(".*: \\d+ positions \\(image rows included\\) are cut to --model_max_length 64; \\d+ of \\d+ supervised tokens are lost"),
                some.findings().get(0).message());
        assertTrue(validate(file, images, "plain", 2048, 2).findings().isEmpty());
    }

    @Test
    void supervisedCountFollowsTheMergedSequence() {
        // ids: BOS, text, IMAGE, a, b; labels on a and b only
        int[] ids = {1, 5, IMAGE_TOKEN, 7, 8}, labels = {-100, -100, -100, 7, 8};
        // merged: BOS(0) text(1) image rows 2..17, a(18) b(19)
        assertEquals(2, DataValidator.supervisedAfterMerge(ids, labels, IMAGE_TOKEN, FEATURES, 20));
        assertEquals(1, DataValidator.supervisedAfterMerge(ids, labels, IMAGE_TOKEN, FEATURES, 19));
        assertEquals(0, DataValidator.supervisedAfterMerge(ids, labels, IMAGE_TOKEN, FEATURES, 18));
        assertEquals(2, DataValidator.supervisedAfterMerge(new int[]{1, 7, 8}, new int[]{7, 7, 8}, IMAGE_TOKEN, FEATURES, 3),
                "position 0 is never a target");
    }

    @Test
    void malformedJson(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("bad.json");
        Files.writeString(file, "[" + rec("a", null, "human", "q", "gpt", "a") + ",\n {\"id\": \"b\", \"conversations\": [}]");
        DataException e = assertThrows(DataException.class, () -> LlavaJson.read(file, f -> {}));
        assertTrue(e.getMessage().contains(file.toString()) && e.getMessage().contains("record #1") && e.getMessage().contains("line 2"), e.getMessage());
        // JSON Lines: a bad line is one finding, the others are read
        Path lines = dir.resolve("data.jsonl");
        Files.writeString(lines, rec("a", null, "human", "q", "gpt", "a") + "\n{not json\n" + rec("c", null, "human", "q", "gpt", "c") + "\n");
        DataReport r = validate(lines, null, "v1", 2048, 2);
        assertEquals(3, r.records());
        assertEquals(1, r.findings().size());
        assertEquals(1, r.findings().get(0).index());
        assertEquals(DataProblem.JSON_SHAPE, r.findings().get(0).problem());
        assertTrue(r.findings().get(0).message().contains("line 2"), r.findings().get(0).message());
        assertEquals(List.of("a", "c"), r.forTraining(DataReport.OnBadSample.SKIP).stream().map(LlavaRecord::id).toList());
    }

    @Test
    void aMissingImageFolderIsOneError(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("d.json");
        Files.writeString(file, "[" + rec("a", "img0.png", "human", "<image>", "gpt", "a") + "]");
        DataException e = assertThrows(DataException.class, () -> validate(file, null, "plain", 2048, 1));
        assertTrue(e.getMessage().contains("--image_folder"), e.getMessage());
        e = assertThrows(DataException.class, () -> validate(file, dir.resolve("nowhere"), "plain", 2048, 1));
        assertTrue(e.getMessage().contains("nowhere") && e.getMessage().contains("not a folder"), e.getMessage());
    }
}
