package io.llava4j;

import io.llava4j.engine.Tensors;
import io.llava4j.io.HostTensor;
import io.llava4j.io.Safetensors;
import io.llava4j.model.Checkpoints;
import io.llava4j.model.Llava;
import io.llava4j.nn.Precision;
import io.llava4j.nn.quant.QuantSpec;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Models for the quantization tests: the tiny reference model with its quantized weights replaced by their dequantized values. */
public final class QuantFixtures {
    private QuantFixtures() {}

    /** A copy of the tiny model in {@code dir} whose LLM projections hold the fp32 values {@code spec} dequantizes to. */
    public static Path dequantizedCopy(Path dir, QuantSpec spec) throws Exception {
        Files.createDirectories(dir);
        Path src = TestData.tinyLlava();
        try (var l = Files.list(src)) {
            for (Path f : l.toList()) if (!f.getFileName().toString().equals("model.safetensors")) Files.copy(f, dir.resolve(f.getFileName()));
        }
        Llava m = Checkpoints.load(src, null, null, Precision.FP32, spec).model();
        Map<String, HostTensor> tensors = new LinkedHashMap<>(TestData.tensors(src.resolve("model.safetensors")));
        List<Tensor> keep = new ArrayList<>(); // the views below read these
        m.languageModel.layerProjections().forEach((path, lin) -> {
            Tensor d = lin.quantized().weight.dequantize(ScalarType.Float);
            keep.add(d);
            String name = "language_model." + path + ".weight";
            if (!tensors.containsKey(name)) throw new IllegalStateException(name + " not in the tiny model's file");
            tensors.put(name, Tensors.hostView(d));
        });
        Safetensors.write(dir.resolve("model.safetensors"), tensors, Map.of("format", "pt"));
        return dir;
    }
}
