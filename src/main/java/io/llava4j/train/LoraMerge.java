package io.llava4j.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.llava4j.config.LlavaConfig;
import io.llava4j.engine.Tensors;
import io.llava4j.io.HostTensor;
import io.llava4j.io.Layout;
import io.llava4j.model.CheckpointException;
import io.llava4j.model.Checkpoints;
import io.llava4j.model.Llava;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * LLaVA's {@code scripts/merge_lora_weights.py} (builder.py's LoRA branch, then merge_and_unload): the base model with
 * the LoRA folder's config (a plain LLaMA base takes the CLIP tower and projector type from it), the tensors of
 * {@code non_lora_trainables.bin} (the projector), and every adapted weight replaced by W + scale·B·A (computed in
 * fp32, stored in the base tensor's dtype); written as a
 * plain model folder in the base's layout (original LLaVA for a LLaMA base) with the base's tokenizer files.
 */
public final class LoraMerge {
    private static final ObjectMapper JSON = new ObjectMapper();

    private LoraMerge() {}

    public static void merge(Path loraDir, Path base, Path out) throws IOException {
        merge(loraDir, base, out, null);
    }

    /**
     * As {@link #merge(Path, Path, Path)}, for adapters trained on a base held quantized ({@code quant}: the run's
     * {@code --bits}, QLoRA; null = none): every weight the run held quantized (the LLM's q/k/v/o/gate/up/down) is first
     * replaced by its dequantized values — the weights the adapters were trained against — then W + scale·B·A is added;
     * everything is written in the base's dtype, never in a quantized format.
     */
    public static void merge(Path loraDir, Path base, Path out, io.llava4j.nn.quant.QuantSpec quant) throws IOException {
        io.llava4j.engine.Engine.init();
        LoraFiles.Adapter adapter = LoraFiles.readAdapter(loraDir);
        Checkpoints.Loaded loaded = isPlainLlm(base) ? loadWithLoraConfig(loraDir, base) : Checkpoints.load(base);
        Llava model = loaded.model();
        Layout layout = loaded.layout() == Layout.LLAMA ? Layout.ORIGINAL_LLAVA : loaded.layout();
        int depth = model.config.projectorDepth();
        Map<String, Tensor> params = Tensors.namedParameters(model);
        Map<String, String> byKey = new LinkedHashMap<>(); // PEFT key without prefix → llava-hf name
        params.keySet().forEach(n -> byKey.put(LoraFiles.peftKey(layout, n, depth).substring(LoraFiles.PEFT_PREFIX.length()), n));

        // non_lora_trainables.bin: strict by name and shape
        Map<String, HostTensor> nonLora = LoraFiles.readNonLora(loraDir);
        List<String> unexpected = new ArrayList<>(), wrongShape = new ArrayList<>();
        boolean vision = false;
        for (Map.Entry<String, HostTensor> e : nonLora.entrySet()) {
            String n = byKey.get(e.getKey());
            if (n == null) unexpected.add(e.getKey());
            else if (!Arrays.equals(Tensors.shape(params.get(n)), e.getValue().shape()))
                wrongShape.add(e.getKey() + ": file has " + Arrays.toString(e.getValue().shape()) + ", the model " + Arrays.toString(Tensors.shape(params.get(n))));
        }
        List<String> missing = new ArrayList<>(); // a LLaMA base has no projector: the file must give all of it
        if (loaded.layout() == Layout.LLAMA)
            params.keySet().stream().filter(n -> ModuleGroups.partOf(n).equals("projector"))
                    .map(n -> LoraFiles.peftKey(layout, n, depth).substring(LoraFiles.PEFT_PREFIX.length()))
                    .filter(k -> !nonLora.containsKey(k)).forEach(missing::add);
        CheckpointException.throwIfMismatched(loraDir.resolve(LoraFiles.NON_LORA_FILE) + ": does not fit the base model " + base,
                missing, unexpected, wrongShape);
        for (Map.Entry<String, HostTensor> e : nonLora.entrySet()) {
            String n = byKey.get(e.getKey());
            Tensor p = params.get(n);
            Tensors.load(p, e.getValue(), p.scalar_type().intern());
            model.loadedFrom.remove(n);
            vision |= ModuleGroups.partOf(n).equals("vision");
        }

        Map<String, HostTensor> baseFiles = new java.util.HashMap<>(model.loadedFrom); // each base tensor's file dtype is kept
        if (quant != null) // the base as the QLoRA run saw it
            for (var e : model.languageModel.layerProjections().entrySet()) {
                String n = "language_model." + e.getKey() + ".weight";
                Tensor w = params.get(n);
                try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
                    io.llava4j.nn.quant.QuantizedWeight q = quant.quantize(w);
                    w.copy_(q.dequantize(torch.ScalarType.Float));
                }
                HostTensor file = model.loadedFrom.remove(n);
                if (file != null && Tensors.scalarType(file.dtype()) != w.scalar_type().intern())
                    try (NoGradGuard g = new NoGradGuard()) {
                        w.__dispatch_set_data(w.to(Tensors.scalarType(file.dtype()))); // a bf16 base stays bf16
                    }
            }

        // adapters: pairs lora_A / lora_B on a weight of the base
        Map<String, HostTensor[]> pairs = new LinkedHashMap<>();
        List<String> bad = new ArrayList<>();
        for (Map.Entry<String, HostTensor> e : adapter.tensors().entrySet()) {
            String k = e.getKey();
            String rest = k.startsWith(LoraFiles.PEFT_PREFIX) ? k.substring(LoraFiles.PEFT_PREFIX.length()) : null;
            int a = rest == null ? -1 : rest.lastIndexOf(".lora_A."), b = rest == null ? -1 : rest.lastIndexOf(".lora_B.");
            int at = Math.max(a, b);
            if (at < 0 || !rest.endsWith(".weight")) {
                bad.add(k);
                continue;
            }
            String weight = rest.substring(0, at) + ".weight";
            if (!byKey.containsKey(weight)) {
                bad.add(k + " (the base has no " + weight + ")");
                continue;
            }
            pairs.computeIfAbsent(weight, w -> new HostTensor[2])[a > b ? 0 : 1] = e.getValue();
        }
        pairs.forEach((w, ab) -> {
            if (ab[0] == null || ab[1] == null) bad.add(w + ": lora_" + (ab[0] == null ? "A" : "B") + " missing");
        });
        CheckpointException.throwIfMismatched(loraDir.resolve(LoraFiles.ADAPTER_FILE) + ": does not fit the base model " + base,
                List.of(), bad, List.of());
        for (Map.Entry<String, HostTensor[]> e : pairs.entrySet()) {
            String n = byKey.get(e.getKey());
            Tensor w = params.get(n);
            HostTensor file = baseFiles.get(n); // the base's tensor: its dtype is kept
            try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
                Tensor a = io.llava4j.engine.Device.place(Tensors.fromHost(e.getValue()[0]).to(torch.ScalarType.Float)); // [r, in]
                Tensor b = io.llava4j.engine.Device.place(Tensors.fromHost(e.getValue()[1]).to(torch.ScalarType.Float)); // [out, r]
                long[] want = Tensors.shape(w);
                if (b.size(0) != want[0] || a.size(1) != want[1] || a.size(0) != b.size(1))
                    throw new CheckpointException(loraDir.resolve(LoraFiles.ADAPTER_FILE) + ": " + e.getKey() + ": lora_B "
                            + Arrays.toString(Tensors.shape(b)) + " · lora_A " + Arrays.toString(Tensors.shape(a)) + " does not give " + Arrays.toString(want));
                Tensor merged = w.to(torch.ScalarType.Float).add(b.matmul(a).mul(new Scalar(adapter.scale()))); // W + scale·B·A
                w.copy_(merged.to(w.scalar_type().intern()));
                if (file != null && Tensors.scalarType(file.dtype()) != w.scalar_type().intern())
                    w.__dispatch_set_data(w.to(Tensors.scalarType(file.dtype()))); // e.g. a bf16 base stays bf16
            }
            model.loadedFrom.remove(n);
        }
        Checkpoints.save(model, layout, out, base, vision);
        System.err.printf("merged %d adapted weights (scale %s) and %d other tensors into %s%n", pairs.size(), adapter.scale(), nonLora.size(), out);
    }

    /** Whether {@code base/config.json} describes a plain LLaMA / Mistral (no vision tower of its own). */
    static boolean isPlainLlm(Path base) throws IOException {
        Path f = base.resolve("config.json");
        if (!Files.isRegularFile(f)) throw new CheckpointException(base + ": no config.json (--model_name_or_path must be the base model folder)");
        JsonNode c = JSON.readTree(f.toFile());
        String type = c.path("model_type").asText();
        return !c.has("mm_vision_tower") && (type.equals("llama") || type.equals("mistral"));
    }

    /** A plain LLaMA base with the tower and projector the LoRA folder's config.json names (LLaVA's lora_cfg_pretrained). */
    private static Checkpoints.Loaded loadWithLoraConfig(Path loraDir, Path base) {
        LlavaConfig cfg = LlavaConfig.load(loraDir, null, null);
        if (cfg.visionTowerFolder() == null)
            throw new CheckpointException(loraDir.resolve("config.json") + ": names no CLIP folder (mm_vision_tower), which a plain LLaMA base needs");
        LlavaConfig.ProjectorSpec spec = new LlavaConfig.ProjectorSpec(cfg.projectorType(), cfg.visionFeatureLayer(),
                "full".equals(cfg.visionFeatureSelectStrategy()) ? "cls_patch" : "patch");
        return Checkpoints.load(base, cfg.visionTowerFolder(), spec);
    }
}
