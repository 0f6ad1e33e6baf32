package io.llava4j.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import io.llava4j.TestData;
import io.llava4j.cli.TrainCommand;
import io.llava4j.config.LlavaConfig;
import io.llava4j.data.DataException;
import io.llava4j.data.DataValidator;
import io.llava4j.data.LlavaDataset;
import io.llava4j.data.LlavaTokenizer;
import io.llava4j.model.Checkpoints;
import io.llava4j.model.Llava;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** Training checks its data before any weight is read, skips what it is told to, and survives an image lost mid-run. */
class DataPreflightTest {
    static final ObjectMapper JSON = new ObjectMapper();

    /** A copy of the stage-1 data and images with bad records appended. */
    static Path badData(Path dir) throws Exception {
        Path images = Files.createDirectories(dir.resolve("images"));
        for (String f : List.of("img0.png", "img1.png")) Files.copy(TestData.tinyData().resolve("images").resolve(f), images.resolve(f));
        ArrayNode recs = (ArrayNode) JSON.readTree(TestData.tinyData().resolve("pretrain.json").toFile());
        recs.add(JSON.readTree("{\"id\": \"gone\", \"image\": \"nope.png\", \"conversations\": [{\"from\": \"human\", \"value\": \"<image>\"},"
                + " {\"from\": \"gpt\", \"value\": \"x\"}]}"));
        recs.add(JSON.readTree("{\"id\": \"three\", \"image\": \"img0.png\", \"conversations\": [{\"from\": \"human\", \"value\": \"<image>\"},"
                + " {\"from\": \"gpt\", \"value\": \"x\"}, {\"from\": \"gpt\", \"value\": \"y\"}]}"));
        recs.add(JSON.readTree("{\"id\": \"up\", \"image\": \"../images/../../etc/passwd\", \"conversations\": [{\"from\": \"human\", \"value\": \"<image>\"},"
                + " {\"from\": \"gpt\", \"value\": \"x\"}]}"));
        Path file = dir.resolve("data.json");
        JSON.writeValue(file.toFile(), recs);
        return file;
    }

    static List<String> flags(Path data, Path images, Path out) {
        List<String> f = new ArrayList<>(TwoStageTrainingTest.common(out));
        f.set(f.indexOf("--image_folder") + 1, images.toString());
        f.addAll(List.of("--version", "plain", "--data_path", data.toString(), "--tune_mm_mlp_adapter", "True", "--max_steps", "3"));
        return f;
    }

    @Test
    void badRecordsStopTheRunBeforeTheModelLoadsOrAreSkipped(@TempDir Path dir) throws Exception {
        Path data = badData(dir), images = dir.resolve("images");
        PrintStream old = System.out;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        System.setOut(new PrintStream(buf, true));
        Trainer stopped = new Trainer(TrainCommand.parse(flags(data, images, dir.resolve("a")).toArray(new String[0])));
        DataException e;
        try {
            e = assertThrows(DataException.class, stopped::run);
        } finally {
            System.setOut(old);
        }
        assertTrue(e.getMessage().contains("3 of 5 records would stop training"), e.getMessage());
        assertNull(stopped.model(), "no weight was read");
        String report = buf.toString();
        for (String s : List.of("record #2 (id \"gone\")", "record #3 (id \"three\")", "record #4 (id \"up\")", "image missing",
                "template", "path escape"))
            assertTrue(report.contains(s), s + " in\n" + report);

        // skip: the three are left out, and the run is the reference run on the two good records
        List<String> f = flags(data, images, dir.resolve("b"));
        f.addAll(List.of("--on_bad_sample", "skip"));
        Trainer t = TrainRuns.run(f);
        TwoStageTrainingTest.assertLosses(JSON.readTree(TestData.expected().resolve("stage1/reference.json").toFile()), t.losses());
    }

