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
 * The published configs of real LLaVA-family models (resources/real-configs, see its SOURCES.md): LLaVA-1.5, LLaVA-1.6,
 * interleave and OneVision parse into their real shapes; every model llava4j does not implement is refused by what it
 * is, before any weight is read.
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

    // ------------------------------------------------------------------------------------------------ LLaVA-NeXT family

    private static void assertSo400m26(VisionConfig v) {
        assertTrue(v.isSiglip());
        assertEquals(1152, v.hiddenSize());
        assertEquals(4304, v.intermediateSize());
        assertEquals(26, v.numHiddenLayers(), "LLaVA-NeXT's tower without its last layer");
        assertEquals(16, v.numAttentionHeads());
        assertEquals(384, v.imageSize());
        assertEquals(14, v.patchSize());
        assertEquals(729, v.numPatches(), "27 x 27: the valid convolution drops the last 6 pixels");
        assertEquals("gelu_pytorch_tanh", v.hiddenAct());
        assertEquals(1e-6, v.layerNormEps());
    }

    private static String pairs(java.util.List<int[]> hw) {
        StringBuilder b = new StringBuilder();
        for (int[] p : hw) b.append('(').append(p[0]).append(',').append(p[1]).append(')');
        return b.toString();
    }

    @Test
    void llavaV16VicunaOriginalReadsAnyresWithWidthFirstPinpoints() {
        LlavaConfig c = LlavaConfig.load(REAL.resolve("liuhaotian__llava-v1.6-vicuna-7b"), CLIP_L_336, null);
        assertEquals(Family.ORIGINAL_LLAVA, c.family());
        assertEquals("llama", c.text().modelType());
        assertClipL336(c.vision());
        assertNotNull(c.anyres());
        assertNull(c.anyres().maxN());
        assertFalse(c.anyres().hfRounding(), "LLaVA-NeXT's int() in unpad");
        // the file lists (w, h): [336, 672] first is a tall tile pair
        assertEquals("(672,336)(336,672)(672,672)(336,1008)(1008,336)", pairs(c.anyres().pinpointsHW()));
        assertEquals(-2, c.visionFeatureLayer());
        assertEquals("default", c.visionFeatureSelectStrategy());
        assertEquals(576, c.imageFeatureTokens());
    }

    @Test
    void llavaNextMistralHfReadsHeightFirstPinpoints() {
        LlavaConfig c = LlavaConfig.load(REAL.resolve("llava-hf__llava-v1.6-mistral-7b-hf"), null, null);
        assertEquals(Family.HF_LLAVA, c.family());
        assertEquals("mistral", c.text().modelType());
        assertNull(c.text().slidingWindow());
        assertTrue(c.anyres().hfRounding());
        assertEquals("(336,672)(672,336)(672,672)(1008,336)(336,1008)", pairs(c.anyres().pinpointsHW()));
        assertEquals(32000, c.imageTokenIndex());
    }

    @Test
    void interleaveOriginalIsQwenWithBuiltInSo400m() {
        LlavaConfig c = LlavaConfig.load(REAL.resolve("lmms-lab__llava-next-interleave-qwen-0.5b"), null, null);
        assertEquals(Family.ORIGINAL_LLAVA, c.family());
        assertEquals("qwen2", c.text().modelType());
        assertTrue(c.text().qkvBias());
        assertTrue(c.text().tieWordEmbeddings());
        assertNull(c.text().effectiveSlidingWindow(), "use_sliding_window false: the 32768 is not used");
        assertSo400m26(c.vision());
        assertEquals(-1, c.visionFeatureLayer(), "LLaVA-NeXT's SigLIP tower ignores mm_vision_select_layer -2");
        assertEquals("full", c.visionFeatureSelectStrategy());
        assertEquals(729, c.imageFeatureTokens());
        assertEquals("(768,384)(384,768)(768,768)(384,1152)(1152,384)", pairs(c.anyres().pinpointsHW()));
    }

    @Test
    void interleaveHfIsQwenAndSiglipFlat() {
        LlavaConfig c = LlavaConfig.load(REAL.resolve("llava-hf__llava-interleave-qwen-0.5b-hf"), null, null);
        assertEquals(Family.HF_LLAVA, c.family());
        assertEquals("qwen2", c.text().modelType());
        assertSo400m26(c.vision());
        assertNull(c.anyres());
        assertEquals(729, c.imageFeatureTokens());
    }

    @Test
    void oneVisionHfAndOriginal() {
        LlavaConfig hf = LlavaConfig.load(REAL.resolve("llava-hf__llava-onevision-qwen2-0.5b-ov-hf"), null, null);
        assertEquals("qwen2", hf.text().modelType());
        assertEquals(896, hf.text().hiddenSize());
        assertEquals(2, hf.text().numKeyValueHeads());
        assertEquals(152000, hf.text().vocabSize());
        assertSo400m26(hf.vision());
        assertEquals(9, hf.anyres().maxN());
        assertEquals(36, hf.anyres().pinpointsHW().size());
        assertEquals(151646, hf.imageTokenIndex());
        LlavaConfig orig = LlavaConfig.load(REAL.resolve("lmms-lab__llava-onevision-qwen2-0.5b-ov"), null, null);
        assertEquals(Family.ORIGINAL_LLAVA, orig.family());
        assertEquals("qwen2", orig.text().modelType());
        assertEquals(9, orig.anyres().maxN());
        assertEquals(36, orig.anyres().pinpointsHW().size(), "the (1x1),...,(6x6) range");
        assertEquals("(384,384)(768,384)", pairs(orig.anyres().pinpointsHW().subList(0, 2)),
                "(1x1) then (1x2) read as (w, h): (w 384, h 768)");
        assertSo400m26(orig.vision());
    }

    @Test
    void llavaMistralOriginalIsRead() throws IOException {
        // no published llava_mistral config is vendored; liuhaotian/llava-v1.6-mistral-7b is the v1.6 vicuna one with this type
        Path dir = edited("liuhaotian__llava-v1.6-vicuna-7b", c -> c.put("model_type", "llava_mistral"));
        LlavaConfig c = LlavaConfig.load(dir, CLIP_L_336, null);
        assertEquals("mistral", c.text().modelType());
        assertNotNull(c.anyres());
    }

    @Test
    void otherFamiliesAreRefusedByName() throws IOException {
        assertMentions(refusal(edited("liuhaotian__llava-v1.5-7b", c -> c.put("model_type", "llava_mpt"))), "llava_mpt");
        assertMentions(refusal(edited("liuhaotian__llava-v1.5-7b", c -> c.put("model_type", "llava_phi"))), "llava_phi");
        assertMentions(refusal(edited("llava-hf__llava-1.5-7b-hf", c -> ((ObjectNode) c.get("text_config")).put("model_type", "phi"))),
                "text_config.model_type 'phi'");
        assertMentions(refusal(edited("llava-hf__llava-1.5-7b-hf", c -> ((ObjectNode) c.get("text_config")).put("model_type", "gemma"))),
                "text_config.model_type 'gemma'");
        assertMentions(refusal(edited("llava-hf__llava-1.5-7b-hf", c -> ((ObjectNode) c.get("text_config")).put("model_type", "openelm"))),
                "text_config.model_type 'openelm'");
        assertMentions(refusal(edited("llava-hf__llava-1.5-7b-hf", c -> c.put("model_type", "idefics3"))), "idefics3");
        assertMentions(refusal(edited("llava-hf__llava-1.5-7b-hf", c -> c.put("model_type", "smolvlm"))), "smolvlm");
        assertMentions(refusal(edited("llava-hf__llava-1.5-7b-hf", c -> c.put("model_type", "llava_next_video"))), "video");
        assertMentions(refusal(edited("liuhaotian__llava-v1.6-vicuna-7b", c -> c.put("mm_patch_merge_type", "spatial"))),
                "mm_patch_merge_type 'spatial'");
        assertMentions(refusal(edited("liuhaotian__llava-v1.6-vicuna-7b", c -> c.put("image_aspect_ratio", "anyres_max"))),
                "image_aspect_ratio 'anyres_max'");
        assertMentions(refusal(edited("llava-hf__llava-interleave-qwen-0.5b-hf", c -> ((ObjectNode) c.get("text_config")).put("use_sliding_window", true))),
                "use_sliding_window");
        assertMentions(refusal(edited("llava-hf__llava-1.5-7b-hf", c -> c.putArray("vision_feature_layer").add(-2).add(-5))),
                "vision_feature_layer");
    }

    // ------------------------------------------------------------------------------------------------ TinyLLaVA

    static final String TINYLLAVA_QWEN2 = "Zhang199__TinyLLaVA-Qwen2-0.5B-SigLIP";

    @Test
    void tinyLlavaQwen2SiglipKeepsTheWholeTowerAndDropsTheFirstPatch() {
        LlavaConfig c = LlavaConfig.load(REAL.resolve(TINYLLAVA_QWEN2), null, null);
        assertEquals(Family.TINYLLAVA, c.family());
        TextConfig t = c.text();
        assertEquals("qwen2", t.modelType());
        assertEquals(896, t.hiddenSize());
        assertEquals(4864, t.intermediateSize());
        assertEquals(24, t.numHiddenLayers());
        assertEquals(14, t.numAttentionHeads());
        assertEquals(2, t.numKeyValueHeads());
        assertEquals(64, t.headDim());
        assertEquals(151936, t.vocabSize());
        assertTrue(t.tieWordEmbeddings());
        assertTrue(t.qkvBias());
        assertEquals(1e6, t.ropeTheta());
        assertNull(t.effectiveSlidingWindow(), "use_sliding_window false");
        VisionConfig v = c.vision();
        assertTrue(v.isSiglip());
        assertEquals(1152, v.hiddenSize());
        assertEquals(4304, v.intermediateSize());
        assertEquals(27, v.numHiddenLayers(), "TinyLLaVA runs the whole so400m tower");
        assertEquals(16, v.numAttentionHeads());
        assertEquals(729, v.numPatches());
        assertEquals(-2, c.visionFeatureLayer());
        assertEquals(26, c.featureLayerIndex(), "hidden_states[-2]: the output of layer 26, the layer LLaVA-NeXT's cut tower ends on");
        assertEquals("default", c.visionFeatureSelectStrategy());
        assertEquals(728, c.imageFeatureTokens(), "patch drops the top-left patch");
        assertEquals("mlp2x_gelu", c.projectorType());
        assertEquals(2, c.projectorDepth());
        assertEquals(LlavaConfig.LLAVA_IMAGE_TOKEN_INDEX, c.imageTokenIndex());
        assertEquals("square", c.imageAspectRatio());
        assertEquals(2048, c.tokenizerModelMaxLength());
        assertEquals("right", c.tokenizerPaddingSide());
        assertNull(c.anyres());
    }

    @Test
    void tinyLlavaPhi2IsRefusedByNameBeforeAnyWeightIsRead() throws IOException {
        // TinyLLaVA-Phi-2-SigLIP-3.1B: Phi-2's text_config; the folder holds no weights at all
        Path dir = edited(TINYLLAVA_QWEN2, c -> {
            ObjectNode phi = c.putObject("text_config");
            phi.put("model_type", "phi");
            phi.putArray("architectures").add("PhiForCausalLM");
            phi.put("hidden_size", 2560);
            phi.put("intermediate_size", 10240);
            phi.put("num_hidden_layers", 32);
            phi.put("partial_rotary_factor", 0.4);
            phi.put("vocab_size", 51200);
            c.put("llm_model_name_or_path", "microsoft/phi-2");
        });
        String m = assertThrows(ConfigException.class, () -> io.llava4j.model.Checkpoints.load(dir)).getMessage();
        assertMentions(m, "TinyLLaVA", "'phi' language model");
        for (String llm : new String[]{"gemma", "openelm", "stablelm_epoch", "stablelm"})
            assertMentions(refusal(edited(TINYLLAVA_QWEN2, c -> ((ObjectNode) c.get("text_config")).put("model_type", llm))),
                    "TinyLLaVA", "'" + llm + "' language model");
    }

    @Test
    void tinyLlavaPartsNotImplementedAreRefusedByName() throws IOException {
        for (String connector : new String[]{"resampler", "qformer", "mof_mlp", "mlp2x_relu"})
            assertMentions(refusal(edited(TINYLLAVA_QWEN2, c -> c.put("connector_type", connector))), "connector_type '" + connector + "'");
        assertMentions(refusal(edited(TINYLLAVA_QWEN2, c -> c.put("vision_model_name_or_path2", "facebook/dinov2-large"))),
                "second vision tower", "dinov2");
        assertMentions(refusal(edited(TINYLLAVA_QWEN2, c -> c.put("image_aspect_ratio", "anyres"))), "TinyLLaVA", "image_aspect_ratio 'anyres'");
        assertMentions(refusal(edited(TINYLLAVA_QWEN2, c -> c.put("vision_feature_select_strategy", "cls"))), "vision_feature_select_strategy", "cls");
        assertMentions(refusal(edited(TINYLLAVA_QWEN2, c -> ((ObjectNode) c.get("vision_config")).remove("model_type"))), "vision_config.model_type");
        assertMentions(refusal(edited(TINYLLAVA_QWEN2, c -> ((ObjectNode) c.get("vision_config")).put("model_type", "dinov2"))), "dinov2");
        assertMentions(refusal(edited(TINYLLAVA_QWEN2, c -> c.put("tokenizer_padding_side", "middle"))), "tokenizer_padding_side");
        // the resampler fields TinyLlavaConfig writes into every config are not a resampler
        LlavaConfig linear = LlavaConfig.load(edited(TINYLLAVA_QWEN2, c -> c.put("connector_type", "linear")), null, null);
        assertEquals(1, linear.projectorDepth());
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
