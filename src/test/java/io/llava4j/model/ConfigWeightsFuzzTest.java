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
        float[] unmutated = logits(Checkpoints.load(TestData.tinyLlava()).model());
        for (int c = 0; c < 60; c++) {
            Random rnd = new Random(SEED + c);
            StringBuilder what = new StringBuilder();
            boolean[] changed = {false};
            int edits = 1 + rnd.nextInt(2);
            Path dir = copy(cfg -> {
                for (int k = 0; k < edits; k++) {
                    String[] f = fields.get(rnd.nextInt(fields.size()));
                    ObjectNode target = f[0] == null ? cfg : (ObjectNode) cfg.get(f[0]);
                    JsonNode old = target.get(f[1]);
                    long v = rnd.nextBoolean() ? extremes[rnd.nextInt(extremes.length)] : old.asLong() + rnd.nextInt(9) - 4;
                    if (!old.isNumber() || old.asDouble() != v) changed[0] = true;
                    target.put(f[1], v);
                    what.append(f[0] == null ? "" : f[0] + ".").append(f[1]).append(' ').append(old).append(" -> ").append(v).append("; ");
                }
            });
            try {
                Llava m = Checkpoints.load(dir).model();
                loaded++;
                String outcome = forwardOutcome(m);
                System.out.println("case " + c + " (" + what + "): loaded; " + outcome);
                if (outcome.startsWith("NaN") || outcome.startsWith("crash"))
                    fail("case " + c + " (seed " + (SEED + c) + ", " + what + "): loaded, then " + outcome);
                if (!changed[0]) // every edit wrote the value back: the unmutated model's logits, bit for bit
                    assertArrayEquals(unmutated, logits(m), 0f, "case " + c + " (" + what + "): no value changed");
            } catch (ConfigException | CheckpointException e) {
                assertTrue(e.getMessage().contains(dir.toString()), "case " + c + " (" + what + "): " + e.getMessage());
                refused++;
            } catch (Throwable e) {
                StringWriter w = new StringWriter();
                e.printStackTrace(new PrintWriter(w));
                fail("case " + c + " (seed " + (SEED + c) + ", " + what + "): " + w);
            }
        }
        assertTrue(refused >= 20, "at least a third of the random configs are refused: loaded " + loaded + ", refused " + refused);
        assertTrue(loaded >= 2, "some random configs still fit the weights: loaded " + loaded + ", refused " + refused);
    }

    /** Edits that change nothing the model computes load to the unmutated model's logits, bit for bit. */
    @Test
    void benignEditsGiveTheSameLogits() throws Exception {
        float[] base = logits(Checkpoints.load(TestData.tinyLlava()).model());
        for (java.util.function.Consumer<ObjectNode> edit : List.<java.util.function.Consumer<ObjectNode>>of(
                c -> ((ObjectNode) c.get("text_config")).put("max_position_embeddings", 100_000), // RoPE without scaling ignores it
                c -> c.put("unknown_field", 1).put("transformers_version", "0.0.0"),
                c -> ((ObjectNode) c.get("vision_config")).put("projection_dim", 7))) { // CLIPVisionModel has no projection
            Path dir = copy(edit);
            assertArrayEquals(base, logits(Checkpoints.load(dir).model()), 0f, dir.resolve("config.json").toString());
        }
        // and an edit that does change the computation is seen (the check above can fail)
        Path eps = copy(c -> ((ObjectNode) c.get("text_config")).put("rope_theta", 500.0));
        assertFalse(java.util.Arrays.equals(base, logits(Checkpoints.load(eps).model())), "rope_theta 500 changes the logits");
    }

    /** The reference case's logits (one image, 14 ids). */
    private static float[] logits(Llava m) {
        Map<String, HostTensor> ex = TestData.tensors(TestData.expected().resolve("forward-and-grads.safetensors"));
        try (org.bytedeco.pytorch.NoGradGuard g = new org.bytedeco.pytorch.NoGradGuard()) {
            return io.llava4j.engine.Tensors.toFloats(m.forward(io.llava4j.engine.Tensors.fromHost(ex.get("case.pixel_values")),
                    new long[][]{ex.get("case.input_ids").toLongs()}, new long[][]{ex.get("case.labels").toLongs()}).logits());
        }
    }

    /**
     * What a forward of the reference case does on a model that loaded: finite logits, a refusal by name (the case no
     * longer fits the edited config: another image size or image token), or NaN / a crash, which fail the test.
     */
    private static String forwardOutcome(Llava m) {
        float[] l;
        try {
            l = logits(m);
        } catch (IllegalArgumentException | IllegalStateException | ConfigException e) {
            return "forward refused: " + e.getMessage();
        } catch (Throwable e) {
            StringWriter w = new StringWriter();
            e.printStackTrace(new PrintWriter(w));
            return "crash: " + w;
        }
        for (float x : l) if (!Float.isFinite(x)) return "NaN or Inf in the logits";
        return "finite logits";
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
