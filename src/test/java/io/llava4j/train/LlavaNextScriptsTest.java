package io.llava4j.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.TestData;
import io.llava4j.config.LlavaConfig;
import io.llava4j.io.HostTensor;
import io.llava4j.io.Safetensors;
import io.llava4j.model.Checkpoints;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * LLaVA-NeXT's OneVision recipe from a plain Qwen2 folder and a SigLIP folder, with its scripts' flags: pre-training
 * (plain template, one tile, {@code --mm_tunable_parts mm_mlp_adapter}), then the AnyRes stage from the LLM and the
 * pre-trained projector ({@code --image_aspect_ratio anyres_max_2 --image_grid_pinpoints ... --mm_patch_merge_type
 * spatial_unpad}), which builds the AnyRes model, a fresh {@code image_newline}, and writes an original folder that loads
 * back as that model.
 */
class LlavaNextScriptsTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final Path OV = TestData.onevision().resolve("tiny-onevision");

    /** The tiny OneVision model's LLM as a plain Qwen2 folder, and its tower as a SigLIP folder (one layer more). */
    static Path[] plainFolders(Path dir) throws Exception {
        ObjectNode hf = (ObjectNode) JSON.readTree(OV.resolve("config.json").toFile());
        Map<String, HostTensor> w = Safetensors.read(OV.resolve("model.safetensors")).tensors();
        Path llm = Files.createDirectories(dir.resolve("qwen2")), tower = Files.createDirectories(dir.resolve("siglip"));
        Map<String, HostTensor> lw = new LinkedHashMap<>(), tw = new LinkedHashMap<>();
        w.forEach((k, v) -> {
            if (k.startsWith("model.language_model.")) lw.put("model." + k.substring("model.language_model.".length()), v);
            if (k.startsWith("model.vision_tower.")) tw.put(k.substring("model.vision_tower.".length()), v);
        });
        tw.keySet().stream().filter(k -> k.contains("layers.0.")).toList().forEach(k -> tw.put(k.replace("layers.0.", "layers.2."), tw.get(k)));
        Safetensors.write(llm.resolve("model.safetensors"), lw, Map.of("format", "pt"));
        Safetensors.write(tower.resolve("model.safetensors"), tw, Map.of("format", "pt"));
        Files.writeString(llm.resolve("config.json"), hf.get("text_config").toPrettyString());
        ObjectNode v = ((ObjectNode) hf.get("vision_config")).deepCopy();
        v.put("num_hidden_layers", v.get("num_hidden_layers").asInt() + 1);
        Files.writeString(tower.resolve("config.json"), v.toPrettyString());
        for (String f : List.of("tokenizer.json", "tokenizer_config.json")) Files.copy(OV.resolve(f), llm.resolve(f));
        Files.copy(OV.resolve("preprocessor_config.json"), tower.resolve("preprocessor_config.json"));
        return new Path[]{llm, tower};
    }

    static List<String> flags(Path llm, Path tower, Path out, String version, String data, String... more) {
        Path d = TestData.onevision().resolve("tiny-data");
        List<String> f = new ArrayList<>(List.of("--model_name_or_path", llm.toString(), "--vision_tower", tower.toString(),
                "--version", version, "--data_path", d.resolve(data).toString(), "--image_folder", d.resolve("images").toString(),
                "--mm_projector_type", "mlp2x_gelu", "--mm_vision_select_layer", "-2", "--mm_use_im_start_end", "False",
                "--mm_use_im_patch_token", "False", "--max_steps", "2",
                "--learning_rate", "1e-3", "--weight_decay", "0.", "--warmup_ratio", "0.03", "--lr_scheduler_type", "cosine",
                "--logging_steps", "1", "--model_max_length", "512", "--lazy_preprocess", "True", "--report_to", "none",
                "--attn_implementation", "sdpa", "--run_name", "tiny", "--output_dir", out.toString()));
        f.addAll(List.of(more));
        return f;
    }

    @Test
    void pretrainThenAnyresStageFromThePlainLlm(@TempDir Path tmp) throws Exception {
        Path[] plain = plainFolders(tmp);
        Path s1 = tmp.resolve("pretrain"), s2 = tmp.resolve("si");
        Trainer t1 = TrainRuns.run(flags(plain[0], plain[1], s1, "plain", "stage1.json", "--mm_tunable_parts", "mm_mlp_adapter",
                "--per_device_train_batch_size", "5"));
        assertNull(t1.model().config.anyres(), "pre-training: one tile per image");
        assertEquals(16, t1.model().config.imageFeatureTokens());
        assertTrue(Files.isRegularFile(s1.resolve("mm_projector.safetensors")));

        // the tiny model's pinpoints, as LLaVA-NeXT's flags write them: (w, h)
        Trainer t2 = TrainRuns.run(flags(plain[0], plain[1], s2, "qwen_1_5", "stage2.json",
                "--mm_tunable_parts", "mm_mlp_adapter,mm_language_model", "--pretrain_mm_mlp_adapter",
                s1.resolve("mm_projector.safetensors").toString(), "--image_aspect_ratio", "anyres_max_2",
                "--image_grid_pinpoints", "[(32, 16), (32, 32), (16, 32), (16, 16)]", "--mm_patch_merge_type", "spatial_unpad",
                "--per_device_train_batch_size", "3"));
        LlavaConfig c = t2.model().config;
        assertNotNull(c.anyres());
        assertEquals(2, c.anyres().maxN());
        List<int[]> hf = LlavaConfig.load(OV, null, null).anyres().pinpointsHW();
        for (int i = 0; i < hf.size(); i++) assertArrayEquals(hf.get(i), c.anyres().pinpointsHW().get(i), "pinpoint " + i);
        assertTrue(t2.losses().stream().allMatch(l -> l > 0 && l < 20), "losses: " + t2.losses());
        assertTrue(t2.parameters().get("image_newline").requires_grad(), "mm_language_model trains image_newline");

        // the written original folder loads back as the same AnyRes model, with the same packing
        JsonNode saved = JSON.readTree(s2.resolve("config.json").toFile());
        assertEquals("anyres_max_2", saved.get("image_aspect_ratio").asText());
        assertEquals("spatial_unpad", saved.get("mm_patch_merge_type").asText());
        assertEquals("llava_qwen", saved.get("model_type").asText());
        var again = Checkpoints.load(s2).model();
        assertEquals(46, again.imageTokens(64, 40), "img2's 46 rows, as the reference packs them");
        assertTrue(again.imageNewline.equal(t2.parameters().get("image_newline")));
    }

    @Test
    void imageFlagsMustAgreeWithAnAnyresModel(@TempDir Path tmp) {
        Path d = TestData.onevision().resolve("tiny-data");
        List<String> f = OnevisionTrainingTest.common(tmp.resolve("o"), "stage1.json", "mm_mlp_adapter", 5, 1);
        f.addAll(List.of("--image_aspect_ratio", "anyres_max_9"));
        Exception e = assertThrows(Exception.class, () -> TrainRuns.run(f));
        assertTrue(e.getMessage().contains("anyres_max_9") && e.getMessage().contains("anyres_max_2"), e.getMessage());
        List<String> g = OnevisionTrainingTest.common(tmp.resolve("p"), "stage1.json", "mm_mlp_adapter", 5, 1);
        g.addAll(List.of("--image_aspect_ratio", "anyres_max_2", "--image_grid_pinpoints", "[(16, 32), (32, 32), (32, 16), (16, 16)]"));
        e = assertThrows(Exception.class, () -> TrainRuns.run(g));
        assertTrue(e.getMessage().contains("--image_grid_pinpoints"), e.getMessage());
    }

    /** --dataloader_drop_last True (LLaVA-NeXT's scripts pass it): each epoch's last incomplete batch is left out. */
    @Test
    void dropLastLeavesOutTheIncompleteBatch(@TempDir Path tmp) throws Exception {
        List<String> all = OnevisionTrainingTest.common(tmp.resolve("all"), "stage1.json", "mm_mlp_adapter", 2, -1);
        all.addAll(List.of("--num_train_epochs", "1", "--dataloader_drop_last", "False"));
        List<String> drop = OnevisionTrainingTest.common(tmp.resolve("drop"), "stage1.json", "mm_mlp_adapter", 2, -1);
        drop.addAll(List.of("--num_train_epochs", "1", "--dataloader_drop_last", "True"));
        List<Double> a = TrainRuns.run(all).losses(), d = TrainRuns.run(drop).losses();
        assertEquals(3, a.size(), "5 samples in batches of 2: 3 steps");
        assertEquals(2, d.size(), "the fifth sample's batch is left out");
        assertEquals(a.subList(0, 2), d, "the same batches in the same order before it");
    }
}
