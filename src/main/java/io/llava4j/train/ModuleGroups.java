package io.llava4j.train;

import io.llava4j.engine.Tensors;
import io.llava4j.io.Layout;
import io.llava4j.model.Llava;
import org.bytedeco.pytorch.Tensor;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Which part of LLaVA a parameter belongs to, by its module path (never by substring search). */
public final class ModuleGroups {
    private ModuleGroups() {}

    /** The parts, in report order. */
    public static final List<String> PARTS = List.of("vision", "projector", "image_newline", "llm.embed", "llm.layers", "llm.lora",
            "llm.norm", "llm.lm_head");

    /** The part of a llava-hf parameter name. */
    public static String partOf(String name) {
        if (name.startsWith(Layout.VISION)) return "vision";
        if (name.startsWith(Layout.PROJECTOR)) return "projector";
        if (name.equals(Layout.IMAGE_NEWLINE)) return "image_newline";
        if (name.startsWith(Layout.LM_HEAD)) return "llm.lm_head";
        if (name.startsWith(Layout.LLM + "embed_tokens.")) return "llm.embed";
        if (name.startsWith(Layout.LLM + "layers.")) return isLora(name) ? "llm.lora" : "llm.layers";
        if (name.startsWith(Layout.LLM + "norm.")) return "llm.norm";
        throw new IllegalArgumentException("parameter '" + name + "' belongs to no LLaVA module");
    }

    /** Whether a parameter is a LoRA adapter's: its module is a layer's {@code lora_A} or {@code lora_B}. */
    public static boolean isLora(String name) {
        String[] p = name.split("\\.");
        return p.length >= 2 && (p[p.length - 2].equals("lora_A") || p[p.length - 2].equals("lora_B"));
    }

    /** Parameter counts of the vision tower, the projector and the LLM. */
    public static Map<String, Long> moduleCounts(Llava m) {
        Map<String, Long> out = new LinkedHashMap<>();
        out.put("vision", 0L);
        out.put("projector", 0L);
        out.put("llm", 0L);
        for (Map.Entry<String, Tensor> e : Tensors.namedParameters(m).entrySet()) {
            String part = partOf(e.getKey());
            out.merge(part.startsWith("llm.") ? "llm" : part, e.getValue().numel(), Long::sum); // image_newline: its own line
        }
        return out;
    }
}
