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
import io.llava4j.nn.Precision;
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
        return load(folder, visionTower, projector, Precision.FP32);
    }

    /**
     * As {@link #load(Path, Path, ProjectorSpec)}, storing the weight matrices of the vision tower and the LLM in
     * {@code precision}'s storage type (the projector, norms and biases stay fp32). Each tensor goes from the
     * memory-mapped file straight into its parameter: peak memory is the model in that storage plus one tensor.
     */
    public static Loaded load(Path folder, Path visionTower, ProjectorSpec projector, Precision precision) {
        return load(folder, visionTower, projector, precision, null);
    }

    /**
     * As {@link #load(Path, Path, ProjectorSpec, Precision)}, with the LLM's decoder-layer linear weights quantized as
     * {@code quant} says (null: none) while they are read, one tensor at a time ({@link QuantizedLlm}); CPU only.
     */
    public static Loaded load(Path folder, Path visionTower, ProjectorSpec projector, Precision precision, io.llava4j.nn.quant.QuantSpec quant) {
        return load(folder, visionTower, projector, precision, quant, false);
    }

    /**
     * As {@link #load(Path, Path, ProjectorSpec, Precision, io.llava4j.nn.quant.QuantSpec)} for a model that only runs
     * (generate, chat, serve, score): every tensor whose file dtype is its storage type is used in place, straight from
     * the read-only memory-mapped file, not copied — the file's pages are the weights (shared with the page cache and
     * with other processes mapping the same file). Nothing may write such a parameter: a write faults. {@code inPlace}
     * false: copied, as for training.
     */
    public static Loaded loadForInference(Path folder, Path visionTower, Precision precision, io.llava4j.nn.quant.QuantSpec quant, boolean inPlace) {
        return load(folder, visionTower, null, precision, quant, inPlace);
    }

    private static Loaded load(Path folder, Path visionTower, ProjectorSpec projector, Precision precision, io.llava4j.nn.quant.QuantSpec quant,
                               boolean inPlace) {
        Engine.init();
        if (quant != null && !io.llava4j.engine.Device.isCpu())
            throw new IllegalArgumentException("quantized weights (--bits / --load_4bit / --load_8bit) run on --device cpu only");
        LlavaConfig cfg = LlavaConfig.load(folder, visionTower, projector);
        Map<String, HostTensor> weights = read(folder);
        Layout layout = Layout.detect(weights.keySet());
        if (layout == null)
            throw new CheckpointException(folder + ": the tensor names match no known layout (llava-hf, transformers, original LLaVA, LLaMA); first names: "
                    + weights.keySet().stream().limit(5).toList());
        if (!fits(cfg.family(), layout))
            throw new CheckpointException(folder + ": config.json describes a " + cfg.family() + " model but the weights are in the "
                    + layout + " layout");
        if (cfg.family() == Family.LLAMA && layout == Layout.ORIGINAL_LLAVA) layout = Layout.LLAMA;
        Map<String, HostTensor> vision = cfg.visionTowerFolder() == null ? Map.of() : read(cfg.visionTowerFolder());
        checkSizeAgainstWeights(cfg, folder, weights, vision); // before the model's memory is reserved
        Llava model = new Llava(cfg); // parameters are uninitialised (untouched pages) until assigned
        if (quant != null) model.quantized = new QuantizedLlm(model, quant);
        assign(model, layout, weights, vision, folder, cfg.visionTowerFolder(), precision,
                inPlace && io.llava4j.engine.Device.isCpu());
        if (layout == Layout.LLAMA) {
            model.projector.resetParameters();
            if (model.imageNewline != null) model.initImageNewline();
        }
        io.llava4j.engine.Device.move(model); // --device cuda
        return new Loaded(model, layout, folder);
    }

    /** Whether weights in {@code layout} can belong to a config of {@code family}. */
    static boolean fits(Family family, Layout layout) {
        return switch (family) {
            case HF_LLAVA -> layout == Layout.LLAVA_HF || layout == Layout.TRANSFORMERS;
            case TINYLLAVA -> layout == Layout.TINYLLAVA;
            case ORIGINAL_LLAVA, LLAMA -> layout == Layout.ORIGINAL_LLAVA || layout == Layout.LLAMA;
        };
    }

    /**
     * Refuses a config.json that describes a model larger than its weight files before any memory is reserved for it
     * (a corrupt or edited {@code vocab_size} of 2^31 would otherwise ask libtorch for terabytes): a lower bound of the
     * config's parameter count (embeddings, MLPs) must not exceed the elements the files hold.
     */
    static void checkSizeAgainstWeights(LlavaConfig cfg, Path folder, Map<String, HostTensor> weights, Map<String, HostTensor> vision) {
        long held = 0;
        for (Map<String, HostTensor> m : List.of(weights, vision))
            for (HostTensor h : m.values()) held = sat(held, numel(h.shape()));
        var t = cfg.text();
        var v = cfg.vision();
        long atLeast = sat(mul(n(t.vocabSize()), n(t.hiddenSize())),
                mul(mul(3, n(t.numHiddenLayers())), mul(n(t.hiddenSize()), n(t.intermediateSize()))));
        atLeast = sat(atLeast, mul(mul(2, n(v.numHiddenLayers())), mul(n(v.hiddenSize()), n(v.intermediateSize()))));
        if (atLeast > held)
            throw new CheckpointException(folder + ": config.json describes a model of at least " + atLeast
                    + " parameters (vocab_size, hidden_size, intermediate_size, num_hidden_layers) but the weights hold "
                    + held + ": the config disagrees with the weights");
    }

    private static long n(Integer x) {
        return x == null || x < 0 ? 0 : x;
    }

    private static long numel(long[] shape) {
        long n = 1;
        for (long d : shape) n = mul(n, d);
        return n;
    }

    private static long mul(long a, long b) {
        try {
            return Math.multiplyExact(a, b);
        } catch (ArithmeticException overflow) {
            return Long.MAX_VALUE;
        }
    }

    private static long sat(long a, long b) {
        long s = a + b;
        return s < 0 ? Long.MAX_VALUE : s;
    }

    private static Map<String, HostTensor> read(Path folder) {
        try {
            return Safetensors.readModel(folder);
        } catch (IOException e) {
            String hint = Files.isRegularFile(folder.resolve("mm_projector.safetensors")) || Files.isRegularFile(folder.resolve("mm_projector.bin"))
                    ? " (this is a stage-1 output holding only the projector: use the base model with --pretrain_mm_mlp_adapter "
                      + folder.resolve(Files.isRegularFile(folder.resolve("mm_projector.safetensors")) ? "mm_projector.safetensors" : "mm_projector.bin") + ")"
                    : Files.isRegularFile(folder.resolve("adapter_config.json"))
                    ? " (this is a LoRA output holding adapters: merge it into its base first with llava4j merge --lora_path " + folder
                      + " --model_name_or_path BASE --output_dir OUT)"
                    : "";
            throw new CheckpointException(e.getMessage() + hint, e);
        }
    }

    private static void assign(Llava model, Layout layout, Map<String, HostTensor> weights, Map<String, HostTensor> vision,
                               Path folder, Path visionFolder, Precision precision, boolean inPlace) {
        int depth = model.config.projectorDepth();
        Set<String> unusedMain = unusedKeys(weights.keySet());
        Set<String> unusedVision = unusedKeys(vision.keySet());
        List<String> missing = new ArrayList<>(), wrongShape = new ArrayList<>();
        Map<String, HostTensor> plan = new LinkedHashMap<>();
        Map<String, Tensor> params = Tensors.namedParameters(model);
        for (Map.Entry<String, Tensor> p : params.entrySet()) {
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
            plan.put(name, h);
        }
        // a CLIP folder may hold a whole CLIPModel: its text half and projections are not LLaVA's; a SigLIP folder its
        // pooling head, and the layer LLaVA-NeXT's tower deletes
        int towerLayers = model.config.vision().numHiddenLayers();
        unusedVision.removeIf(k -> !k.startsWith("vision_model.") || k.startsWith("vision_model.head.")
                || model.config.vision().isSiglip() && encoderLayer(k) >= towerLayers);
        // a SigLIP tower's pooling head (vision_use_head) is never used by LLaVA models
        unusedMain.removeIf(k -> k.contains("vision_tower.vision_model.head."));
        // a tied head: converted files may still carry lm_head.weight, a copy of the embedding
        if (model.languageModel.lmHead == null)
            unusedMain.remove(layout.fileName(Layout.LM_HEAD + "weight", depth));
        List<String> unexpected = new ArrayList<>();
        unusedMain.forEach(k -> unexpected.add(k + " (" + folder + ")"));
        unusedVision.forEach(k -> unexpected.add(k + " (" + visionFolder + ")"));
        CheckpointException.throwIfMismatched(folder + ": the checkpoint (" + layout + " layout) does not match the model config",
                missing, unexpected, wrongShape);
        plan.forEach((name, h) -> {
            if (model.quantized != null && model.quantized.holds(name)) model.quantized.load(name, h);
            else if (inPlace && Tensors.useInPlace(params.get(name), h, storageType(name, h, precision))) {
                model.mappedInPlace.add(h.data());
                model.loadedFrom.put(name, h);
                return;
            } else Tensors.load(params.get(name), h, storageType(name, h, precision));
            io.llava4j.io.MappedPages.release(h.data()); // copied: the file's pages need not stay resident
            model.loadedFrom.put(name, h);
        });
    }

    /** N of a {@code vision_model.encoder.layers.N.…} key, -1 for other keys. */
    private static int encoderLayer(String key) {
        String p = "vision_model.encoder.layers.";
        if (!key.startsWith(p)) return -1;
        int end = key.indexOf('.', p.length());
        try {
            return Integer.parseInt(key.substring(p.length(), end < 0 ? key.length() : end));
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    /** Matrices of the tower and the LLM in the run's half type; the projector, norms and biases in fp32. */
    static org.bytedeco.pytorch.global.torch.ScalarType storageType(String name, HostTensor h, Precision p) {
        boolean matrix = h.shape().length >= 2;
        return p != Precision.FP32 && matrix && !name.startsWith("multi_modal_projector.")
                ? p.storage : org.bytedeco.pytorch.global.torch.ScalarType.Float;
    }

    /** Keys that must be used, minus buffers transformers saves but llava4j recomputes. */
    private static Set<String> unusedKeys(Set<String> keys) {
        Set<String> s = new LinkedHashSet<>(keys);
        s.removeIf(k -> k.endsWith("position_ids") || k.endsWith("rotary_emb.inv_freq"));
        return s;
    }

    /** The model's tensors named as {@code layout} names them in its main checkpoint file (see {@link #forSaving}). */
    public static Map<String, HostTensor> checkpointTensors(Llava model, Layout layout, boolean includeVision) {
        Map<String, HostTensor> out = new LinkedHashMap<>();
        int depth = model.config.projectorDepth();
        for (Map.Entry<String, Tensor> p : Tensors.namedParameters(model).entrySet()) {
            String name = p.getKey();
            Layout.Source src = layout.source(name);
            if (src == Layout.Source.VISION_FOLDER) {
                if (includeVision) out.put(Layout.ORIGINAL_VISION_IN_CHECKPOINT + layout.fileName(name, depth), forSaving(model, name, p.getValue()));
            } else if (src == Layout.Source.CHECKPOINT) {
                out.put(layout.fileName(name, depth), forSaving(model, name, p.getValue()));
            }
        }
        return out;
    }

    /**
     * What is written for a parameter: while it is frozen and unchanged since loading, the file tensor it came from
     * (bit-identical, in the checkpoint's own dtype, read from the memory map); otherwise a view of its own native
     * memory in its storage type (fp32 for trained tensors). Nothing is copied to the Java heap; the views are valid
     * while the model lives.
     */
    static HostTensor forSaving(Llava model, String name, Tensor p) {
        HostTensor src = model.loadedFrom.get(name);
        if (src != null && !p.requires_grad() && Arrays.equals(src.shape(), Tensors.shape(p))) return src;
        return Tensors.hostView(p);
    }

    /** HF's default {@code max_shard_size} ("5GB"). */
    public static final long DEFAULT_MAX_SHARD_BYTES = 5_000_000_000L;

    public static void save(Llava model, Layout layout, Path out, Path sideFilesFrom, boolean includeVision) {
        save(model, layout, out, sideFilesFrom, includeVision, DEFAULT_MAX_SHARD_BYTES);
    }

    /**
     * Writes a complete model folder in {@code layout}: config.json, the weights (one {@code model.safetensors}, or
     * {@code model-0000k-of-0000N.safetensors} shards of at most {@code maxShardBytes} with
     * {@code model.safetensors.index.json}, as HF shards), and the tokenizer / processor files of {@code sideFilesFrom}.
     * For the original layout the vision tower stays in its CLIP folder (named by {@code mm_vision_tower}), unless
     * {@code includeVision} or the model has no CLIP folder (then it is written to {@code out/vision_tower}).
     *
     * <p>The folder appears complete or not at all: everything is written and fsynced in a temporary folder beside
     * {@code out}, which is renamed into place; when {@code out} already exists (a training run's output folder holding
     * checkpoints and logs) its old config.json goes first and the new one is moved in last, so no reader ever sees a
     * config.json without its weights.
     */
    public static void save(Llava model, Layout layout, Path out, Path sideFilesFrom, boolean includeVision, long maxShardBytes) {
        Path target = out.toAbsolutePath().normalize();
        Path tmp = target.resolveSibling("." + target.getFileName() + ".tmp-" + Long.toHexString(System.nanoTime()));
        try {
            if (layout != Layout.LLAVA_HF && layout != Layout.TRANSFORMERS && layout != Layout.TINYLLAVA && layout != Layout.ORIGINAL_LLAVA)
                throw new IllegalArgumentException("cannot write a LLaVA in the " + layout + " layout");
            removeStaleTemporaries(target);
            Files.createDirectories(tmp);
            writeConfig(model, layout, tmp); // first: it refuses configs the layout cannot express
            boolean towerInside = towerByHubName(model.config);
            if (layout == Layout.ORIGINAL_LLAVA && model.config.visionTowerFolder() == null && !towerInside)
                saveVisionTower(model, tmp.resolve(VISION_TOWER_DIR));
            writeWeights(tmp, checkpointTensors(model, layout, includeVision || towerInside), maxShardBytes);
            if (sideFilesFrom != null)
                for (String f : SIDE_FILES)
                    if (Files.isRegularFile(sideFilesFrom.resolve(f))) {
                        Files.copy(sideFilesFrom.resolve(f), tmp.resolve(f), StandardCopyOption.REPLACE_EXISTING);
                        io.llava4j.io.Fsync.file(tmp.resolve(f));
                    }
            io.llava4j.io.Fsync.directory(tmp);
            publish(tmp, target);
        } catch (IOException e) {
            throw new UncheckedIOException(out + ": cannot write the model: " + e.getMessage()
                    + (String.valueOf(e.getMessage()).contains("No space left") ? " (the disk is full; nothing of the model was written)" : ""), e);
        } finally {
            deleteTree(tmp);
        }
    }

    /** Removes {@code .NAME.tmp-*} folders beside {@code target}: half-written saves of a killed run (never read). */
    private static void removeStaleTemporaries(Path target) throws IOException {
        Path parent = target.getParent();
        if (parent == null || !Files.isDirectory(parent)) return;
        String prefix = "." + target.getFileName() + ".tmp-";
        try (var l = Files.list(parent)) {
            for (Path p : l.filter(p -> p.getFileName().toString().startsWith(prefix)).toList()) deleteTree(p);
        }
    }

    /** One {@code model.safetensors} when the weights fit in a shard, otherwise HF's shards and index. */
    static void writeWeights(Path dir, Map<String, HostTensor> tensors, long maxShardBytes) throws IOException {
        long total = 0;
        for (HostTensor t : tensors.values()) total += t.data().remaining();
        if (total <= maxShardBytes) Safetensors.write(dir.resolve(Safetensors.SINGLE_FILE), tensors, Map.of("format", "pt"));
        else Safetensors.writeSharded(dir, "model", tensors, maxShardBytes, Map.of("format", "pt"));
    }

    /** Weight files a model folder may hold; stale ones are removed when a model is written over another. */
    private static boolean isWeightFile(String name) {
        return name.startsWith("model") && (name.endsWith(".safetensors") || name.endsWith(".safetensors.index.json"))
                || name.startsWith("pytorch_model") && (name.endsWith(".bin") || name.endsWith(".bin.index.json"));
    }

    /** Moves a finished temporary folder to {@code target} (see {@link #save}). */
    private static void publish(Path tmp, Path target) throws IOException {
        if (!Files.exists(target)) {
            io.llava4j.io.Fsync.move(tmp, target);
            return;
        }
        Files.deleteIfExists(target.resolve("config.json")); // from here until the end the folder is no model
        io.llava4j.io.Fsync.directory(target);
        try (var old = Files.list(target)) {
            for (Path f : old.toList()) if (isWeightFile(f.getFileName().toString())) Files.delete(f);
        }
        List<Path> entries;
        try (var l = Files.list(tmp)) {
            entries = l.sorted().toList();
        }
        for (Path e : entries) {
            if (e.getFileName().toString().equals("config.json")) continue;
            Path dest = target.resolve(e.getFileName().toString());
            if (Files.isDirectory(dest)) deleteTree(dest);
            Files.move(e, dest, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        }
        io.llava4j.io.Fsync.directory(target); // the weights' names are durable before config.json says the model is there
        io.llava4j.io.Fsync.move(tmp.resolve("config.json"), target.resolve("config.json"));
    }

    static void deleteTree(Path p) {
        if (!Files.exists(p)) return;
        try (var walk = Files.walk(p)) {
            for (Path q : walk.sorted(java.util.Comparator.reverseOrder()).toList()) Files.deleteIfExists(q);
        } catch (IOException e) {
            throw new UncheckedIOException(p + ": cannot remove: " + e.getMessage(), e);
        }
    }

    /** Writes only {@code config.json} for the model in {@code layout} (stage 1 writes it beside the projector). */
    public static void writeConfig(Llava model, Layout layout, Path out) throws IOException {
        Files.createDirectories(out);
        LlavaConfig cfg = model.config;
        ObjectNode config = layout == Layout.ORIGINAL_LLAVA
                ? originalConfig(cfg, towerByHubName(cfg) ? cfg.raw().get("mm_vision_tower").asText()
                        : cfg.visionTowerFolder() == null ? VISION_TOWER_DIR : cfg.visionTowerFolder().toAbsolutePath().normalize().toString())
                : layout == Layout.TINYLLAVA ? tinyLlavaConfig(cfg)
                : hfConfig(cfg);
        JsonFiles.write(out.resolve("config.json"), config);
    }

    /**
     * An original checkpoint whose SigLIP tower is named by its hub id (no local folder): the tower is read from and
     * written into the checkpoint, and the config keeps the id, so that LLaVA-NeXT's layer deletion is not applied twice.
     */
    static boolean towerByHubName(LlavaConfig cfg) {
        return cfg.family() == Family.ORIGINAL_LLAVA && cfg.visionTowerFolder() == null && cfg.vision().isSiglip();
    }

    /** A CLIPVisionModel folder (config.json + model.safetensors with {@code vision_model.…}). */
    public static void saveVisionTower(Llava model, Path dir) throws IOException {
        Files.createDirectories(dir);
        Map<String, HostTensor> t = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> p : Tensors.namedParameters(model.visionTower).entrySet())
            t.put(p.getKey(), forSaving(model, "vision_tower." + p.getKey(), p.getValue()));
        Safetensors.write(dir.resolve("model.safetensors"), t, Map.of("format", "pt"));
        ObjectNode c = JSON.valueToTree(model.config.vision());
        boolean siglip = model.config.vision().isSiglip();
        if (!siglip) c.remove("vision_use_head");
        c.putArray("architectures").add(siglip ? "SiglipVisionModel" : "CLIPVisionModel");
        JsonFiles.write(dir.resolve("config.json"), c);
    }

    /** A TinyLLaVA model's config.json as it was read (TinyLLaVA is written only in its own layout). */
    static ObjectNode tinyLlavaConfig(LlavaConfig cfg) {
        if (cfg.family() != Family.TINYLLAVA)
            throw new IllegalArgumentException("converting a " + cfg.family() + " model to the TinyLLaVA layout is not supported");
        return cfg.raw().deepCopy();
    }

    static ObjectNode hfConfig(LlavaConfig cfg) {
        if (cfg.family() == Family.HF_LLAVA) return cfg.raw().deepCopy();
        if (cfg.family() == Family.TINYLLAVA)
            throw new IllegalArgumentException("converting a TinyLLaVA model to the HF layout is not supported: save it in the TINYLLAVA layout");
        if (cfg.imageTokenIndex() < 0)
            throw new IllegalArgumentException("an HF llava config needs an image token inside the vocabulary; this "
                    + cfg.family() + " model uses LLaVA's placeholder " + cfg.imageTokenIndex() + ": save it in the original layout");
        throw new IllegalArgumentException("converting a " + cfg.family() + " model to the HF layout is not supported");
    }

    static ObjectNode originalConfig(LlavaConfig cfg, String tower) {
        if (cfg.family() == Family.TINYLLAVA)
            throw new IllegalArgumentException("converting a TinyLLaVA model to the original LLaVA layout is not supported: save it in the TINYLLAVA layout");
        ObjectNode c;
        if (cfg.family() == Family.HF_LLAVA) {
            c = JSON.valueToTree(cfg.text());
            c.put("torch_dtype", cfg.raw().path("torch_dtype").asText("float32"));
        } else {
            c = cfg.raw().deepCopy();
        }
        if (cfg.family() != Family.ORIGINAL_LLAVA) { // the original model class of the LLM
            String llm = cfg.text().modelType();
            c.put("model_type", llm.equals("qwen2") ? "llava_qwen" : llm.equals("mistral") ? "llava_mistral" : "llava_llama");
            c.putArray("architectures").add(llm.equals("qwen2") ? "LlavaQwenForCausalLM"
                    : llm.equals("mistral") ? "LlavaMistralForCausalLM" : "LlavaLlamaForCausalLM");
        } else if (!c.hasNonNull("model_type")) {
            c.put("model_type", "llava_llama");
        }
        c.put("mm_vision_tower", tower);
        c.put("mm_projector_type", cfg.projectorType());
        c.put("mm_vision_select_layer", cfg.visionFeatureLayer());
        c.put("mm_vision_select_feature", "full".equals(cfg.visionFeatureSelectStrategy()) ? "cls_patch" : "patch");
        c.put("mm_hidden_size", cfg.vision().hiddenSize());
        c.put("use_mm_proj", true);
        if (cfg.anyres() != null && !c.has("image_aspect_ratio")) { // a model built from LLaVA-NeXT's flags
            c.put("image_aspect_ratio", cfg.anyres().maxN() == null ? "anyres" : "anyres_max_" + cfg.anyres().maxN());
            var pp = c.putArray("image_grid_pinpoints");
            for (int[] hw : cfg.anyres().pinpointsHW()) pp.addArray().add(hw[1]).add(hw[0]); // (w, h), as LLaVA-NeXT lists them
            c.put("mm_patch_merge_type", "spatial_unpad");
        }
        return c;
    }
}
