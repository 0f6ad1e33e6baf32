package io.llava4j.train;

import io.llava4j.engine.Tensors;
import io.llava4j.model.Llava;
import org.bytedeco.pytorch.Tensor;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What trains, per part of LLaVA: trainable and frozen parameter counts and the optimizer state AdamW will hold
 * (two fp32 moments per trainable value). Counted from the model's tensors and the plan.
 */
public final class TrainReport {
    public record Row(long trainable, long frozen, long optimizerBytes) {}

    private final Map<String, Row> rows = new LinkedHashMap<>();
    private final long weightBytes; // the parameters as stored (half-precision frozen weights count 2 bytes a value)

    public TrainReport(Llava model, FreezePlan plan) {
        long held = Tensors.parameterBytes(model);
        if (model.quantized != null) { // quantized weights hold codes and scales, not their parameters' storage
            Map<String, Tensor> params = Tensors.namedParameters(model);
            for (String n : model.quantized.names()) held -= params.get(n).numel() * params.get(n).element_size();
            held += model.quantized.bytes();
        }
        weightBytes = held;
        for (String part : ModuleGroups.PARTS) rows.put(part, new Row(0, 0, 0));
        for (Map.Entry<String, Tensor> e : Tensors.namedParameters(model).entrySet()) {
            String part = ModuleGroups.partOf(e.getKey());
            long n = e.getValue().numel();
            boolean on = plan.trains(e.getKey());
            Row r = rows.get(part);
            rows.put(part, new Row(r.trainable + (on ? n : 0), r.frozen + (on ? 0 : n),
                    r.optimizerBytes + (on ? 2 * n * e.getValue().element_size() : 0)));
        }
    }

    public Map<String, Row> rows() {
        return rows;
    }

    public Row total() {
        long t = 0, f = 0, b = 0;
        for (Row r : rows.values()) {
            t += r.trainable;
            f += r.frozen;
            b += r.optimizerBytes;
        }
        return new Row(t, f, b);
    }

    public String render() {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format("%-12s %15s %15s %15s%n", "module", "trainable", "frozen", "optimizer state"));
        rows.forEach((part, r) -> {
            if (!part.equals("llm.lora") || r.trainable + r.frozen > 0) sb.append(line(part, r)); // the adapters' row when there are any
        });
        sb.append(line("total", total()));
        Row t = total();
        sb.append(String.format("trainable: %.4f%% of %,d parameters; weights in memory: %s%n",
                100.0 * t.trainable / Math.max(1, t.trainable + t.frozen), t.trainable + t.frozen, bytes(weightBytes)));
        return sb.toString();
    }

    /** Bytes a plan costs: parameters as held (trainable ones as fp32 master weights), fp32 gradients, AdamW's two fp32 moments. */
    public record Bytes(long parameters, long gradients, long optimizer) {}

    public static Bytes bytes(Llava model, FreezePlan plan) {
        long p = 0, g = 0;
        for (Map.Entry<String, Tensor> e : Tensors.namedParameters(model).entrySet()) {
            long n = e.getValue().numel();
            if (plan.trains(e.getKey())) {
                p += 4 * n;
                g += 4 * n;
            } else p += n * e.getValue().element_size();
        }
        return new Bytes(p, g, 2 * g);
    }

    /** Every step of a stage where trainability changes, with its tensors, parameters and bytes. */
    public static String renderSchedule(Llava model, FreezeSchedule s) {
        Map<String, Tensor> params = Tensors.namedParameters(model);
        StringBuilder sb = new StringBuilder();
        sb.append(String.format("%-8s %8s %15s %12s %12s %15s  %s%n", "step", "tensors", "trainable", "parameters", "gradients",
                "optimizer state", "newly trainable"));
        FreezePlan before = null;
        for (int step : s.changeSteps()) {
            FreezePlan p = s.at(step);
            long n = 0;
            for (String t : p.trainable()) n += params.get(t).numel();
            Bytes b = bytes(model, p);
            FreezePlan prev = before;
            List<String> added = p.trainable().stream().filter(t -> prev == null || !prev.trains(t)).toList();
            sb.append(String.format("%-8d %8d %,15d %12s %12s %15s  %s%n", step, p.trainable().size(), n, bytes(b.parameters()),
                    bytes(b.gradients()), bytes(b.optimizer()), summary(added)));
            before = p;
        }
        return sb.toString();
    }

    /** "llm.layers 2..3, llm.norm" style: the parts of {@code names}, with layer ranges. */
    private static String summary(List<String> names) {
        Map<String, java.util.TreeSet<Integer>> parts = new LinkedHashMap<>();
        for (String n : names) {
            String part = ModuleGroups.partOf(n);
            int i = FreezeSchedule.layerIndex(n, part.equals("vision") ? "vision" : "llm");
            String key = part.equals("vision") && i >= 0 ? "vision.layers" : part;
            parts.computeIfAbsent(key, k -> new java.util.TreeSet<>());
            if (i >= 0) parts.get(key).add(i);
        }
        List<String> out = new java.util.ArrayList<>();
        parts.forEach((part, layers) -> out.add(layers.isEmpty() ? part
                : part + " " + layers.first() + (layers.size() > 1 ? ".." + layers.last() : "")));
        return String.join(", ", out);
    }

    private static String line(String name, Row r) {
        return String.format("%-12s %,15d %,15d %15s%n", name, r.trainable, r.frozen, bytes(r.optimizerBytes));
    }

    static String bytes(long b) {
        if (b < 1024) return b + " B";
        if (b < 1 << 20) return String.format("%.1f KiB", b / 1024.0);
        if (b < 1 << 30) return String.format("%.1f MiB", b / 1048576.0);
        return String.format("%.2f GiB", b / 1073741824.0);
    }
}
