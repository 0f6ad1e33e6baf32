package io.llava4j.train;

import io.llava4j.engine.Tensors;
import io.llava4j.io.HostTensor;
import io.llava4j.io.Layout;
import io.llava4j.io.Safetensors;
import io.llava4j.io.TorchPickleReader;
import io.llava4j.model.CheckpointException;
import io.llava4j.model.Llava;
import org.bytedeco.pytorch.Tensor;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The stage-1 output: the projector alone under LLaVA's names ({@code model.mm_projector.{0,2}.{weight,bias}};
 * linear: {@code model.mm_projector.{weight,bias}}). Written as safetensors; read from safetensors or from LLaVA's
 * {@code mm_projector.bin} (a torch zip read without executing pickle code), with any key prefix, strictly.
 */
public final class ProjectorFiles {
    public static final String FILE = "mm_projector.safetensors";

    private ProjectorFiles() {}

    public static Map<String, HostTensor> tensors(Llava model) {
        Map<String, HostTensor> out = new LinkedHashMap<>();
        int depth = model.config.projectorDepth();
        Tensors.namedParameters(model.projector).forEach((n, t) ->
                out.put(Layout.originalProjectorName(Layout.PROJECTOR + n, depth), Tensors.hostView(t)));
        return out;
    }

    public static void write(Llava model, Path file) throws IOException {
        Safetensors.write(file, tensors(model), Map.of("format", "pt", "mm_projector_type", model.config.projectorType()));
    }

    /** Loads a projector file into {@code model}'s projector; every missing, unexpected or mis-shaped key is an error. */
    public static void load(Llava model, Path file) {
        Map<String, HostTensor> raw;
        try {
            raw = TorchPickleReader.isTorchZip(file) ? TorchPickleReader.read(file) : Safetensors.read(file).tensors();
        } catch (IOException e) {
            throw new CheckpointException(file + ": cannot read the projector: " + e.getMessage(), e);
        }
        int depth = model.config.projectorDepth();
        Map<String, Tensor> want = new LinkedHashMap<>();
        Tensors.namedParameters(model.projector).forEach((n, t) -> want.put(Layout.PROJECTOR + n, t));
        Map<Tensor, HostTensor> plan = new LinkedHashMap<>();
        List<String> unexpected = new ArrayList<>(), wrongShape = new ArrayList<>();
        java.util.Set<Tensor> seen = new java.util.HashSet<>();
        for (Map.Entry<String, HostTensor> e : raw.entrySet()) {
            String name = Layout.projectorNameFromFile(e.getKey(), depth);
            Tensor p = name == null ? null : want.get(name);
            if (p == null) {
                unexpected.add(e.getKey());
                continue;
            }
            seen.add(p);
            if (!Arrays.equals(Tensors.shape(p), e.getValue().shape()))
                wrongShape.add(e.getKey() + ": file has " + Arrays.toString(e.getValue().shape()) + ", the "
                        + model.config.projectorType() + " projector expects " + Arrays.toString(Tensors.shape(p)));
            else if (plan.put(p, e.getValue()) != null)
                unexpected.add(e.getKey() + " (a second tensor for " + name + ")");
        }
        List<String> missing = new ArrayList<>();
        want.forEach((n, p) -> {
            if (!seen.contains(p)) missing.add(Layout.originalProjectorName(n, depth));
        });
        CheckpointException.throwIfMismatched(file + ": does not fit the model's " + model.config.projectorType() + " projector",
                missing, unexpected, wrongShape);
        plan.forEach((p, h) -> Tensors.load(p, h, p.scalar_type().intern()));
        want.keySet().forEach(model.loadedFrom::remove); // no longer the base model's values
    }
}
