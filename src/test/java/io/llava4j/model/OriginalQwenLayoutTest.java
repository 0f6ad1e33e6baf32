package io.llava4j.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.TestData;
import io.llava4j.config.LlavaConfig;
import io.llava4j.engine.Tensors;
import io.llava4j.io.HostTensor;
import io.llava4j.io.Layout;
import io.llava4j.io.Safetensors;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * LLaVA-NeXT's original layout for a OneVision model ({@code llava} + {@code LlavaQwenForCausalLM}, Qwen2 fields at the
 * top level, the pinpoints as (width, height), {@code anyres_max_2}, a SigLIP folder whose last layer LLaVA-NeXT deletes,
 * the tower's weights inside the checkpoint as {@code model.vision_tower.vision_tower.*}, {@code model.mm_projector.*},
 * {@code model.image_newline}): the tiny OneVision weights in that layout give the logits of the reference (HF) folder.
 */
class OriginalQwenLayoutTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final Path HF = TestData.onevision().resolve("tiny-onevision");

    /** The tiny OneVision model as an lmms-lab original folder (its SigLIP folder beside it holds one layer more). */
    static Path original(Path dir) throws Exception {
        ObjectNode hf = (ObjectNode) JSON.readTree(HF.resolve("config.json").toFile());
        ObjectNode text = (ObjectNode) hf.get("text_config");
        ObjectNode vision = ((ObjectNode) hf.get("vision_config")).deepCopy();
        Path tower = Files.createDirectories(dir.resolve("siglip"));
        vision.put("num_hidden_layers", vision.get("num_hidden_layers").asInt() + 1); // LLaVA-NeXT deletes the last
        Files.writeString(tower.resolve("config.json"), vision.toPrettyString());
        Map<String, HostTensor> w = Safetensors.read(HF.resolve("model.safetensors")).tensors();
        Map<String, HostTensor> towerFile = new LinkedHashMap<>(), ckpt = new LinkedHashMap<>();
        w.forEach((k, v) -> {
            if (k.startsWith("model.vision_tower.")) {
                towerFile.put(k.substring("model.vision_tower.".length()), v);
                ckpt.put("model.vision_tower.vision_tower." + k.substring("model.vision_tower.".length()), v);
            }
        });
        // the deleted layer: in the folder, never used
        towerFile.keySet().stream().filter(k -> k.startsWith("vision_model.encoder.layers.0.")).toList()
                .forEach(k -> towerFile.put(k.replace("layers.0.", "layers.2."), w.get("model.vision_tower." + k)));
        Safetensors.write(tower.resolve("model.safetensors"), towerFile, Map.of("format", "pt"));
        w.forEach((k, v) -> {
            if (k.startsWith("model.language_model.")) ckpt.put("model." + k.substring("model.language_model.".length()), v);
            else if (k.equals("model.image_newline")) ckpt.put(k, v);
            else if (k.startsWith("model.multi_modal_projector.linear_"))
                ckpt.put(Layout.originalProjectorName(k.substring("model.".length()), 2), v);
        });
        Path model = Files.createDirectories(dir.resolve("model"));
        Safetensors.write(model.resolve("model.safetensors"), ckpt, Map.of("format", "pt"));
        ObjectNode c = JSON.createObjectNode();
        c.putArray("architectures").add("LlavaQwenForCausalLM");
        c.put("model_type", "llava");
        text.fieldNames().forEachRemaining(f -> {
            if (!f.equals("architectures") && !f.equals("rope_parameters") && !f.equals("model_type") && !f.equals("layer_types"))
                c.set(f, text.get(f));
        });
        c.put("rope_theta", text.get("rope_parameters").get("rope_theta").asDouble());
        c.put("sliding_window", 32768); // a number with use_sliding_window false, as the published configs have
        c.put("mm_vision_tower", tower.toAbsolutePath().toString());
        c.put("mm_projector_type", "mlp2x_gelu");
        c.put("mm_hidden_size", vision.get("hidden_size").asInt());
        c.put("mm_vision_select_layer", -2); // ignored for SigLIP, as LLaVA-NeXT does
        c.put("mm_vision_select_feature", "patch");
        c.put("mm_patch_merge_type", "spatial_unpad");
        c.put("image_aspect_ratio", hf.get("vision_aspect_ratio").asText());
        var pp = c.putArray("image_grid_pinpoints");
        for (var hw : hf.get("image_grid_pinpoints")) pp.addArray().add(hw.get(1).asInt()).add(hw.get(0).asInt()); // (w, h)
        Files.writeString(model.resolve("config.json"), c.toPrettyString());
        return model;
    }

    @Test
    void originalLayoutGivesTheReferenceLogits(@TempDir Path tmp) throws Exception {
        Path folder = original(tmp);
        LlavaConfig cfg = LlavaConfig.load(folder, null, null);
        assertEquals(LlavaConfig.Family.ORIGINAL_LLAVA, cfg.family());
        assertEquals("qwen2", cfg.text().modelType());
        assertEquals(2, cfg.vision().numHiddenLayers(), "the folder's last layer deleted");
        assertFalse(cfg.anyres().hfRounding());
        // the (w, h) pairs of the file read back as the HF folder's (h, w), in order (ties go to the first)
        java.util.List<int[]> hfPinpoints = LlavaConfig.load(HF, null, null).anyres().pinpointsHW();
        assertEquals(hfPinpoints.size(), cfg.anyres().pinpointsHW().size());
        for (int i = 0; i < hfPinpoints.size(); i++)
            assertArrayEquals(hfPinpoints.get(i), cfg.anyres().pinpointsHW().get(i), "pinpoint " + i);
        Checkpoints.Loaded l = Checkpoints.load(folder);
        assertEquals(Layout.ORIGINAL_LLAVA, l.layout());
        Llava m = l.model();
        Map<String, HostTensor> ex = TestData.tensors(TestData.onevision().resolve("expected/forward-and-grads.safetensors"));
        for (int k = 0; k < 3; k++) {
            String c = "case" + k + ".";
            long[] hw = ex.get(c + "image_sizes").toLongs();
            long[] ids = ex.get(c + "input_ids").toLongs();
            for (int i = 0; i < ids.length; i++) if (ids[i] == 1027) ids[i] = LlavaConfig.LLAVA_IMAGE_TOKEN_INDEX;
            Llava.Output out = m.forward(Tensors.fromHost(ex.get(c + "pixel_values")), new int[][]{{(int) hw[0], (int) hw[1]}},
                    new long[][]{ids}, new long[][]{ex.get(c + "labels").toLongs()}, null, 0);
            Tensor ref = Tensors.fromHost(ex.get(c + "logits"));
            double e = Tensors.relativeError(out.logits().get(0), ref);
            assertTrue(e < 1e-5, c + " logits rel err " + e);
        }
    }

    @Test
    void savedOriginalLoadsAgainWithTheSameWeights(@TempDir Path tmp) throws Exception {
        Llava m = Checkpoints.load(original(tmp)).model();
        Path out = tmp.resolve("saved");
        Checkpoints.save(m, Layout.ORIGINAL_LLAVA, out, null, false);
        ObjectNode saved = (ObjectNode) JSON.readTree(out.resolve("config.json").toFile());
        assertEquals("llava", saved.get("model_type").asText(), "the original model_type is kept");
        assertEquals("LlavaQwenForCausalLM", saved.get("architectures").get(0).asText());
        Llava again = Checkpoints.load(out).model();
        Map<String, Tensor> a = Tensors.namedParameters(m), b = Tensors.namedParameters(again);
        assertEquals(a.keySet(), b.keySet());
        for (String k : a.keySet()) assertTrue(a.get(k).equal(b.get(k)), k);
    }

    /** LLaVA-NeXT's scripts pass --vision_tower with the hub id the checkpoint names: its own tower, no folder needed. */
    @Test
    void visionTowerFlagNamingTheCheckpointsTowerIsItsOwn(@TempDir Path tmp) throws Exception {
        Path folder = original(tmp);
        ObjectNode c = (ObjectNode) JSON.readTree(folder.resolve("config.json").toFile());
        String tower = c.get("mm_vision_tower").asText();
        // the tower folder moves away: the checkpoint carries the weights, the config names the hub id
        c.put("mm_vision_tower", "google/siglip-so400m-patch14-384");
        c.put("mm_hidden_size", 1152); // a config-level check: so400m's width
        c.put("image_grid_pinpoints", "(1x1),...,(2x2)");
        Files.writeString(folder.resolve("config.json"), c.toPrettyString());
        LlavaConfig cfg = LlavaConfig.load(folder, Path.of("google/siglip-so400m-patch14-384"), null);
        assertEquals(1152, cfg.vision().hiddenSize(), "so400m by its id");
        assertTrue(cfg.checkFlags(Path.of("google/siglip-so400m-patch14-384"), null, -2, null).stream()
                .anyMatch(n -> n.contains("the model's own mm_vision_tower")));
        assertThrows(io.llava4j.config.ConfigException.class, () -> cfg.checkFlags(Path.of("google/other-tower"), null, null, null));
        assertTrue(Files.isDirectory(Path.of(tower)));
    }
}
