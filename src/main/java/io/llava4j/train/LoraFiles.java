package io.llava4j.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.engine.Tensors;
import io.llava4j.io.HostTensor;
import io.llava4j.io.JsonFiles;
import io.llava4j.io.Layout;
import io.llava4j.io.Safetensors;
import io.llava4j.io.TorchPickleReader;
import io.llava4j.io.TorchZipWriter;
import io.llava4j.model.CheckpointException;
import io.llava4j.model.Checkpoints;
import io.llava4j.model.Llava;
import org.bytedeco.pytorch.Tensor;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * A LoRA run's output as LLaVA writes it (train.py with {@code --lora_enable True}): {@code config.json} (the model's),
 * PEFT's {@code adapter_config.json} and {@code adapter_model.safetensors} (keys
 * {@code base_model.model.<module path>.lora_A.weight} / {@code lora_B.weight}, module paths as the layout names them,
 * e.g. {@code base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight} for original LLaVA), and
 * {@code non_lora_trainables.bin} (torch.save of every trainable tensor that is not an adapter's — the projector — under
 * {@code base_model.model.<name>}).
 *
 * <p>{@code target_modules} is written as a regular expression over module paths (PEFT full-matches a string
 * {@code target_modules} against each module's path), so PEFT puts adapters exactly where this run had them; LLaVA's
 * list of suffixes would also adapt CLIP's {@code q_proj}/{@code k_proj}/{@code v_proj}.
 */
public final class LoraFiles {
    public static final String CONFIG_FILE = "adapter_config.json";
    public static final String ADAPTER_FILE = "adapter_model.safetensors";
    public static final String ADAPTER_BIN_FILE = "adapter_model.bin";
    public static final String NON_LORA_FILE = "non_lora_trainables.bin";
    /** PEFT's prefix: PeftModel.base_model (LoraModel) .model (the wrapped model). */
    public static final String PEFT_PREFIX = "base_model.model.";
    private static final ObjectMapper JSON = new ObjectMapper();

    private LoraFiles() {}

    /** The name PEFT / LLaVA give the llava-hf tensor {@code name} of a model saved in {@code layout}. */
    public static String peftKey(Layout layout, String name, int projectorDepth) {
        String f = layout.fileName(name, projectorDepth);
        if (layout.source(name) == Layout.Source.VISION_FOLDER) f = Layout.ORIGINAL_VISION_IN_CHECKPOINT + f;
        return PEFT_PREFIX + f;
    }

    /** PEFT's {@code target_modules} as a regular expression full-matching the adapted module paths of {@code layout}. */
    static String targetRegex(Layout layout, LoraSpec spec, int projectorDepth) {
        String probe = layout.fileName(Layout.LLM + "layers.0.mlp.up_proj.weight", projectorDepth);
        String prefix = probe.substring(0, probe.indexOf("layers.0.") + "layers.".length());
        return prefix.replace(".", "\\.") + "\\d+\\.(self_attn|mlp)\\.(" + String.join("|", spec.targets()) + ")";
    }

    /** Writes the run's output folder (see the class comment); {@code base}: {@code --model_name_or_path}. */
    public static void write(Llava model, FreezePlan plan, LoraSpec spec, Layout layout, Path out, Path base) throws IOException {
        Files.createDirectories(out);
        int depth = model.config.projectorDepth();
        Map<String, Tensor> params = Tensors.namedParameters(model);
        Map<String, HostTensor> lora = new LinkedHashMap<>(), other = new LinkedHashMap<>();
        // as LLaVA's get_peft_state_maybe_zero_3 (bias none): every adapter tensor, trained or not; and
        // get_peft_state_non_lora_maybe_zero_3: the other tensors that trained
        params.forEach((n, p) -> {
            if (ModuleGroups.isLora(n)) lora.put(peftKey(layout, n, depth), Tensors.hostView(p));
        });
        for (String n : plan.trainable())
            if (!ModuleGroups.isLora(n)) other.put(peftKey(layout, n, depth), Tensors.hostView(params.get(n)));
        Safetensors.write(out.resolve(ADAPTER_FILE), lora, Map.of("format", "pt"));
        TorchZipWriter.write(out.resolve(NON_LORA_FILE), other);
        ObjectNode c = JSON.createObjectNode();
        c.put("peft_type", "LORA");
        c.put("task_type", "CAUSAL_LM");
        c.put("base_model_name_or_path", base.toAbsolutePath().normalize().toString());
        c.put("r", spec.r());
        if (spec.alpha() == Math.rint(spec.alpha())) c.put("lora_alpha", (long) spec.alpha());
        else c.put("lora_alpha", spec.alpha());
        c.put("lora_dropout", spec.dropout());
        c.put("target_modules", targetRegex(layout, spec, depth));
        c.put("bias", "none");
        c.put("fan_in_fan_out", false);
        c.put("inference_mode", true);
        c.put("init_lora_weights", true);
        c.put("use_rslora", false);
        c.putNull("modules_to_save");
        JsonFiles.write(out.resolve(CONFIG_FILE), c);
        Checkpoints.writeConfig(model, layout, out);
    }

    /** A PEFT LoRA adapter as read: its rank, PEFT's scaling, and its tensors by PEFT key. */
    public record Adapter(int r, double alpha, double scale, Map<String, HostTensor> tensors) {}

    /**
     * Reads {@code dir}'s adapter_config.json and adapter_model.safetensors (or .bin). Refuses what this merge and
     * training do not implement: another peft_type, DoRA, fan_in_fan_out, LoRA biases, per-module ranks.
     */
    public static Adapter readAdapter(Path dir) {
        Path cfgFile = dir.resolve(CONFIG_FILE);
        if (!Files.isRegularFile(cfgFile))
            throw new CheckpointException(dir + ": no " + CONFIG_FILE + " (not a LoRA output folder)");
        JsonNode c;
        try {
            c = JSON.readTree(cfgFile.toFile());
        } catch (IOException e) {
            throw new CheckpointException(cfgFile + ": cannot read: " + e.getMessage(), e);
        }
        String where = cfgFile.toString();
        if (!"LORA".equals(c.path("peft_type").asText()))
            throw new CheckpointException(where + ": field 'peft_type' is '" + c.path("peft_type").asText() + "', expected LORA");
        if (!c.path("r").canConvertToInt() || c.path("r").asInt() < 1) throw new CheckpointException(where + ": field 'r' must be a positive integer");
        if (!c.path("lora_alpha").isNumber()) throw new CheckpointException(where + ": field 'lora_alpha' must be a number");
        if (c.path("use_dora").asBoolean(false)) throw new CheckpointException(where + ": 'use_dora' true (DoRA) is not supported");
        if (c.path("fan_in_fan_out").asBoolean(false)) throw new CheckpointException(where + ": 'fan_in_fan_out' true is not supported");
        if (!c.path("bias").asText("none").equals("none"))
            throw new CheckpointException(where + ": field 'bias' is '" + c.path("bias").asText() + "'; only none is supported (LLaVA's --lora_bias none)");
        for (String f : new String[]{"rank_pattern", "alpha_pattern"})
            if (c.path(f).isObject() && !c.path(f).isEmpty())
                throw new CheckpointException(where + ": field '" + f + "' (per-module ranks) is not supported");
        int r = c.get("r").asInt();
        double alpha = c.get("lora_alpha").asDouble();
        double scale = c.path("use_rslora").asBoolean(false) ? alpha / Math.sqrt(r) : alpha / r;
        Path st = dir.resolve(ADAPTER_FILE), bin = dir.resolve(ADAPTER_BIN_FILE);
        Map<String, HostTensor> t;
        try {
            if (Files.isRegularFile(st)) t = Safetensors.read(st).tensors();
            else if (Files.isRegularFile(bin)) t = TorchPickleReader.read(bin);
            else throw new CheckpointException(dir + ": no " + ADAPTER_FILE + " or " + ADAPTER_BIN_FILE);
        } catch (IOException e) {
            throw new CheckpointException(dir + ": cannot read the adapter weights: " + e.getMessage(), e);
        }
        return new Adapter(r, alpha, scale, t);
    }

    /** {@code dir/non_lora_trainables.bin} by key without PEFT's prefix (empty when the file is absent). */
    public static Map<String, HostTensor> readNonLora(Path dir) {
        Path f = dir.resolve(NON_LORA_FILE);
        if (!Files.isRegularFile(f)) return Map.of();
        try {
            return TorchPickleReader.read(f).entrySet().stream().collect(Collectors.toMap(
                    e -> e.getKey().startsWith(PEFT_PREFIX) ? e.getKey().substring(PEFT_PREFIX.length()) : e.getKey(),
                    Map.Entry::getValue, (x, y) -> x, LinkedHashMap::new));
        } catch (IOException e) {
            throw new CheckpointException(f + ": cannot read: " + e.getMessage(), e);
        }
    }
}
