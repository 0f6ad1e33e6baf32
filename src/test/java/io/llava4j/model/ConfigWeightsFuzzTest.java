package io.llava4j.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.TestData;
import io.llava4j.config.ConfigException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * config.json disagreeing with the weights, at random: numeric fields of tiny-llava's config (sizes, layer and head
 * counts, vocabulary, positions, image and patch sizes, the image token, the feature layer) set to seeded random or
 * extreme values, then the whole model loaded. Each case loads (the config still fits the tensors) or fails with a
 * ConfigException / CheckpointException naming the folder — never another exception, a native crash, or memory
 * reserved for a model the files cannot hold ({@link Checkpoints#checkSizeAgainstWeights}). StrictLoadingTest has
 * the hand-written cases (missing, unexpected and mis-shaped tensors, each field).
 */
class ConfigWeightsFuzzTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    static final long SEED = Long.getLong("llava4j.fuzz.seed", 20261128L);

    @TempDir
    Path tmp;

    @Test
    void hugeVocabularyIsRefusedBeforeAnyMemoryIsReserved() throws Exception {
        Path dir = copy(c -> ((ObjectNode) c.get("text_config")).put("vocab_size", Integer.MAX_VALUE).put("hidden_size", 65536)
                .put("num_attention_heads", 4).put("num_key_value_heads", 4));
        String msg = assertThrows(CheckpointException.class, () -> Checkpoints.load(dir)).getMessage();
        assertTrue(msg.contains(dir.toString()) && msg.contains("config disagrees with the weights")
                && msg.contains("the weights hold 176432"), msg);
    }

    @Test
    void randomConfigsAgainstTheSameWeights() throws Exception {
        ObjectNode base = (ObjectNode) JSON.readTree(TestData.tinyLlava().resolve("config.json").toFile());
        List<String[]> fields = new ArrayList<>();
        for (String part : new String[]{"text_config", "vision_config"})
            base.get(part).fields().forEachRemaining(e -> {
                if (e.getValue().isNumber()) fields.add(new String[]{part, e.getKey()});
            });
        base.fields().forEachRemaining(e -> {
            if (e.getValue().isNumber()) fields.add(new String[]{null, e.getKey()});
        });
        long[] extremes = {0, 1, -1, 2, 3, 7, 64, 1 << 20, Integer.MAX_VALUE, Integer.MIN_VALUE, 1L << 40};
        int loaded = 0, refused = 0;
        for (int c = 0; c < 60; c++) {
            Random rnd = new Random(SEED + c);
            StringBuilder what = new StringBuilder();
            int edits = 1 + rnd.nextInt(2);
            Path dir = copy(cfg -> {
                for (int k = 0; k < edits; k++) {
                    String[] f = fields.get(rnd.nextInt(fields.size()));
                    ObjectNode target = f[0] == null ? cfg : (ObjectNode) cfg.get(f[0]);
                    JsonNode old = target.get(f[1]);
                    long v = rnd.nextBoolean() ? extremes[rnd.nextInt(extremes.length)] : old.asLong() + rnd.nextInt(9) - 4;
                    target.put(f[1], v);
                    what.append(f[0] == null ? "" : f[0] + ".").append(f[1]).append(' ').append(old).append(" -> ").append(v).append("; ");
                }
            });
            try {
                Checkpoints.load(dir);
                loaded++;
            } catch (ConfigException | CheckpointException e) {
                assertTrue(e.getMessage().contains(dir.toString()), "case " + c + " (" + what + "): " + e.getMessage());
                refused++;
            } catch (Throwable e) {
                StringWriter w = new StringWriter();
                e.printStackTrace(new PrintWriter(w));
                fail("case " + c + " (seed " + (SEED + c) + ", " + what + "): " + w);
            }
        }
        assertTrue(refused > 0, "loaded " + loaded + ", refused " + refused);
    }

    private int copies;

    private Path copy(java.util.function.Consumer<ObjectNode> edit) throws Exception {
        Path dir = tmp.resolve("m" + copies++);
        Files.createDirectories(dir);
        for (String f : new String[]{"model.safetensors", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json"})
            Files.copy(TestData.tinyLlava().resolve(f), dir.resolve(f));
        ObjectNode c = (ObjectNode) JSON.readTree(TestData.tinyLlava().resolve("config.json").toFile());
        edit.accept(c);
        JSON.writeValue(dir.resolve("config.json").toFile(), c);
        return dir;
    }
}
