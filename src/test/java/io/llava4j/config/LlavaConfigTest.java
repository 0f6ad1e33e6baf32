package io.llava4j.config;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.config.LlavaConfig.Family;
import io.llava4j.config.LlavaConfig.ProjectorSpec;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.*;

/** config.json parsing: transformers' defaults for absent fields, original LLaVA configs, plain LLaMA + --vision_tower. */
class LlavaConfigTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    private Path write(String name, String json) throws IOException {
        Path dir = Files.createDirectories(tmp.resolve(name));
        Files.writeString(dir.resolve("config.json"), json);
        return dir;
    }

    private Path write(String name, ObjectNode json) throws IOException {
        return write(name, JSON.writeValueAsString(json));
    }

    /** A small CLIPVisionModel folder (config only): width 32, 3 layers, 16/4 → 16 patches. */
    private Path clip() throws IOException {
        return write("clip", """
                {"model_type": "clip_vision_model", "architectures": ["CLIPVisionModel"], "hidden_size": 32,
                 "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4, "image_size": 16,
                 "patch_size": 4, "hidden_act": "quick_gelu"}""");
    }

    /** An original LLaVA (llava_llama) config: LLaMA fields at the top level plus the mm_* fields. */
    private ObjectNode original(String tower, String projectorType) {
        ObjectNode c = JSON.createObjectNode();
        c.put("model_type", "llava_llama");
        c.putArray("architectures").add("LlavaLlamaForCausalLM");
        c.put("hidden_size", 48).put("intermediate_size", 96).put("num_hidden_layers", 2).put("num_attention_heads", 4)
                .put("vocab_size", 1024).put("max_position_embeddings", 256);
        if (tower != null) c.put("mm_vision_tower", tower);
        if (projectorType != null) c.put("mm_projector_type", projectorType);
        c.put("mm_vision_select_layer", -2).put("mm_vision_select_feature", "patch").put("mm_hidden_size", 32);
        c.put("use_mm_proj", true).put("mm_use_im_start_end", false).put("tune_mm_mlp_adapter", false);
        return c;
    }

    private static void assertMentions(String message, String... parts) {
        for (String p : parts) assertTrue(message.contains(p), "expected '" + p + "' in:\n" + message);
    }

    private ConfigException error(Path folder) {
        return assertThrows(ConfigException.class, () -> LlavaConfig.load(folder, null, null));
    }

    // ------------------------------------------------------------------------------------------------ HF llava

    @Test
    void absentHfFieldsTakeTransformersDefaults() throws IOException {
        Path dir = write("hf", """
                {"model_type": "llava", "image_token_index": 32000,
                 "vision_config": {"model_type": "clip_vision_model"},
                 "text_config": {"vocab_size": 32064}}""");
        LlavaConfig c = LlavaConfig.load(dir, null, null);
        assertEquals(Family.HF_LLAVA, c.family());
        assertNull(c.visionTowerFolder());
        assertEquals(32000, c.imageTokenIndex());
        assertEquals(-2, c.visionFeatureLayer());
        assertEquals("default", c.visionFeatureSelectStrategy());
        assertEquals("gelu", c.projectorAct());
        assertEquals(2, c.projectorDepth());
        assertEquals("mlp2x_gelu", c.projectorType());

        TextConfig t = c.text(); // LlamaConfig()'s defaults
        assertEquals("llama", t.modelType());
        assertEquals(4096, t.hiddenSize());
        assertEquals(11008, t.intermediateSize());
        assertEquals(32, t.numHiddenLayers());
        assertEquals(32, t.numAttentionHeads());
        assertEquals(32, t.numKeyValueHeads());
        assertEquals(128, t.headDim());
        assertEquals(32064, t.vocabSize());
        assertEquals(1e-6, t.rmsNormEps());
        assertEquals(10000.0, t.ropeTheta());
        assertEquals(2048, t.maxPositionEmbeddings());
        assertEquals("silu", t.hiddenAct());
        assertFalse(t.tieWordEmbeddings());
        assertFalse(t.attentionBias());
        assertFalse(t.mlpBias());

        VisionConfig v = c.vision(); // CLIPVisionConfig()'s defaults
        assertEquals(768, v.hiddenSize());
        assertEquals(3072, v.intermediateSize());
        assertEquals(12, v.numHiddenLayers());
        assertEquals(12, v.numAttentionHeads());
        assertEquals(224, v.imageSize());
        assertEquals(32, v.patchSize());
        assertEquals(3, v.numChannels());
        assertEquals("quick_gelu", v.hiddenAct());
        assertEquals(1e-5, v.layerNormEps());
        assertEquals(49, v.numPatches());
        assertEquals(49, c.imageFeatureTokens());
        assertEquals(11, c.featureLayerIndex()); // -2 of the 13 hidden states
    }

    @Test
    void presentHfFieldsOverrideDefaults() throws IOException {
        Path dir = write("hf", """
                {"model_type": "llava", "image_token_id": 7, "vision_feature_layer": 1, "projector_hidden_act": "silu",
                 "vision_feature_select_strategy": "full",
                 "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                                   "image_size": 8, "patch_size": 4, "hidden_act": "gelu"},
                 "text_config": {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 8, "num_key_value_heads": 2,
                                 "vocab_size": 100, "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16"}}""");
        LlavaConfig c = LlavaConfig.load(dir, null, null);
        assertEquals(7, c.imageTokenIndex());
        assertEquals(1, c.featureLayerIndex());
        assertEquals("full", c.visionFeatureSelectStrategy());
        assertEquals(5, c.imageFeatureTokens());
        assertEquals("silu", c.projectorAct());
        assertEquals(2, c.text().numKeyValueHeads());
        assertEquals(8, c.text().headDim());
        assertEquals(500000.0, c.text().ropeTheta());
        assertTrue(c.text().tieWordEmbeddings());
        assertEquals("gelu", c.vision().hiddenAct());
        assertNotNull(c.raw().get("text_config"), "raw keeps the file's fields");
    }

    @Test
    void hfConfigWithoutImageTokenIsRefused() throws IOException {
        Path dir = write("hf", """
                {"model_type": "llava", "vision_config": {}, "text_config": {}}""");
        assertMentions(error(dir).getMessage(), "image_token_index");        // a negative id other than LLaVA's -200 placeholder is refused at load, not at the first forward
        Path negative = write("hf-neg", """
                {"model_type": "llava", "image_token_index": -2147483648, "vision_config": {}, "text_config": {}}""");
        assertMentions(error(negative).getMessage(), "image_token_index", "-2147483648");
    }

    @Test
    void hfConfigWithWrongTypesNamesTheField() throws IOException {
        Path dir = write("hf", """
                {"model_type": "llava", "image_token_index": 3, "vision_config": {},
                 "text_config": {"rope_theta": "big"}}""");
        assertMentions(error(dir).getMessage(), dir.resolve("config.json").toString(), "text_config", "rope_theta");
        Path dir2 = write("hf2", """
                {"model_type": "llava", "image_token_index": 3, "vision_config": {}, "text_config": [1, 2]}""");
        assertMentions(error(dir2).getMessage(), "text_config");
    }

    @Test
    void unsupportedTextModelIsRefused() throws IOException {
        Path dir = write("hf", """
                {"model_type": "llava", "image_token_index": 3, "vision_config": {}, "text_config": {"model_type": "falcon"}}""");
        assertMentions(error(dir).getMessage(), "model_type", "falcon");
        Path bias = write("hf2", """
                {"model_type": "llava", "image_token_index": 3, "vision_config": {}, "text_config": {"attention_bias": true}}""");
        assertMentions(error(bias).getMessage(), "attention_bias");
    }

    // ------------------------------------------------------------------------------------------------ original LLaVA

    @Test
    void originalConfigWithLocalTowerParses() throws IOException {
        Path tower = clip();
        LlavaConfig c = LlavaConfig.load(write("orig", original(tower.toAbsolutePath().toString(), "mlp2x_gelu")), null, null);
        assertEquals(Family.ORIGINAL_LLAVA, c.family());
        assertEquals(2, c.projectorDepth());
        assertEquals("gelu", c.projectorAct());
        assertEquals("mlp2x_gelu", c.projectorType());
        assertEquals(LlavaConfig.LLAVA_IMAGE_TOKEN_INDEX, c.imageTokenIndex());
        assertEquals(-2, c.visionFeatureLayer());
        assertEquals(2, c.featureLayerIndex());
        assertEquals("default", c.visionFeatureSelectStrategy());
        assertEquals(tower.toAbsolutePath(), c.visionTowerFolder().toAbsolutePath());
        assertEquals(32, c.vision().hiddenSize());
        assertEquals(3, c.vision().numHiddenLayers());
        assertEquals(16, c.vision().numPatches());
        assertEquals("llama", c.text().modelType());
        assertEquals(48, c.text().hiddenSize());
        assertEquals(4, c.text().numKeyValueHeads());
        assertEquals(1024, c.text().vocabSize());
        assertEquals(256, c.text().maxPositionEmbeddings());
    }

    @Test
    void originalProjectorTypes() throws IOException {
        Path tower = clip();
        String t = tower.toAbsolutePath().toString();
        assertEquals(1, LlavaConfig.load(write("linear", original(t, "linear")), null, null).projectorDepth());
        assertEquals(1, LlavaConfig.load(write("absent", original(t, null)), null, null).projectorDepth(), "LLaVA's default is linear");
        LlavaConfig mlp3 = LlavaConfig.load(write("mlp3", original(t, "mlp3x_gelu")), null, null);
        assertEquals(3, mlp3.projectorDepth());
        assertEquals("mlp3x_gelu", mlp3.projectorType());
        LlavaConfig relu = LlavaConfig.load(write("relu", original(t, "mlp2x_relu")), null, null);
        assertEquals("relu", relu.projectorAct());

        // identity: the CLIP width must equal the LLM width
        ObjectNode same = original(t, "identity");
        same.put("hidden_size", 32).put("num_attention_heads", 4);
        LlavaConfig id = LlavaConfig.load(write("identity", same), null, null);
        assertEquals(0, id.projectorDepth());
        assertEquals("identity", id.projectorType());
        assertMentions(error(write("identity-48", original(t, "identity"))).getMessage(), "mm_projector_type", "identity", "32", "48");

        assertMentions(error(write("bad", original(t, "mlp2x_swish"))).getMessage(), "mm_projector_type", "mlp2x_swish");
        assertMentions(error(write("bad2", original(t, "qformer"))).getMessage(), "mm_projector_type", "qformer");
    }

    @Test
    void originalTowerRelativeToTheModelFolder() throws IOException {
        Path model = write("orig", original("vision_tower", "mlp2x_gelu"));
        Files.createDirectories(model.resolve("vision_tower"));
        Files.copy(clip().resolve("config.json"), model.resolve("vision_tower/config.json"));
        LlavaConfig c = LlavaConfig.load(model, null, null);
        assertEquals(model.resolve("vision_tower").toAbsolutePath(), c.visionTowerFolder().toAbsolutePath());
    }

    @Test
    void originalHubTowerAsksForVisionTower() throws IOException {
        Path model = write("orig", original("openai/clip-vit-large-patch14-336", "mlp2x_gelu"));
        ConfigException e = error(model);
        assertMentions(e.getMessage(), "mm_vision_tower", "openai/clip-vit-large-patch14-336", "--vision_tower", "not a local folder");
        // ... and --vision_tower fixes it
        Path tower = clip();
        LlavaConfig c = LlavaConfig.load(model, tower, null);
        assertEquals(tower, c.visionTowerFolder());
        assertEquals(2, c.projectorDepth());
    }

    @Test
    void originalWithoutTowerAsksForVisionTower() throws IOException {
        assertMentions(error(write("orig", original(null, "linear"))).getMessage(), "mm_vision_tower", "--vision_tower");
    }

    @Test
    void originalSelectFeatureAndHiddenSize() throws IOException {
        String t = clip().toAbsolutePath().toString();
        ObjectNode cls = original(t, "linear");
        cls.put("mm_vision_select_feature", "cls_patch").put("mm_vision_select_layer", -1);
        LlavaConfig c = LlavaConfig.load(write("cls", cls), null, null);
        assertEquals("full", c.visionFeatureSelectStrategy());
        assertEquals(17, c.imageFeatureTokens());
        assertEquals(3, c.featureLayerIndex());

        ObjectNode bad = original(t, "linear");
        bad.put("mm_vision_select_feature", "cls");
        assertMentions(error(write("bad", bad)).getMessage(), "mm_vision_select_feature", "cls");

        ObjectNode width = original(t, "linear");
        width.put("mm_hidden_size", 1024);
        assertMentions(error(write("width", width)).getMessage(), "mm_hidden_size", "1024", "32");

        ObjectNode layer = original(t, "linear");
        layer.put("mm_vision_select_layer", -5);
        assertMentions(error(write("layer", layer)).getMessage(), "mm_vision_select_layer", "-5");
    }

    @Test
    void fullClipConfigAsTower() throws IOException {
        Path tower = write("clip-full", """
                {"model_type": "clip", "projection_dim": 16,
                 "text_config": {"hidden_size": 16},
                 "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
                                   "image_size": 16, "patch_size": 4}}""");
        LlavaConfig c = LlavaConfig.load(write("orig", original(tower.toAbsolutePath().toString(), "linear")), null, null);
        assertEquals(32, c.vision().hiddenSize());
        assertEquals(16, c.vision().numPatches());
    }

    @Test
    void towerThatIsNotClipOrSiglipIsRefused() throws IOException {
        Path tower = write("dino", """
                {"model_type": "dinov2", "hidden_size": 32}""");
        assertMentions(error(write("orig", original(tower.toAbsolutePath().toString(), "linear"))).getMessage(),
                "model_type", "dinov2", tower.toString());
    }

    // ------------------------------------------------------------------------------------------------ plain LLaMA

    @Test
    void plainLlamaNeedsVisionTower() throws IOException {
        ObjectNode llama = JSON.createObjectNode();
        llama.put("model_type", "llama").put("hidden_size", 48).put("num_attention_heads", 4).put("vocab_size", 1024)
                .put("intermediate_size", 96).put("num_hidden_layers", 2);
        Path dir = write("llama", llama);
        assertMentions(error(dir).getMessage(), "--vision_tower");

        Path tower = clip();
        LlavaConfig lin = LlavaConfig.load(dir, tower, null);
        assertEquals(Family.LLAMA, lin.family());
        assertEquals(1, lin.projectorDepth(), "LLaVA's default projector is linear");
        assertEquals(-1, lin.visionFeatureLayer());
        assertEquals(tower, lin.visionTowerFolder());

        LlavaConfig mlp = LlavaConfig.load(dir, tower, new ProjectorSpec("mlp2x_gelu", -2, "cls_patch"));
        assertEquals(2, mlp.projectorDepth());
        assertEquals("gelu", mlp.projectorAct());
        assertEquals(-2, mlp.visionFeatureLayer());
        assertEquals("full", mlp.visionFeatureSelectStrategy());
        assertEquals(LlavaConfig.LLAVA_IMAGE_TOKEN_INDEX, mlp.imageTokenIndex());

        assertMentions(assertThrows(ConfigException.class,
                () -> LlavaConfig.load(dir, tower, new ProjectorSpec("mlp2x_gelu", 7, "patch"))).getMessage(), "mm_vision_select_layer", "7");
        assertMentions(assertThrows(ConfigException.class,
                () -> LlavaConfig.load(dir, tower, new ProjectorSpec("conv", -2, "patch"))).getMessage(), "mm_projector_type", "conv");
        assertMentions(assertThrows(ConfigException.class,
                () -> LlavaConfig.load(dir, tmp.resolve("nowhere"), null)).getMessage(), "nowhere", "not found");
    }

    @Test
    void llamaHiddenSizeMustDivideIntoHeadsUnlessHeadDimIsGiven() throws IOException {
        Path tower = clip();
        Consumer<ObjectNode> base = n -> n.put("model_type", "llama").put("hidden_size", 50).put("num_attention_heads", 4)
                .put("vocab_size", 64).put("intermediate_size", 8).put("num_hidden_layers", 1);
        ObjectNode bad = JSON.createObjectNode();
        base.accept(bad);
        Path dir = write("bad", bad);
        assertMentions(assertThrows(ConfigException.class, () -> LlavaConfig.load(dir, tower, null)).getMessage(),
                "hidden_size", "50", "num_attention_heads");
        ObjectNode ok = JSON.createObjectNode();
        base.accept(ok);
        ok.put("head_dim", 16);
        assertEquals(16, LlavaConfig.load(write("ok", ok), tower, null).text().headDim());
    }

    @Test
    void gqaHeadsMustDivide() throws IOException {
        Path dir = write("hf", """
                {"model_type": "llava", "image_token_index": 3, "vision_config": {},
                 "text_config": {"num_attention_heads": 32, "num_key_value_heads": 5}}""");
        assertMentions(error(dir).getMessage(), "num_key_value_heads", "5");
    }
}
