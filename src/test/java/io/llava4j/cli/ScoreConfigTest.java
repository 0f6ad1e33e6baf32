package io.llava4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.TestData;
import io.llava4j.io.Layout;
import io.llava4j.model.Checkpoints;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code score} end to end with what a model folder's configs say: the config's image_aspect_ratio, a tokenizer.model
 * folder, a Mistral text config, and refusals that come before any weight is read.
 */
class ScoreConfigTest {
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    record Run(int rc, String err, JsonNode out) {}

    private Run score(Path model, Path data, Path images, String version, String... extra) throws IOException {
        Path out = tmp.resolve("score-" + System.nanoTime() + ".json");
        List<String> args = new ArrayList<>(List.of("score", "--model_name_or_path", model.toString(), "--data_path", data.toString(),
                "--image_folder", images.toString(), "--version", version, "--output_json", out.toString()));
        args.addAll(List.of(extra));
        PrintStream old = System.err;
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        System.setErr(new PrintStream(err));
        int rc;
        try {
            rc = Main.run(args.toArray(String[]::new));
        } finally {
            System.setErr(old);
        }
        return new Run(rc, err.toString(), rc == 0 ? JSON.readTree(out.toFile()) : null);
    }

    /** A copy of tiny-llava with its config.json edited; {@code weights} false writes a file that is not safetensors. */
    private Path tiny(String name, boolean weights, Consumer<ObjectNode> edit) throws IOException {
        Path dir = Files.createDirectories(tmp.resolve(name));
        try (var files = Files.list(TestData.tinyLlava())) {
            for (Path f : files.toList()) Files.copy(f, dir.resolve(f.getFileName()));
        }
        if (!weights) Files.writeString(dir.resolve("model.safetensors"), "not weights");
        ObjectNode cfg = (ObjectNode) JSON.readTree(dir.resolve("config.json").toFile());
        edit.accept(cfg);
        Files.writeString(dir.resolve("config.json"), cfg.toPrettyString());
        return dir;
    }

    private static Path pretrain() {
        return TestData.tinyData().resolve("pretrain.json");
    }

    private static Path images() {
        return TestData.tinyData().resolve("images");
    }

    @Test
    void scoreUsesTheConfigsImageAspectRatio() throws Exception {
        // an original LLaVA folder of the tiny model whose config says pad, as llava-v1.5-7b's does
        Path model = tmp.resolve("orig");
        Checkpoints.save(Checkpoints.load(TestData.tinyLlava()).model(), Layout.ORIGINAL_LLAVA, model, TestData.tinyLlava(), false);
        ObjectNode cfg = (ObjectNode) JSON.readTree(model.resolve("config.json").toFile());
        cfg.put("image_aspect_ratio", "pad");
        Files.writeString(model.resolve("config.json"), cfg.toPrettyString());
        // a wide image: pad and square differ
        Path images = Files.createDirectories(tmp.resolve("images"));
        BufferedImage img = new BufferedImage(24, 12, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < 12; y++) for (int x = 0; x < 24; x++) img.setRGB(x, y, (x * 10) << 16 | (y * 20) << 8 | 0x40);
        ImageIO.write(img, "png", images.resolve("wide.png").toFile());
        Path data = tmp.resolve("wide.json");
        Files.writeString(data, """
                [{"id": "w", "image": "wide.png", "conversations": [
                  {"from": "human", "value": "<image>\\nDescribe it."}, {"from": "gpt", "value": "a red circle above a blue square"}]}]""");

        double config = score(model, data, images, "plain").out().get("mean_loss").asDouble();
        double pad = score(model, data, images, "plain", "--image_aspect_ratio", "pad").out().get("mean_loss").asDouble();
        double square = score(model, data, images, "plain", "--image_aspect_ratio", "square").out().get("mean_loss").asDouble();
        assertEquals(pad, config, 0.0, "no flag: the config's pad");
        assertNotEquals(square, pad, "the image differs between pad and square");
    }

    @Test
    void aFolderWithoutTokenizerFailsBeforeTheWeights() throws Exception {
        Path model = tiny("no-tokenizer", false, c -> {});
        Files.delete(model.resolve("tokenizer.json"));
        Run r = score(model, pretrain(), images(), "plain");
        assertNotEquals(0, r.rc());
        assertTrue(r.err().contains(model + ": no tokenizer"), r.err());
        assertTrue(r.err().contains("tokenizer.model") && r.err().contains("tokenizer.json"), r.err());
    }

    @Test
    void anUnsupportedConfigFailsBeforeTheTokenizerAndTheWeights() throws Exception {
        Path model = tiny("idefics", false, c -> c.put("model_type", "idefics3"));
        Files.delete(model.resolve("tokenizer.json"));
        Run r = score(model, pretrain(), images(), "plain");
        assertNotEquals(0, r.rc());
        assertTrue(r.err().contains("idefics3") && r.err().contains("not supported"), r.err());
    }

    @Test
    void mistralTextScoresAsLlamaWhileTheWindowCoversTheSequence() throws Exception {
        double want = JSON.readTree(TestData.expected().resolve("stage1/reference.json").toFile()).get("losses").get(0).asDouble();
        Path wide = tiny("mistral", true, c -> ((ObjectNode) c.get("text_config")).put("model_type", "mistral").put("sliding_window", 64));
        Run ok = score(wide, pretrain(), images(), "plain", "--model_max_length", "64");
        assertEquals(0, ok.rc(), ok.err());
        assertEquals(want, ok.out().get("mean_loss").asDouble(), 1e-4 * want);

        Path narrow = tiny("mistral-narrow", false, c -> ((ObjectNode) c.get("text_config")).put("model_type", "mistral").put("sliding_window", 8));
        Run refused = score(narrow, pretrain(), images(), "plain", "--model_max_length", "64");
        assertNotEquals(0, refused.rc());
        assertTrue(refused.err().contains("sliding_window") && refused.err().contains("64"), refused.err());
    }

    @Test
    void aFolderWithOnlyTokenizerModelScores() throws Exception {
        // the tiny model with the SentencePiece tokenizer of the tokenizer tests (800 pieces, <image> added at 1023)
        Path model = tiny("sentencepiece", true, c -> {});
        Files.delete(model.resolve("tokenizer.json"));
        Files.copy(Path.of("src/test/resources/sentencepiece/tokenizer.model"), model.resolve("tokenizer.model"));
        Files.writeString(model.resolve("tokenizer_config.json"), """
                {"tokenizer_class": "LlamaTokenizer", "legacy": false, "add_bos_token": true, "add_eos_token": false,
                 "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": null,
                 "added_tokens_decoder": {"1023": {"content": "<image>", "lstrip": false, "rstrip": false,
                   "normalized": false, "single_word": false, "special": true}}}""");
        Run r = score(model, TestData.tinyData().resolve("finetune.json"), images(), "v1");
        assertEquals(0, r.rc(), r.err());
        assertFalse(r.err().contains("mismatch"), "legacy=false rounds are counted as LLaVA counts them: " + r.err());
        assertTrue(Double.isFinite(r.out().get("mean_loss").asDouble()));
        assertTrue(r.out().get("supervised_tokens").asLong() > 0);
    }
}
