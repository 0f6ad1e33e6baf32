package io.llava4j.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.config.LlavaConfig;
import io.llava4j.config.LlavaConfig.Family;
import io.llava4j.config.LlavaConfig.ProjectorSpec;
import io.llava4j.engine.Engine;
import io.llava4j.engine.Tensors;
import io.llava4j.io.HostTensor;
import io.llava4j.io.JsonFiles;
import io.llava4j.io.Layout;
import io.llava4j.io.Safetensors;
import org.bytedeco.pytorch.Tensor;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Loads a LLaVA from a Hugging Face folder in any {@link Layout} and writes it back. Loading is strict: every missing,
 * unexpected or wrongly shaped tensor is listed in one {@link CheckpointException}.
 */
public final class Checkpoints {
    private static final ObjectMapper JSON = new ObjectMapper();
    /** Files copied next to a written model so that the folder is complete. */
    public static final List<String> SIDE_FILES = List.of("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
            "tokenizer.model", "preprocessor_config.json", "generation_config.json", "added_tokens.json", "chat_template.json");

    /** Where the original layout puts a tower that has no CLIP folder of its own (named relative to the model folder). */
    static final String VISION_TOWER_DIR = "vision_tower";

    private Checkpoints() {}

    /** A model and the layout its folder was in. */
    public record Loaded(Llava model, Layout layout, Path folder) {}

    public static Loaded load(Path folder) {
        return load(folder, null, null);
    }

    /**
     * @param visionTower {@code --vision_tower}: the CLIP folder (required for a plain LLaMA folder)
     * @param projector   projector flags for a plain LLaMA folder, whose projector starts fresh (PyTorch's default init)
     */
    public static Loaded load(Path folder, Path visionTower, ProjectorSpec projector) {
        Engine.init();
        LlavaConfig cfg = LlavaConfig.load(folder, visionTower, projector);
        Map<String, HostTensor> weights = read(folder);
        Layout layout = Layout.detect(weights.keySet());
        if (layout == null)
            throw new CheckpointException(folder + ": the tensor names match no known layout (llava-hf, transformers, original LLaVA, LLaMA); first names: "
                    + weights.keySet().stream().limit(5).toList());
        if ((cfg.family() == Family.HF_LLAVA) != (layout == Layout.LLAVA_HF || layout == Layout.TRANSFORMERS))
            throw new CheckpointException(folder + ": config.json describes a " + cfg.family() + " model but the weights are in the "
                    + layout + " layout");
        if (cfg.family() == Family.LLAMA && layout == Layout.ORIGINAL_LLAVA) layout = Layout.LLAMA;
        Map<String, HostTensor> vision = cfg.visionTowerFolder() == null ? Map.of() : read(cfg.visionTowerFolder());
        Llava model = new Llava(cfg);
        assign(model, layout, weights, vision, folder, cfg.visionTowerFolder());
        if (layout == Layout.LLAMA) model.projector.resetParameters();
        return new Loaded(model, layout, folder);
    }

    private static Map<String, HostTensor> read(Path folder) {
        try {
            return Safetensors.readModel(folder);
        } catch (IOException e) {
            String hint = Files.isRegularFile(folder.resolve("mm_projector.safetensors")) || Files.isRegularFile(folder.resolve("mm_projector.bin"))
                    ? " (this is a stage-1 output holding only the projector: use the base model with --pretrain_mm_mlp_adapter "
                      + folder.resolve(Files.isRegularFile(folder.resolve("mm_projector.safetensors")) ? "mm_projector.safetensors" : "mm_projector.bin") + ")"
                    : "";
            throw new CheckpointException(e.getMessage() + hint, e);
        }
    }