    @Test
    void anImageThatBecomesUnreadableMidRunIsSkippedAndCounted(@TempDir Path dir) throws Exception {
        Path data = badData(dir), images = dir.resolve("images");
        List<String> f = flags(data, images, dir.resolve("out"));
        f.addAll(List.of("--on_bad_sample", "skip"));
        Trainer t = new Trainer(TrainCommand.parse(f.toArray(new String[0])));
        t.progress(new TrainProgress() { // after the data check, before the first step: the image is replaced by junk
            @Override public void start(long total, long startStep) {
                try {
                    Files.writeString(images.resolve("img1.png"), "truncated");
                } catch (java.io.IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            }
            @Override public void update(long step, String fields) {}
            @Override public void done() {}
        });
        t.run();
        assertEquals(3, t.losses().size(), "every step ran");
        assertEquals(3, t.skippedSamples(), "img1's sample, once per step (batch 2 of 2 records)");
        for (double l : t.losses()) assertTrue(Double.isFinite(l) && l > 0, "loss " + l);
        assertTrue(Files.isRegularFile(dir.resolve("out").resolve("mm_projector.safetensors")), "the output is written");
    }

    @Test
    void theValidatorCountsTheLabelsTheModelSees() throws Exception {
        Path model = TestData.tinyLlava();
        LlavaConfig cfg = LlavaConfig.load(model, null, null);
        Llava m = Checkpoints.load(model).model();
        Path longData = Files.createTempFile("long", ".json");
        try (LlavaTokenizer tok = LlavaTokenizer.load(model)) {
            Files.writeString(longData, "[{\"id\": \"l\", \"image\": \"img0.png\", \"conversations\": [{\"from\": \"human\", \"value\": \"<image>\\nWhat?\"},"
                    + " {\"from\": \"gpt\", \"value\": \"" + "a red circle and a blue square ".repeat(6) + "\"}]}]");
            for (String[] c : new String[][]{{"pretrain.json", "plain"}, {"finetune.json", "v1"}, {longData.toString(), "v1"}})
                for (int max : new int[]{10, 17, 18, 19, 40, 80, 2048}) {
                    Path file = c[0].startsWith("/") ? Path.of(c[0]) : TestData.tinyData().resolve(c[0]);
                    Batches.Data d = Batches.open(tok, model, cfg, file, TestData.tinyData().resolve("images"), c[1], null, max);
                    LlavaDataset ds = d.dataset();
                    for (int i = 0; i < ds.size(); i++) {
                        LlavaDataset.Sample s = ds.get(i);
                        int predicted = DataValidator.supervisedAfterMerge(s.inputIds(), s.labels(), cfg.imageTokenIndex(),
                                cfg.imageFeatureTokens(), max);
                        try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
                            Batches.Input in = Batches.input(List.of(s), d.collator(), cfg.vision().imageSize());
                            Llava.Output out = m.forward(in.pixels(), in.inputIds(), in.labels(), in.attentionMask(), max);
                            assertEquals(Llava.supervisedTokens(out.labels()), predicted, c[0] + " record " + i + " at " + max);
                        }
                    }
                }
        } finally {
            Files.deleteIfExists(longData);
        }
    }

    @Test
    void validateCommandExitCodes(@TempDir Path dir) throws Exception {
        Path data = badData(dir), images = dir.resolve("images"), report = dir.resolve("r.tsv");
        String[] base = {"validate", "--model_name_or_path", TestData.tinyLlava().toString(), "--data_path", data.toString(),
                "--image_folder", images.toString(), "--version", "plain", "--report", report.toString()};
        PrintStream out = System.out, err = System.err;
        ByteArrayOutputStream o = new ByteArrayOutputStream(), e = new ByteArrayOutputStream();
        System.setOut(new PrintStream(o, true));
        System.setErr(new PrintStream(e, true));
        int rc, rcSkip, rcGood;
        try {
            rc = io.llava4j.cli.Main.run(base);
            String[] skip = java.util.Arrays.copyOf(base, base.length + 2);
            skip[base.length] = "--on_bad_sample";
            skip[base.length + 1] = "skip";
            rcSkip = io.llava4j.cli.Main.run(skip);
            rcGood = io.llava4j.cli.Main.run("validate", "--model_name_or_path", TestData.tinyLlava().toString(), "--data_path",
                    TestData.tinyData().resolve("finetune.json").toString(), "--image_folder", TestData.tinyData().resolve("images").toString());
        } finally {
            System.setOut(out);
            System.setErr(err);
        }
        assertEquals(1, rc, o + "\n" + e);
        assertEquals(0, rcSkip, o + "\n" + e);
        assertEquals(0, rcGood, o + "\n" + e);
        assertTrue(o.toString().contains("training would use 2 of 5 records"), o.toString());
        assertTrue(e.toString().contains("3 of 5 records would stop training"), e.toString());
        assertEquals(4, Files.readAllLines(report).size(), "a header and the three findings");
        assertFalse(e.toString().contains("\tat "), "no stack trace: " + e);
    }
}
