package io.llava4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.llava4j.TestData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/** The score and inspect commands end to end. */
class CliTest {
    static final ObjectMapper JSON = new ObjectMapper();

    static JsonNode score(Path model, Path data, String version, int batch, Path out) throws Exception {
        int rc = Main.run("score", "--model_name_or_path", model.toString(), "--data_path", data.resolve("pretrain.json").toString(),
                "--image_folder", data.resolve("images").toString(), "--version", version,
                "--per_device_eval_batch_size", String.valueOf(batch), "--output_json", out.toString());
        assertEquals(0, rc);
        return JSON.readTree(out.toFile());
    }

    @Test
    void scoreGivesTheReferenceStage1Loss(@TempDir Path tmp) throws Exception {
        double want = JSON.readTree(TestData.expected().resolve("stage1/reference.json").toFile()).get("losses").get(0).asDouble();
        for (int batch : new int[]{1, 2}) {
            JsonNode s = score(TestData.tinyLlava(), TestData.tinyData(), "plain", batch, tmp.resolve("s" + batch + ".json"));
            assertEquals(want, s.get("mean_loss").asDouble(), 1e-4 * want, "batch " + batch);
            assertEquals(2, s.get("samples").size());
            long tokens = 0;
            double weighted = 0;
            for (JsonNode x : s.get("samples")) {
                tokens += x.get("supervised_tokens").asLong();
                weighted += x.get("loss").asDouble() * x.get("supervised_tokens").asLong();
            }
            assertEquals(tokens, s.get("supervised_tokens").asLong());
            assertEquals(s.get("mean_loss").asDouble(), weighted / tokens, 1e-6, "token-weighted mean");
            assertEquals("p0", s.get("samples").get(0).get("id").asText());
        }
    }

    @Test
    void paddingDoesNotChangePerSampleLosses(@TempDir Path tmp) throws Exception {
        JsonNode[] runs = new JsonNode[2];
        for (int batch = 1; batch <= 2; batch++) {
            Path out = tmp.resolve("f" + batch + ".json");
            assertEquals(0, Main.run("score", "--model_name_or_path", TestData.tinyLlava().toString(),
                    "--data_path", TestData.tinyData().resolve("finetune.json").toString(),
                    "--image_folder", TestData.tinyData().resolve("images").toString(), "--version", "v1",
                    "--per_device_eval_batch_size", String.valueOf(batch), "--output_json", out.toString()));
            runs[batch - 1] = JSON.readTree(out.toFile());
        }
        // the two records have different lengths: batch 2 right-pads the shorter one
        assertNotEquals(runs[0].get("samples").get(0).get("supervised_tokens"), runs[0].get("samples").get(1).get("supervised_tokens"));
        for (int i = 0; i < 2; i++) {
            double a = runs[0].get("samples").get(i).get("loss").asDouble(), b = runs[1].get("samples").get(i).get("loss").asDouble();
            assertEquals(a, b, 1e-5 * Math.abs(a), "sample " + i);
        }
    }

    @Test
    void scoreOnTheSecondModelUsesItsOwnProcessorAndShapes(@TempDir Path tmp) throws Exception {
        Path gqa = TestData.gqa();
        double want = JSON.readTree(gqa.resolve("expected/stage1/reference.json").toFile()).get("losses").get(0).asDouble();
        JsonNode s = score(gqa.resolve("model"), gqa.resolve("data"), "plain", 2, tmp.resolve("s.json"));
        assertEquals(want, s.get("mean_loss").asDouble(), 1e-4 * want);
    }

    @Test
    void inspectPrintsLayoutAndCounts() {
        PrintStream old = System.out;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        System.setOut(new PrintStream(buf));
        try {
            assertEquals(0, Main.run("inspect", "--model_name_or_path", TestData.tinyLlava().toString()));
        } finally {
            System.setOut(old);
        }
        String out = buf.toString();
        assertTrue(out.contains("LLAVA_HF"), out);
        // CLIP: 3 layers of width 32 on 16 px / patch 4; counted independently from the config
        long h = 32, inter = 64, layers = 3, patches = 16;
        long clip = h + h * 3 * 16 + (patches + 1) * h + 2 * h * 2
                + layers * (4 * (h * h + h) + 2 * 2 * h + h * inter + inter + inter * h + h);
        assertTrue(out.matches("(?s).*vision\\s+" + String.format("%,d", clip) + "\\n.*"), out);
        long proj = 32 * 48 + 48 + 48 * 48 + 48;
        assertTrue(out.matches("(?s).*projector\\s+" + String.format("%,d", proj) + "\\n.*"), out);
    }

    @Test
    void badInputNamesTheCulprit(@TempDir Path tmp) {
        PrintStream old = System.err;
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        System.setErr(new PrintStream(err));
        try {
            int rc = Main.run("score", "--model_name_or_path", tmp.toString(), "--data_path", "x.json", "--output_json", "o.json");
            assertNotEquals(0, rc);
        } finally {
            System.setErr(old);
        }
        assertTrue(err.toString().contains(tmp.resolve("config.json").toString()), err.toString());
    }
}
