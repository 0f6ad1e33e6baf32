package io.llava4j.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.TestData;
import io.llava4j.config.LlavaConfig;
import io.llava4j.config.LlavaConfig.Family;
import io.llava4j.engine.Tensors;
import io.llava4j.io.HostTensor;
import io.llava4j.io.Layout;
import io.llava4j.io.Safetensors;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/** The tiny model written in each layout (and sharded) loads back to bit-identical parameters; a LLaMA + CLIP start. */
class LayoutTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    static Llava tiny() {
        Checkpoints.Loaded l = Checkpoints.load(TestData.tinyLlava());
        assertEquals(Layout.LLAVA_HF, l.layout());
        return l.model();
    }

    /** Same parameter names, and every parameter bit-identical. */
    static void assertSameParameters(Llava expected, Llava actual) {
        Map<String, Tensor> e = Tensors.namedParameters(expected), a = Tensors.namedParameters(actual);
        assertEquals(e.keySet(), a.keySet(), "parameter names");
        e.forEach((n, t) -> {
            assertArrayEquals(Tensors.shape(t), Tensors.shape(a.get(n)), n);
            assertTrue(t.equal(a.get(n)), "parameter " + n + " differs after the round trip");
        });
    }

    static Set<String> keys(Path file) throws IOException {
        return Safetensors.read(file).tensors().keySet();
    }

    static JsonNode json(Path file) throws IOException {
        return JSON.readTree(file.toFile());
    }

    @Test
    void llavaHfRoundTrip() throws IOException {
        Llava m = tiny();
        Path out = tmp.resolve("hf");
        Checkpoints.save(m, Layout.LLAVA_HF, out, TestData.tinyLlava(), false);
        Set<String> k = keys(out.resolve("model.safetensors"));
        assertTrue(k.contains("language_model.model.layers.0.self_attn.q_proj.weight"), k.toString());
        assertTrue(k.contains("language_model.lm_head.weight"));
        assertTrue(k.contains("multi_modal_projector.linear_1.weight"));
        assertTrue(k.contains("multi_modal_projector.linear_2.bias"));
        assertTrue(k.contains("vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight"));
        assertEquals(Tensors.namedParameters(m).keySet(), k, "llava-hf file names are the module names");
        assertTrue(Files.isRegularFile(out.resolve("tokenizer.json")), "side files copied");

        Checkpoints.Loaded back = Checkpoints.load(out);
        assertEquals(Layout.LLAVA_HF, back.layout());
        assertEquals(Family.HF_LLAVA, back.model().config.family());
        assertSameParameters(m, back.model());
    }

    @Test
    void transformersRoundTrip() throws IOException {
        Llava m = tiny();
        Path out = tmp.resolve("tr");
        Checkpoints.save(m, Layout.TRANSFORMERS, out, TestData.tinyLlava(), false);
        Set<String> k = keys(out.resolve("model.safetensors"));
        assertTrue(k.contains("model.language_model.layers.0.self_attn.q_proj.weight"), k.toString());
        assertTrue(k.contains("model.language_model.embed_tokens.weight"));
        assertTrue(k.contains("model.language_model.norm.weight"));
        assertTrue(k.contains("lm_head.weight"));
        assertTrue(k.contains("model.multi_modal_projector.linear_1.weight"));
        assertTrue(k.contains("model.vision_tower.vision_model.embeddings.patch_embedding.weight"));
        for (String key : k)
            assertTrue(key.equals("lm_head.weight") || key.startsWith("model.language_model.")
                    || key.startsWith("model.multi_modal_projector.") || key.startsWith("model.vision_tower."), key);
        assertEquals(Tensors.namedParameters(m).size(), k.size());

        Checkpoints.Loaded back = Checkpoints.load(out);
        assertEquals(Layout.TRANSFORMERS, back.layout());
        assertSameParameters(m, back.model());
    }

    @Test
    void originalLlavaRoundTrip() throws IOException {
        Llava m = tiny();
        Path out = tmp.resolve("orig");
        Checkpoints.save(m, Layout.ORIGINAL_LLAVA, out, TestData.tinyLlava(), false);
        Set<String> k = keys(out.resolve("model.safetensors"));
        assertTrue(k.contains("model.layers.0.self_attn.q_proj.weight"), k.toString());
        assertTrue(k.contains("model.embed_tokens.weight"));
        assertTrue(k.contains("lm_head.weight"));
        assertTrue(k.contains("model.mm_projector.0.weight"));
        assertTrue(k.contains("model.mm_projector.0.bias"));
        assertTrue(k.contains("model.mm_projector.2.weight"));
        assertTrue(k.contains("model.mm_projector.2.bias"));
        for (String key : k) {
            assertFalse(key.contains("vision"), "the tower is not in the LLaVA checkpoint: " + key);
            assertFalse(key.contains("language_model") || key.contains("multi_modal_projector"), key);
        }
        // the CLIP tower: a CLIPVisionModel folder of its own
        Path tower = out.resolve("vision_tower");
        Set<String> tk = keys(tower.resolve("model.safetensors"));
        assertTrue(tk.contains("vision_model.embeddings.patch_embedding.weight"), tk.toString());
        assertTrue(tk.contains("vision_model.post_layernorm.weight"));
        for (String key : tk) assertTrue(key.startsWith("vision_model."), key);
        assertEquals("clip_vision_model", json(tower.resolve("config.json")).get("model_type").asText());
        JsonNode cfg = json(out.resolve("config.json"));
        assertEquals("llava_llama", cfg.get("model_type").asText());
        assertEquals("mlp2x_gelu", cfg.get("mm_projector_type").asText());
        assertEquals(-2, cfg.get("mm_vision_select_layer").asInt());
        assertEquals("patch", cfg.get("mm_vision_select_feature").asText());
        assertEquals(32, cfg.get("mm_hidden_size").asInt());
        assertEquals(48, cfg.get("hidden_size").asInt());
        assertEquals(k.size() + tk.size(), Tensors.namedParameters(m).size());

        Checkpoints.Loaded back = Checkpoints.load(out);
        assertEquals(Layout.ORIGINAL_LLAVA, back.layout());
        LlavaConfig c = back.model().config;
        assertEquals(Family.ORIGINAL_LLAVA, c.family());
        assertEquals(2, c.projectorDepth());
        assertEquals(m.config.featureLayerIndex(), c.featureLayerIndex());
        assertEquals(m.config.visionFeatureSelectStrategy(), c.visionFeatureSelectStrategy());
        assertEquals(m.config.vision(), c.vision());
        assertEquals(m.config.text(), c.text());
        assertSameParameters(m, back.model());
    }

    @Test
    void originalLlavaWithTowerInsideCheckpoint() throws IOException {
        Llava m = tiny();
        Path out = tmp.resolve("orig-in");
        Checkpoints.save(m, Layout.ORIGINAL_LLAVA, out, TestData.tinyLlava(), true);
        Set<String> k = keys(out.resolve("model.safetensors"));
        assertTrue(k.contains("model.vision_tower.vision_tower.vision_model.embeddings.patch_embedding.weight"), k.toString());
        Checkpoints.Loaded back = Checkpoints.load(out);
        assertEquals(Layout.ORIGINAL_LLAVA, back.layout());
        assertSameParameters(m, back.model());
    }

    @Test
    void shardedCopyLoadsIdentically() throws IOException {
        Llava m = tiny();
        Path out = tmp.resolve("sharded");
        Map<String, HostTensor> t = Checkpoints.checkpointTensors(m, Layout.LLAVA_HF, false);
        Safetensors.writeSharded(out, "model", t, 64 * 1024, Map.of("format", "pt"));
        Files.copy(TestData.tinyLlava().resolve("config.json"), out.resolve("config.json"));
        assertFalse(Files.exists(out.resolve("model.safetensors")));
        assertTrue(Files.isRegularFile(out.resolve(Safetensors.INDEX_FILE)));
        long shards;
        try (Stream<Path> s = Files.list(out)) {
            shards = s.filter(p -> p.getFileName().toString().matches("model-\\d{5}-of-\\d{5}\\.safetensors")).count();
        }
        assertTrue(shards >= 2, "expected several shards, got " + shards);

        Checkpoints.Loaded back = Checkpoints.load(out);
        assertEquals(Layout.LLAVA_HF, back.layout());
        assertSameParameters(m, back.model());
    }

    @Test
    void shardedTransformersCopyLoadsIdentically() throws IOException {
        Llava m = tiny();
        Path out = tmp.resolve("sharded-tr");
        Safetensors.writeSharded(out, "model", Checkpoints.checkpointTensors(m, Layout.TRANSFORMERS, false), 100 * 1024, null);
        Files.copy(TestData.tinyLlava().resolve("config.json"), out.resolve("config.json"));
        Checkpoints.Loaded back = Checkpoints.load(out);
        assertEquals(Layout.TRANSFORMERS, back.layout());
        assertSameParameters(m, back.model());
    }

    @Test
    void plainLlamaWithVisionTowerGetsFreshProjector() throws IOException {
        Llava m = tiny();
        Path orig = tmp.resolve("orig");
        Checkpoints.save(m, Layout.ORIGINAL_LLAVA, orig, TestData.tinyLlava(), false);
        Path tower = orig.resolve("vision_tower");

        Path llama = tmp.resolve("llama");
        Files.createDirectories(llama);
        ObjectNode cfg = JSON.valueToTree(m.config.text());
        cfg.put("model_type", "llama");
        cfg.putArray("architectures").add("LlamaForCausalLM");
        JSON.writeValue(llama.resolve("config.json").toFile(), cfg);
        Map<String, HostTensor> t = Checkpoints.checkpointTensors(m, Layout.LLAMA, false);
        for (String key : t.keySet())
            assertTrue(key.equals("lm_head.weight") || key.startsWith("model.layers.") || key.startsWith("model.embed_tokens.")
                    || key.startsWith("model.norm."), key);
        Safetensors.write(llama.resolve("model.safetensors"), t, Map.of("format", "pt"));

        Checkpoints.Loaded l = Checkpoints.load(llama, tower, new LlavaConfig.ProjectorSpec("mlp2x_gelu", -2, "patch"));
        assertEquals(Layout.LLAMA, l.layout());
        Llava fresh = l.model();
        LlavaConfig c = fresh.config;
        assertEquals(Family.LLAMA, c.family());
        assertEquals(2, c.projectorDepth());
        assertEquals("gelu", c.projectorAct());
        assertEquals(-2, c.visionFeatureLayer());
        assertEquals("default", c.visionFeatureSelectStrategy());
        assertEquals(m.config.text(), c.text());
        assertEquals(m.config.vision(), c.vision());

        Map<String, Tensor> want = Tensors.namedParameters(m), got = Tensors.namedParameters(fresh);
        assertEquals(want.keySet(), got.keySet());
        for (String n : want.keySet()) {
            if (n.startsWith(Layout.PROJECTOR)) continue;
            assertTrue(want.get(n).equal(got.get(n)), "LLM / tower parameter " + n + " differs");
        }
        long vision = c.vision().hiddenSize(), text = c.text().hiddenSize();
        Map<String, Long> fanIn = Map.of("multi_modal_projector.linear_1.weight", vision, "multi_modal_projector.linear_1.bias", vision,
                "multi_modal_projector.linear_2.weight", text, "multi_modal_projector.linear_2.bias", text);
        assertEquals(fanIn.keySet(), Set.copyOf(got.keySet().stream().filter(n -> n.startsWith(Layout.PROJECTOR)).toList()));
        fanIn.forEach((n, in) -> {
            Tensor p = got.get(n);
            assertArrayEquals(Tensors.shape(want.get(n)), Tensors.shape(p), n);
            assertFalse(p.equal(want.get(n)), n + " is the tiny model's, not a fresh init");
            double bound = 1.0 / Math.sqrt(in);
            float[] v = Tensors.toFloats(p);
            double maxAbs = 0, sumAbs = 0;
            for (float x : v) {
                assertTrue(Float.isFinite(x), n);
                maxAbs = Math.max(maxAbs, Math.abs(x));
                sumAbs += Math.abs(x);
            }
            assertTrue(maxAbs <= bound, n + ": |value| " + maxAbs + " exceeds 1/sqrt(" + in + ") = " + bound);
            // uniform on ±bound has mean |x| = bound/2; a zero or constant init would fail this
            assertTrue(sumAbs / v.length > bound / 5, n + ": values look degenerate (mean |x| " + sumAbs / v.length + ")");
        });
        // the fresh projector runs
        Tensor px = org.bytedeco.pytorch.global.torch.zeros(1, 3, 16, 16);
        assertArrayEquals(new long[]{1, c.vision().numPatches(), text}, Tensors.shape(fresh.imageFeatures(px)));
    }

    @Test
    void plainLlamaWithoutVisionTowerIsRefused() throws IOException {
        Llava m = tiny();
        Path llama = tmp.resolve("llama");
        Files.createDirectories(llama);
        ObjectNode cfg = JSON.valueToTree(m.config.text());
        cfg.put("model_type", "llama");
        JSON.writeValue(llama.resolve("config.json").toFile(), cfg);
        Safetensors.write(llama.resolve("model.safetensors"), Checkpoints.checkpointTensors(m, Layout.LLAMA, false), null);
        RuntimeException e = assertThrows(RuntimeException.class, () -> Checkpoints.load(llama));
        assertTrue(e.getMessage().contains("--vision_tower"), e.getMessage());
    }

    @Test
    void detectRecognisesEachLayout() {
        assertEquals(Layout.LLAVA_HF, Layout.detect(List.of("language_model.model.norm.weight", "vision_tower.vision_model.x")));
        assertEquals(Layout.TRANSFORMERS, Layout.detect(List.of("model.language_model.norm.weight", "lm_head.weight")));
        assertEquals(Layout.ORIGINAL_LLAVA, Layout.detect(List.of("model.layers.0.mlp.up_proj.weight", "model.mm_projector.0.weight")));
        assertEquals(Layout.ORIGINAL_LLAVA, Layout.detect(List.of("model.layers.0.mlp.up_proj.weight", "model.mm_projector.weight")));
        assertEquals(Layout.LLAMA, Layout.detect(List.of("model.embed_tokens.weight", "lm_head.weight")));
        assertNull(Layout.detect(List.of("encoder.weight")));
        assertEquals("model.mm_projector.weight", Layout.originalProjectorName("multi_modal_projector.linear_1.weight", 1));
        assertEquals("model.mm_projector.2.bias", Layout.originalProjectorName("multi_modal_projector.linear_2.bias", 2));
        assertEquals("multi_modal_projector.linear_2.weight", Layout.projectorNameFromFile("model.mm_projector.2.weight", 2));
        assertEquals("multi_modal_projector.linear_1.bias", Layout.projectorNameFromFile("module.model.mm_projector.bias", 1));
        assertNull(Layout.projectorNameFromFile("model.mm_projector.1.weight", 2));
    }
}