    private static void assign(Llava model, Layout layout, Map<String, HostTensor> weights, Map<String, HostTensor> vision,
                               Path folder, Path visionFolder) {
        int depth = model.config.projectorDepth();
        Set<String> unusedMain = unusedKeys(weights.keySet());
        Set<String> unusedVision = unusedKeys(vision.keySet());
        List<String> missing = new ArrayList<>(), wrongShape = new ArrayList<>();
        Map<Tensor, HostTensor> plan = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> p : Tensors.namedParameters(model).entrySet()) {
            String name = p.getKey();
            Layout.Source src = layout.source(name);
            if (src == Layout.Source.NONE) continue;
            String key = layout.fileName(name, depth);
            HostTensor h;
            String where;
            if (src == Layout.Source.VISION_FOLDER && weights.containsKey(Layout.ORIGINAL_VISION_IN_CHECKPOINT + key)) {
                key = Layout.ORIGINAL_VISION_IN_CHECKPOINT + key; // a trained tower saved inside the LLaVA checkpoint
                h = weights.get(key);
                unusedMain.remove(key);
                unusedVision.remove(key.substring(Layout.ORIGINAL_VISION_IN_CHECKPOINT.length()));
                where = folder.toString();
            } else if (src == Layout.Source.VISION_FOLDER) {
                h = vision.get(key);
                unusedVision.remove(key);
                where = String.valueOf(visionFolder);
            } else {
                h = weights.get(key);
                unusedMain.remove(key);
                where = folder.toString();
            }
            if (h == null) {
                missing.add(key + " (" + where + ")");
                continue;
            }
            long[] want = Tensors.shape(p.getValue());
            if (!Arrays.equals(want, h.shape())) {
                wrongShape.add(key + ": file has " + Arrays.toString(h.shape()) + ", model expects " + Arrays.toString(want));
                continue;
            }
            plan.put(p.getValue(), h);
        }
        // a CLIP folder may hold a whole CLIPModel: its text half and projections are not LLaVA's
        unusedVision.removeIf(k -> !k.startsWith("vision_model.") || k.startsWith("vision_model.head."));
        List<String> unexpected = new ArrayList<>();
        unusedMain.forEach(k -> unexpected.add(k + " (" + folder + ")"));
        unusedVision.forEach(k -> unexpected.add(k + " (" + visionFolder + ")"));
        CheckpointException.throwIfMismatched(folder + ": the checkpoint (" + layout + " layout) does not match the model config",
                missing, unexpected, wrongShape);
        plan.forEach((param, h) -> Tensors.assign(param, Tensors.fromHost(h)));
    }

    /** Keys that must be used, minus buffers transformers saves but llava4j recomputes. */
    private static Set<String> unusedKeys(Set<String> keys) {
        Set<String> s = new LinkedHashSet<>(keys);
        s.removeIf(k -> k.endsWith("position_ids") || k.endsWith("rotary_emb.inv_freq"));
        return s;
    }

    /** The model's tensors named as {@code layout} names them in its main checkpoint file. */
    public static Map<String, HostTensor> checkpointTensors(Llava model, Layout layout, boolean includeVision) {
        Map<String, HostTensor> out = new LinkedHashMap<>();
        int depth = model.config.projectorDepth();
        for (Map.Entry<String, Tensor> p : Tensors.namedParameters(model).entrySet()) {
            String name = p.getKey();
            Layout.Source src = layout.source(name);
            if (src == Layout.Source.VISION_FOLDER) {
                if (includeVision) out.put(Layout.ORIGINAL_VISION_IN_CHECKPOINT + layout.fileName(name, depth), Tensors.toHost(p.getValue()));
            } else if (src == Layout.Source.CHECKPOINT) {
                out.put(layout.fileName(name, depth), Tensors.toHost(p.getValue()));
            }
        }
        return out;
    }

    /**
     * Writes a complete model folder in {@code layout}: config.json, model.safetensors, and the tokenizer / processor
     * files of {@code sideFilesFrom}. For the original layout the vision tower stays in its CLIP folder (named by
     * {@code mm_vision_tower}), unless {@code includeVision} or the model has no CLIP folder (then it is written to
     * {@code out/vision_tower}).
     */
    public static void save(Llava model, Layout layout, Path out, Path sideFilesFrom, boolean includeVision) {
        try {
            Files.createDirectories(out);
            if (layout != Layout.LLAVA_HF && layout != Layout.TRANSFORMERS && layout != Layout.ORIGINAL_LLAVA)
                throw new IllegalArgumentException("cannot write a LLaVA in the " + layout + " layout");
            writeConfig(model, layout, out); // first: it refuses configs the layout cannot express
            if (layout == Layout.ORIGINAL_LLAVA && model.config.visionTowerFolder() == null)
                saveVisionTower(model, out.resolve(VISION_TOWER_DIR));
            Safetensors.write(out.resolve("model.safetensors"), checkpointTensors(model, layout, includeVision), Map.of("format", "pt"));
            if (sideFilesFrom != null && !sideFilesFrom.toAbsolutePath().normalize().equals(out.toAbsolutePath().normalize()))
                for (String f : SIDE_FILES)
                    if (Files.isRegularFile(sideFilesFrom.resolve(f)))
                        Files.copy(sideFilesFrom.resolve(f), out.resolve(f), StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            throw new UncheckedIOException(out + ": cannot write the model: " + e.getMessage(), e);
        }
    }

    /** Writes only {@code config.json} for the model in {@code layout} (stage 1 writes it beside the projector). */
    public static void writeConfig(Llava model, Layout layout, Path out) throws IOException {
        Files.createDirectories(out);
        LlavaConfig cfg = model.config;
        ObjectNode config = layout == Layout.ORIGINAL_LLAVA
                ? originalConfig(cfg, cfg.visionTowerFolder() == null ? VISION_TOWER_DIR : cfg.visionTowerFolder().toAbsolutePath().normalize().toString())
                : hfConfig(cfg);
        JsonFiles.write(out.resolve("config.json"), config);
    }

    /** A CLIPVisionModel folder (config.json + model.safetensors with {@code vision_model.…}). */
    public static void saveVisionTower(Llava model, Path dir) throws IOException {
        Files.createDirectories(dir);
        Map<String, HostTensor> t = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> p : Tensors.namedParameters(model.visionTower).entrySet())
            t.put(p.getKey(), Tensors.toHost(p.getValue()));
        Safetensors.write(dir.resolve("model.safetensors"), t, Map.of("format", "pt"));
        ObjectNode c = JSON.valueToTree(model.config.vision());
        c.put("model_type", "clip_vision_model");
        c.putArray("architectures").add("CLIPVisionModel");
        JsonFiles.write(dir.resolve("config.json"), c);
    }

    static ObjectNode hfConfig(LlavaConfig cfg) {
        if (cfg.family() == Family.HF_LLAVA) return cfg.raw().deepCopy();
        if (cfg.imageTokenIndex() < 0)
            throw new IllegalArgumentException("an HF llava config needs an image token inside the vocabulary; this "
                    + cfg.family() + " model uses LLaVA's placeholder " + cfg.imageTokenIndex() + ": save it in the original layout");
        throw new IllegalArgumentException("converting a " + cfg.family() + " model to the HF layout is not supported");
    }

    static ObjectNode originalConfig(LlavaConfig cfg, String tower) {
        ObjectNode c;
        if (cfg.family() == Family.HF_LLAVA) {
            c = JSON.valueToTree(cfg.text());
            c.put("torch_dtype", cfg.raw().path("torch_dtype").asText("float32"));
        } else {
            c = cfg.raw().deepCopy();
        }
        c.put("model_type", "llava_llama");
        c.putArray("architectures").add("LlavaLlamaForCausalLM");
        c.put("mm_vision_tower", tower);
        c.put("mm_projector_type", cfg.projectorType());
        c.put("mm_vision_select_layer", cfg.visionFeatureLayer());
        c.put("mm_vision_select_feature", "full".equals(cfg.visionFeatureSelectStrategy()) ? "cls_patch" : "patch");
        c.put("mm_hidden_size", cfg.vision().hiddenSize());
        c.put("use_mm_proj", true);
        return c;
    }
}
