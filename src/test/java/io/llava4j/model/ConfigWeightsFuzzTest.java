package io.llava4j.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.TestData;
import io.llava4j.config.ConfigException;
import io.llava4j.io.HostTensor;
import io.llava4j.io.Safetensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * config.json disagreeing with the weights, at random: numeric fields of tiny-llava's config (sizes, layer and head
 * counts, vocabulary, positions, image and patch sizes, the image token, the feature layer) set to seeded random or
 * extreme values, then the whole model loaded. Each case loads (the config still fits the tensors) or fails with a
 * ConfigException / CheckpointException naming the folder — never another exception, a native crash, or memory
 * reserved for a model the files cannot hold ({@link Checkpoints#checkSizeAgainstWeights}). Then random missing,
 * unexpected, renamed and mis-shaped tensors, each named. StrictLoadingTest has the hand-written cases.
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

    /** Random missing, unexpected, renamed, re-shaped and re-typed tensors: each named in a CheckpointException. */
    @Test
    void randomTensorEdits() throws Exception {
        Map<String, HostTensor> base = Safetensors.read(TestData.tinyLlava().resolve("model.safetensors")).tensors();
        List<String> names = new ArrayList<>(base.keySet());
        for (int c = 0; c < 40; c++) {
            Random rnd = new Random(SEED + 1000 + c);
            Map<String, HostTensor> t = new LinkedHashMap<>(base);
            String name = names.get(rnd.nextInt(names.size()));
            HostTensor h = t.get(name);
            String what;
            String expect = name;
            switch (rnd.nextInt(4)) {
                case 0 -> {
                    t.remove(name);
                    what = "missing " + name;
                }
                case 1 -> {
                    expect = name.replace("layers.", "layers.9");
                    if (expect.equals(name)) expect = name + "_extra";
                    t.put(expect, h);
                    what = "unexpected " + expect;
                }
                case 2 -> {
                    long[] shape = h.shape().clone();
                    long n = 1;
                    for (long d : shape) n *= d;
                    long[] wrong = shape.length == 2 && shape[0] != shape[1] ? new long[]{shape[1], shape[0]} : new long[]{n};
                    if (java.util.Arrays.equals(wrong, shape)) wrong = new long[]{1, n};
                    t.put(name, HostTensor.ofFloats(wrong, h.toFloats()));
                    what = name + " reshaped to " + java.util.Arrays.toString(wrong);
                }
                default -> {
                    t.remove(name);
                    expect = name.substring(0, name.lastIndexOf('.')) + ".renamed" + name.substring(name.lastIndexOf('.') + 1);
                    t.put(expect, h);
                    what = "renamed " + name + " to " + expect;
                }
            }
            Path dir = tmp.resolve("t" + c);
            Files.createDirectories(dir);
            for (String f : new String[]{"config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json"})
                Files.copy(TestData.tinyLlava().resolve(f), dir.resolve(f));
            Safetensors.write(dir.resolve("model.safetensors"), t, Map.of("format", "pt"));
            try {
                Checkpoints.load(dir);
                fail("case " + c + " (" + what + ") loaded");
            } catch (CheckpointException e) {
                assertTrue(e.getMessage().contains(dir.toString()) && e.getMessage().contains(expect),
                        "case " + c + " (" + what + "): " + e.getMessage());
            }
        }
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
