package io.llava4j.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.TestData;
import io.llava4j.config.ConfigException;
import io.llava4j.io.HostTensor;
import io.llava4j.io.Layout;
import io.llava4j.io.Safetensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.*;

/** Every way a checkpoint folder can be wrong gives one error that names the culprit (tensor, file or field). */
class StrictLoadingTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String Q = "language_model.model.layers.1.self_attn.q_proj.weight";
    private static final String PROJ_BIAS = "multi_modal_projector.linear_2.bias";

    @TempDir
    Path tmp;

    /** A copy of tiny-llava whose tensors went through {@code edit}. */
    Path copyWith(Consumer<Map<String, HostTensor>> edit) throws IOException {
        Path dir = tmp.resolve("model");
        Files.createDirectories(dir);
        for (String f : new String[]{"config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json"})
            Files.copy(TestData.tinyLlava().resolve(f), dir.resolve(f));
        Map<String, HostTensor> t = new LinkedHashMap<>(Safetensors.read(TestData.tinyLlava().resolve("model.safetensors")).tensors());
        edit.accept(t);
        Safetensors.write(dir.resolve("model.safetensors"), t, Map.of("format", "pt"));
        return dir;
    }

    /** A copy of tiny-llava whose config.json is {@code text}. */
    Path copyWithConfig(String text) throws IOException {
        Path dir = copyWith(t -> {});
        Files.writeString(dir.resolve("config.json"), text);
        return dir;
    }

    /** A copy of tiny-llava whose config.json went through {@code edit}. */
    Path copyWithConfig(Consumer<ObjectNode> edit) throws IOException {
        ObjectNode c = (ObjectNode) JSON.readTree(TestData.tinyLlava().resolve("config.json").toFile());
        edit.accept(c);
        return copyWithConfig(JSON.writeValueAsString(c));
    }

    static HostTensor zeros(long... shape) {
        long n = 1;
        for (long d : shape) n *= d;
        return HostTensor.ofFloats(shape, new float[(int) n]);
    }

    static String loadError(Path dir) {
        return assertThrows(CheckpointException.class, () -> Checkpoints.load(dir)).getMessage();
    }

    static String configError(Path dir) {
        return assertThrows(ConfigException.class, () -> Checkpoints.load(dir)).getMessage();
    }

    static void assertMentions(String message, String... parts) {
        for (String p : parts) assertTrue(message.contains(p), "expected '" + p + "' in:\n" + message);
    }

    @Test
    void unmodifiedCopyLoads() throws IOException {
        assertEquals(Layout.LLAVA_HF, Checkpoints.load(copyWith(t -> {})).layout());
    }

    @Test
    void missingTensorIsNamed() throws IOException {
        Path dir = copyWith(t -> assertNotNull(t.remove(Q)));
        String msg = loadError(dir);
        assertMentions(msg, "missing", Q, dir.toString());
        assertFalse(msg.contains("unexpected"), msg);
    }

    @Test
    void missingProjectorTensorIsNamed() throws IOException {
        String msg = loadError(copyWith(t -> assertNotNull(t.remove(PROJ_BIAS))));
        assertMentions(msg, "missing", PROJ_BIAS);
    }

    @Test
    void unexpectedTensorIsNamed() throws IOException {
        String extra = "language_model.model.layers.2.self_attn.q_proj.weight";
        String msg = loadError(copyWith(t -> t.put(extra, zeros(48, 48))));
        assertMentions(msg, "unexpected", extra);
        assertFalse(msg.contains("missing"), msg);
    }

    @Test
    void recomputedBuffersAreNotUnexpected() throws IOException {
        Path dir = copyWith(t -> {
            t.put("vision_tower.vision_model.embeddings.position_ids", HostTensor.ofLongs(new long[]{1, 17}, new long[17]));
            t.put("language_model.model.layers.0.self_attn.rotary_emb.inv_freq", zeros(6));
        });
        assertEquals(Layout.LLAVA_HF, Checkpoints.load(dir).layout());
    }

    @Test
    void wrongShapeIsNamedWithBothShapes() throws IOException {
        String msg = loadError(copyWith(t -> {
            assertArrayEquals(new long[]{48, 48}, t.get(Q).shape());
            t.put(Q, zeros(48, 40));
        }));
        assertMentions(msg, "shape", Q, "[48, 40]", "[48, 48]");
    }

    @Test
    void severalProblemsAreListedTogether() throws IOException {
        String extra = "multi_modal_projector.linear_3.weight";
        String msg = loadError(copyWith(t -> {
            t.remove(Q);
            t.remove("vision_tower.vision_model.post_layernorm.bias");
            t.put(extra, zeros(48, 48));
            t.put(PROJ_BIAS, zeros(47));
        }));
        assertMentions(msg, "missing", Q, "vision_tower.vision_model.post_layernorm.bias", "unexpected", extra,
                "shape", PROJ_BIAS, "[47]", "[48]");
    }

    @Test
    void truncatedFileIsNamed() throws IOException {
        Path dir = copyWith(t -> {});
        Path file = dir.resolve("model.safetensors");
        long size = Files.size(file);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.truncate(size - 1000);
        }
        String msg = loadError(dir);
        assertMentions(msg, file.toString(), "truncated");
    }

    @Test
    void fileTruncatedInsideItsHeaderIsNamed() throws IOException {
        Path dir = copyWith(t -> {});
        Path file = dir.resolve("model.safetensors");
        long headerLen;
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            ch.read(b, 0);
            headerLen = b.getLong(0);
            ch.truncate(8 + headerLen / 2);
        }
        assertMentions(loadError(dir), file.toString(), "truncated");
    }

    @Test
    void missingWeightsFileIsNamed() throws IOException {
        Path dir = copyWith(t -> {});
        Files.delete(dir.resolve("model.safetensors"));
        assertMentions(loadError(dir), dir.toString(), "model.safetensors");
    }

    @Test
    void weightsInAnotherFamilysLayoutAreRefused() throws IOException {
        // llava-hf config over original-LLaVA names
        Path dir = copyWith(t -> {
            Map<String, HostTensor> renamed = new LinkedHashMap<>();
            t.forEach((k, v) -> {
                if (!k.startsWith(Layout.VISION)) renamed.put(Layout.ORIGINAL_LLAVA.fileName(k, 2), v);
            });
            t.clear();
            t.putAll(renamed);
        });
        assertMentions(loadError(dir), "ORIGINAL_LLAVA", "HF_LLAVA");
    }

    // ------------------------------------------------------------------------------------------------ config.json

    @Test
    void configNotJson() throws IOException {
        Path dir = copyWithConfig("{\"model_type\": \"llava\", \"text_config\": {");
        assertMentions(configError(dir), dir.resolve("config.json").toString(), "JSON");
    }

    @Test
    void configMissing() throws IOException {
        Path dir = copyWith(t -> {});
        Files.delete(dir.resolve("config.json"));
        assertMentions(configError(dir), dir.resolve("config.json").toString(), "not found");
    }

    @Test
    void configMissingTextConfig() throws IOException {
        Path dir = copyWithConfig(c -> c.remove("text_config"));
        assertMentions(configError(dir), dir.resolve("config.json").toString(), "text_config");
    }

    @Test
    void configMissingVisionConfig() throws IOException {
        assertMentions(configError(copyWithConfig(c -> c.remove("vision_config"))), "vision_config");
    }

    @Test
    void configHeadsNotANumber() throws IOException {
        Path dir = copyWithConfig(c -> ((ObjectNode) c.get("text_config")).put("num_attention_heads", "four"));
        assertMentions(configError(dir), "num_attention_heads", "four", "text_config");
    }

    @Test
    void configVisionHeadsNotANumber() throws IOException {
        Path dir = copyWithConfig(c -> ((ObjectNode) c.get("vision_config")).put("num_attention_heads", "four"));
        assertMentions(configError(dir), "num_attention_heads", "vision_config");
    }

    @Test
    void configTextHiddenSizeNotDivisibleByHeads() throws IOException {
        Path dir = copyWithConfig(c -> ((ObjectNode) c.get("text_config")).put("hidden_size", 50));
        assertMentions(configError(dir), "hidden_size", "num_attention_heads", "50");
    }

    @Test
    void configVisionHiddenSizeNotDivisibleByHeads() throws IOException {
        Path dir = copyWithConfig(c -> ((ObjectNode) c.get("vision_config")).put("hidden_size", 30));
        assertMentions(configError(dir), "hidden_size", "num_attention_heads", "30");
    }

    @Test
    void configExplicitHeadDimNeedNotDivideHiddenSize() throws IOException {
        // transformers allows head_dim * heads != hidden_size when head_dim is given: then the checkpoint decides
        Path dir = copyWithConfig(c -> ((ObjectNode) c.get("text_config")).put("hidden_size", 50).put("head_dim", 12));
        String msg = loadError(dir); // the config is fine; the tiny tensors do not fit it
        assertMentions(msg, "shape", "language_model.model.embed_tokens.weight", "[1024, 50]");
    }

    @Test
    void configFeatureLayerOutOfRange() throws IOException {
        // 3 CLIP layers: hidden states 0..3, i.e. -4..3
        assertMentions(configError(copyWithConfig(c -> c.put("vision_feature_layer", 4))), "vision_feature_layer", "4");
        assertMentions(configError(copyWithConfig2(c -> c.put("vision_feature_layer", -5))), "vision_feature_layer", "-5");
    }

    @Test
    void configFeatureLayerNotAnInteger() throws IOException {
        assertMentions(configError(copyWithConfig(c -> c.putArray("vision_feature_layer").add(-2).add(-1))), "vision_feature_layer");
    }

    @Test
    void configImageTokenOutsideVocabulary() throws IOException {
        assertMentions(configError(copyWithConfig(c -> c.put("image_token_index", 1024))), "image_token_index", "1024");
    }

    @Test
    void configUnknownActivationAndStrategy() throws IOException {
        assertMentions(configError(copyWithConfig(c -> c.put("projector_hidden_act", "swish"))), "projector_hidden_act", "swish");
        assertMentions(configError(copyWithConfig2(c -> c.put("vision_feature_select_strategy", "cls"))),
                "vision_feature_select_strategy", "cls");
    }

    @Test
    void configUnknownModelType() throws IOException {
        assertMentions(configError(copyWithConfig(c -> c.put("model_type", "gpt2"))), "model_type", "gpt2");
    }

    /** A second, independent copy (for tests that check two configs). */
    Path copyWithConfig2(Consumer<ObjectNode> edit) throws IOException {
        Path saved = tmp;
        tmp = tmp.resolve("second");
        try {
            return copyWithConfig(edit);
        } finally {
            tmp = saved;
        }
    }
}
