package io.llava4j.config;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.config.LlavaConfig.Family;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The published configs of real LLaVA-family models (resources/real-configs, see its SOURCES.md): LLaVA-1.5 parses
 * into its real shapes; every model llava4j does not implement is refused by what it is, before any weight is read.
 */
class RealConfigsTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final Path REAL = Path.of("src/test/resources/real-configs");
    static final Path CLIP_L_336 = REAL.resolve("openai__clip-vit-large-patch14-336");

    @TempDir
    Path tmp;

    /** A copy of a published config.json, edited, in its own folder. */
    private Path edited(String model, Consumer<ObjectNode> edit) throws IOException {
        ObjectNode c = (ObjectNode) JSON.readTree(REAL.resolve(model).resolve("config.json").toFile());
        edit.accept(c);
        Path dir = Files.createDirectories(tmp.resolve(model + "-" + System.nanoTime()));
        Files.writeString(dir.resolve("config.json"), c.toPrettyString());
        return dir;
    }

    private static String refusal(Path folder) {
        return assertThrows(ConfigException.class, () -> LlavaConfig.load(folder, null, null)).getMessage();
    }

    private static void assertMentions(String message, String... parts) {
        for (String p : parts) assertTrue(message.contains(p), "expected '" + p + "' in:\n" + message);
    }

    // ------------------------------------------------------------------------------------------------ LLaVA-1.5

    private static void assertClipL336(VisionConfig v) {
        assertEquals(1024, v.hiddenSize());
        assertEquals(4096, v.intermediateSize());
        assertEquals(24, v.numHiddenLayers());
        assertEquals(16, v.numAttentionHeads());
        assertEquals(336, v.imageSize());
        assertEquals(14, v.patchSize());
        assertEquals(576, v.numPatches());
        assertEquals("quick_gelu", v.hiddenAct());
    }

    @Test
    void llava15_7bHf() {
        LlavaConfig c = LlavaConfig.load(REAL.resolve("llava-hf__llava-1.5-7b-hf"), null, null);
        assertEquals(Family.HF_LLAVA, c.family());
        assertClipL336(c.vision());
        TextConfig t = c.text();
        assertEquals(4096, t.hiddenSize());
        assertEquals(11008, t.intermediateSize());
        assertEquals(32, t.numHiddenLayers());
        assertEquals(32, t.numAttentionHeads());
        assertEquals(32, t.numKeyValueHeads());
        assertEquals(128, t.headDim());
        assertEquals(32064, t.vocabSize());
        assertEquals(1e-5, t.rmsNormEps());
        assertEquals(10000.0, t.ropeTheta());
        assertNull(t.ropeScaling());
        assertNull(t.slidingWindow());
        assertEquals(32000, c.imageTokenIndex());
        assertEquals("mlp2x_gelu", c.projectorType());
        assertEquals(-2, c.visionFeatureLayer());
        assertEquals(23, c.featureLayerIndex());
        assertEquals(576, c.imageFeatureTokens());
        assertNull(c.imageAspectRatio());
    }

    @Test
    void llava15_13bHf() {
        LlavaConfig c = LlavaConfig.load(REAL.resolve("llava-hf__llava-1.5-13b-hf"), null, null);
        assertClipL336(c.vision());
        assertEquals(5120, c.text().hiddenSize());
        assertEquals(13824, c.text().intermediateSize());
        assertEquals(40, c.text().numHiddenLayers());
        assertEquals(40, c.text().numAttentionHeads());
        assertEquals(128, c.text().headDim());
        assertEquals(32064, c.text().vocabSize());
    }

    @Test
    void originalLlavaV15_7bWithTheClipFolder() {
        LlavaConfig c = LlavaConfig.load(REAL.resolve("liuhaotian__llava-v1.5-7b"), CLIP_L_336, null);
        assertEquals(Family.ORIGINAL_LLAVA, c.family());
        assertClipL336(c.vision());
        assertEquals(4096, c.text().hiddenSize());
        assertEquals(32, c.text().numHiddenLayers());
        assertEquals(32000, c.text().vocabSize());
        assertEquals("mlp2x_gelu", c.projectorType());
        assertEquals(-2, c.visionFeatureLayer());
        assertEquals("default", c.visionFeatureSelectStrategy());
        assertEquals(LlavaConfig.LLAVA_IMAGE_TOKEN_INDEX, c.imageTokenIndex());
        assertEquals("pad", c.imageAspectRatio(), "what score uses when no --image_aspect_ratio is given");
        // without a local CLIP folder it asks for one (llava4j never downloads)
        assertMentions(refusal(REAL.resolve("liuhaotian__llava-v1.5-7b")), "mm_vision_tower", "--vision_tower");
    }

    @Test
    void unknownImageAspectRatioIsRefused() throws IOException {
        Path dir = edited("liuhaotian__llava-v1.5-7b", c -> c.put("image_aspect_ratio", "crop"));
        String m = assertThrows(ConfigException.class, () -> LlavaConfig.load(dir, CLIP_L_336, null)).getMessage();
        assertMentions(m, "image_aspect_ratio", "crop");
    }

    @Test
    void imageStartEndTokensAreRefused() throws IOException {
        assertMentions(refusal(edited("liuhaotian__llava-v1.5-7b", c -> c.put("mm_use_im_start_end", true))), "mm_use_im_start_end");
    }

    // ------------------------------------------------------------------------------------------------ refusals

    @Test
    void llavaV16VicunaAnyresIsRefused() {
        String m = refusal(REAL.resolve("liuhaotian__llava-v1.6-vicuna-7b"));
        assertMentions(m, Unsupported.ANYRES, "image_aspect_ratio 'anyres'", "mm_patch_merge_type 'spatial_unpad'", "image_grid_pinpoints");
        assertFalse(m.contains("--vision_tower"), m);
    }

    @Test
    void anyresFieldsAloneAreRefused() throws IOException {
        // a LLaVA-1.5 config carrying only one anyres field would otherwise run as 336x336 squares
        assertMentions(refusal(edited("liuhaotian__llava-v1.5-7b", c -> c.put("mm_patch_merge_type", "spatial_unpad"))),
                Unsupported.ANYRES, "mm_patch_merge_type");
        assertMentions(refusal(edited("llava-hf__llava-1.5-7b-hf", c -> c.putArray("image_grid_pinpoints").addArray().add(336).add(672))),
                Unsupported.ANYRES, "image_grid_pinpoints");
        assertMentions(refusal(edited("llava-hf__llava-1.5-7b-hf", c -> c.put("use_image_newline_parameter", true))),
                Unsupported.ANYRES, "image_newline");
        // flat merging and null pinpoints are LLaVA-1.5's own values
        LlavaConfig.load(edited("liuhaotian__llava-v1.5-7b", c -> c.put("mm_patch_merge_type", "flat").putNull("image_grid_pinpoints")),
                CLIP_L_336, null);
    }

    @Test
    void llavaNextHfIsRefused() {
        assertMentions(refusal(REAL.resolve("llava-hf__llava-v1.6-mistral-7b-hf")), Unsupported.ANYRES, "model_type 'llava_next'");
    }

    @Test
    void llavaQwenIsRefusedForQwen2AnyresAndSiglip() {
        String m = refusal(REAL.resolve("lmms-lab__llava-next-interleave-qwen-0.5b"));
        assertMentions(m, "Qwen2", "model_type 'llava_qwen'", Unsupported.ANYRES, "SigLIP", "google/siglip-so400m-patch14-384");
    }

    @Test
    void hfQwen2WithSiglipIsRefusedByName() {
        String m = refusal(REAL.resolve("llava-hf__llava-interleave-qwen-0.5b-hf"));
        assertMentions(m, "Qwen2", "text_config.model_type 'qwen2'", "SigLIP", "siglip_vision_model");
        assertFalse(m.contains("divisible"), "not the unrelated image_size check: " + m);
    }

    @Test
    void siglipVisionConfigAloneIsRefused() throws IOException {
        Path dir = edited("llava-hf__llava-1.5-7b-hf", c -> ((ObjectNode) c.get("vision_config")).put("model_type", "siglip_vision_model"));
        assertMentions(refusal(dir), "SigLIP", "siglip_vision_model");
    }

    @Test
    void llavaMistralIsRefused() throws IOException {
        // no published llava_mistral config is vendored; liuhaotian/llava-v1.6-mistral-7b is the v1.6 vicuna one with this type
        Path dir = edited("liuhaotian__llava-v1.6-vicuna-7b", c -> c.put("model_type", "llava_mistral"));
        assertMentions(refusal(dir), "llava_mistral", "LlavaMistralForCausalLM");
        Path flat = edited("liuhaotian__llava-v1.5-7b", c -> c.put("model_type", "llava_mistral"));
        assertMentions(refusal(flat), "llava_mistral");
        assertMentions(refusal(edited("liuhaotian__llava-v1.5-7b", c -> c.put("model_type", "llava_mpt"))), "llava_mpt");
    }

    // ------------------------------------------------------------------------------------------------ Mistral text

    /** llava-1.5-7b-hf with LLaVA-NeXT-Mistral's published text_config (sliding_window as given). */
    private Path mistral(Consumer<ObjectNode> editText) throws IOException {
        ObjectNode text = (ObjectNode) JSON.readTree(REAL.resolve("llava-hf__llava-v1.6-mistral-7b-hf/config.json").toFile())
                .get("text_config").deepCopy();
        editText.accept(text);
        return edited("llava-hf__llava-1.5-7b-hf", c -> c.set("text_config", text));
    }

    @Test
    void mistralTextConfigTakesMistralDefaults() throws IOException {
        LlavaConfig c = LlavaConfig.load(mistral(t -> t.remove("num_key_value_heads")), null, null);
        assertEquals("mistral", c.text().modelType());
        assertEquals(8, c.text().numKeyValueHeads(), "MistralConfig's default, not LlamaConfig's (= heads)");
        assertEquals(14336, c.text().intermediateSize());
        assertEquals(1e6, c.text().ropeTheta());
        assertNull(c.text().slidingWindow(), "sliding_window: null in the published config");
        c.text().checkSequenceLength(1 << 20, "x");
        LlavaConfig absent = LlavaConfig.load(mistral(t -> t.remove("sliding_window")), null, null);
        assertEquals(4096, absent.text().slidingWindow(), "MistralConfig's default window");
    }

    @Test
    void mistralSlidingWindowMustCoverTheSequence() throws IOException {
        TextConfig t = LlavaConfig.load(mistral(x -> x.put("sliding_window", 2048)), null, null).text();
        t.checkSequenceLength(2048, "config.json");
        ConfigException e = assertThrows(ConfigException.class, () -> t.checkSequenceLength(2049, "config.json"));
        assertMentions(e.getMessage(), "sliding_window", "2048", "2049");
    }

    // ------------------------------------------------------------------------------------------------ rope_scaling

    private Path ropeScaling(String json) throws IOException {
        return edited("llava-hf__llava-1.5-7b-hf", c -> {
            try {
                ((ObjectNode) c.get("text_config")).set("rope_scaling", JSON.readTree(json));
            } catch (IOException e) {
                throw new AssertionError(e);
            }
        });
    }

    @Test
    void ropeScalingLinearAndDynamicAreRead() throws IOException {
        RopeScaling linear = LlavaConfig.load(ropeScaling("{\"type\": \"linear\", \"factor\": 2.0}"), null, null).text().ropeScaling();
        assertEquals(RopeScaling.LINEAR, linear.type());
        assertEquals(2.0, linear.factor());
        RopeScaling dynamic = LlavaConfig.load(ropeScaling("{\"rope_type\": \"dynamic\", \"factor\": 4}"), null, null).text().ropeScaling();
        assertEquals(RopeScaling.DYNAMIC, dynamic.type());
        assertEquals(4.0, dynamic.factor());
        assertNull(LlavaConfig.load(ropeScaling("{\"rope_type\": \"default\"}"), null, null).text().ropeScaling());
    }

    @Test
    void otherRopeScalingIsRefusedByName() throws IOException {
        assertMentions(refusal(ropeScaling("{\"rope_type\": \"yarn\", \"factor\": 4.0, \"original_max_position_embeddings\": 4096}")),
                "rope_scaling", "yarn");
        assertMentions(refusal(ropeScaling("{\"rope_type\": \"llama3\", \"factor\": 8.0}")), "rope_scaling", "llama3");
        assertMentions(refusal(ropeScaling("{\"type\": \"linear\", \"factor\": 1.0}")), "rope_scaling", "factor");
        assertMentions(refusal(ropeScaling("{\"type\": \"linear\"}")), "rope_scaling", "factor");
        assertMentions(refusal(ropeScaling("{\"type\": \"dynamic\", \"factor\": 2.0, \"original_max_position_embeddings\": 2048}")),
                "rope_scaling", "original_max_position_embeddings");
        assertMentions(refusal(ropeScaling("\"linear\"")), "rope_scaling");
    }

    @Test
    void attentionDropoutIsRefused() throws IOException {
        assertMentions(refusal(edited("llava-hf__llava-1.5-7b-hf", c -> ((ObjectNode) c.get("text_config")).put("attention_dropout", 0.1))),
                "attention_dropout");
        assertMentions(refusal(edited("llava-hf__llava-1.5-7b-hf", c -> ((ObjectNode) c.get("vision_config")).put("attention_dropout", 0.1))),
                "attention_dropout");
    }
}
