package io.llava4j.train;

import io.llava4j.engine.Tensors;
import io.llava4j.io.HostTensor;
import io.llava4j.io.Layout;
import io.llava4j.model.CheckpointException;
import io.llava4j.model.Llava;
import io.llava4j.nn.Linear;
import org.bytedeco.pytorch.Tensor;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Puts LoRA adapters on the LLM, as LLaVA's {@code --lora_enable} does through PEFT, but matched by module path: only
 * {@code language_model.model.layers.N.self_attn.{q,k,v,o}_proj} and {@code ….mlp.{gate,up,down}_proj} whose last
 * name is a target qualify. (PEFT matches {@code target_modules} by name suffix, so LLaVA's {@code q_proj} also hits
 * CLIP's attention; here the vision tower and the projector never get an adapter.) What trains is then decided by the
 * {@link FreezePlan}.
 */
public final class LoraAdapters {
    private LoraAdapters() {}

    /** The LLM's decoder-layer projections by llava-hf module path. */
    static Map<String, Linear> projections(Llava model) {
        Map<String, Linear> out = new LinkedHashMap<>();
        model.languageModel.layerProjections().forEach((path, l) -> out.put("language_model." + path, l));
        return out;
    }

    /**
     * Attaches an adapter to every targeted projection (A from torch's global generator, B zero), then, when the spec
     * names an initial adapter folder, loads its values strictly. Returns the adapted module paths.
     *
     * @param layout the layout the adapter files of this run use (for {@code spec.init()}'s key names)
     */
    public static List<String> attach(Llava model, LoraSpec spec, Layout layout) {
        List<String> paths = new ArrayList<>();
        long index = 0;
        for (Map.Entry<String, Linear> e : projections(model).entrySet()) {
            String path = e.getKey();
            if (!spec.targets().contains(path.substring(path.lastIndexOf('.') + 1))) continue;
            e.getValue().attachLora(spec.r(), spec.alpha(), spec.dropout(), index++);
            paths.add(path);
        }
        if (spec.init() != null) load(model, spec, layout, spec.init());
        return paths;
    }

    /** The adapters' parameters (llava-hf names, {@code ….lora_A.weight} / {@code ….lora_B.weight}), in model order. */
    public static Map<String, Tensor> parameters(Llava model) {
        Map<String, Tensor> out = new LinkedHashMap<>();
        Tensors.namedParameters(model).forEach((n, t) -> {
            if (ModuleGroups.isLora(n)) out.put(n, t);
        });
        return out;
    }

    /** Loads a PEFT adapter folder's tensors into the attached adapters; a missing, unexpected or mis-shaped key is an error. */
    static void load(Llava model, LoraSpec spec, Layout layout, Path dir) {
        LoraFiles.Adapter a = LoraFiles.readAdapter(dir);
        if (a.r() != spec.r())
            throw new CheckpointException(dir + ": adapter_config.json has r " + a.r() + ", this run --lora_r " + spec.r());
        Map<String, Tensor> params = parameters(model);
        int depth = model.config.projectorDepth();
        Map<String, HostTensor> left = new LinkedHashMap<>(a.tensors());
        List<String> missing = new ArrayList<>(), wrongShape = new ArrayList<>();
        Map<Tensor, HostTensor> plan = new LinkedHashMap<>();
        params.forEach((n, p) -> {
            String key = LoraFiles.peftKey(layout, n, depth);
            HostTensor h = left.remove(key);
            if (h == null) missing.add(key);
            else if (!java.util.Arrays.equals(h.shape(), Tensors.shape(p)))
                wrongShape.add(key + ": file has " + java.util.Arrays.toString(h.shape()) + ", the adapter is " + java.util.Arrays.toString(Tensors.shape(p)));
            else plan.put(p, h);
        });
        CheckpointException.throwIfMismatched(dir.resolve(LoraFiles.ADAPTER_FILE) + ": does not fit this run's LoRA adapters",
                missing, new ArrayList<>(left.keySet()), wrongShape);
        plan.forEach((p, h) -> Tensors.load(p, h, p.scalar_type().intern()));
    }
}
