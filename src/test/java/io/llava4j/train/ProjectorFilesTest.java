package io.llava4j.train;

import io.llava4j.TestData;
import io.llava4j.engine.Tensors;
import io.llava4j.io.HostTensor;
import io.llava4j.io.Safetensors;
import io.llava4j.model.CheckpointException;
import io.llava4j.model.Checkpoints;
import io.llava4j.model.Llava;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** --pretrain_mm_mlp_adapter: our safetensors and LLaVA's mm_projector.bin, any prefix, strictly. */
class ProjectorFilesTest {
    static Path resource(String p) throws URISyntaxException {
        return Path.of(ProjectorFilesTest.class.getResource(p).toURI());
    }

    static Map<String, Tensor> projector(Llava m) {
        return Tensors.namedParameters(m.projector);
    }

    @Test
    void binWithPrefixEqualsSafetensors() throws Exception {
        Llava a = Checkpoints.load(TestData.tinyLlava()).model(), b = Checkpoints.load(TestData.tinyLlava()).model();
        ProjectorFiles.load(a, TestData.expected().resolve("stage1/mm_projector.safetensors"));
        ProjectorFiles.load(b, resource("/projector/mm_projector.bin")); // keys module.model.mm_projector.*
        Map<String, HostTensor> ref = TestData.tensors(TestData.expected().resolve("stage1/mm_projector.safetensors"));
        for (String n : projector(a).keySet()) {
            assertTrue(projector(a).get(n).equal(projector(b).get(n)), n);
        }
        assertTrue(projector(a).get("linear_1.weight").equal(Tensors.fromHost(ref.get("model.mm_projector.0.weight"))));
    }

    @Test
    void writtenFileHasLlavasKeysAndRoundTrips(@TempDir Path tmp) throws Exception {
        Llava m = Checkpoints.load(TestData.tinyLlava()).model();
        Path f = tmp.resolve("mm_projector.safetensors");
        ProjectorFiles.write(m, f);
        assertEquals(java.util.Set.of("model.mm_projector.0.weight", "model.mm_projector.0.bias", "model.mm_projector.2.weight",
                "model.mm_projector.2.bias"), Safetensors.read(f).tensors().keySet());
        Llava other = Checkpoints.load(TestData.tinyLlava()).model();
        ProjectorFiles.load(other, f);
        for (String n : projector(m).keySet()) assertTrue(projector(m).get(n).equal(projector(other).get(n)), n);
        // LLaVA's finetune.sh reads mm_projector.bin: written beside it in torch.save format, with the same tensors
        Path bin = tmp.resolve(ProjectorFiles.BIN_FILE);
        assertEquals(Safetensors.read(f).tensors().keySet(), io.llava4j.io.TorchPickleReader.read(bin).keySet());
        Llava third = Checkpoints.load(TestData.tinyLlava()).model();
        ProjectorFiles.load(third, bin);
        for (String n : projector(m).keySet()) assertTrue(projector(m).get(n).equal(projector(third).get(n)), n);
    }

    @Test
    void strictAboutMissingExtraAndMisshapenKeys(@TempDir Path tmp) throws Exception {
        Llava m = Checkpoints.load(TestData.tinyLlava()).model();
        Map<String, HostTensor> t = new LinkedHashMap<>(ProjectorFiles.tensors(m));
        t.remove("model.mm_projector.2.bias");
        t.put("model.mm_projector.4.weight", HostTensor.ofFloats(new long[]{1}, new float[]{0}));
        t.put("model.mm_projector.0.bias", HostTensor.ofFloats(new long[]{3}, new float[]{0, 0, 0}));
        Path f = tmp.resolve("bad.safetensors");
        Safetensors.write(f, t, Map.of());
        CheckpointException e = assertThrows(CheckpointException.class, () -> ProjectorFiles.load(m, f));
        String msg = e.getMessage();
        assertTrue(msg.contains(f.toString()), msg);
        assertTrue(msg.contains("missing tensors: [model.mm_projector.2.bias]"), msg);
        assertTrue(msg.contains("model.mm_projector.4.weight"), msg);
        assertTrue(msg.contains("model.mm_projector.0.bias: file has [3]"), msg);
        assertFalse(msg.contains("missing tensors: [model.mm_projector.0.bias"), msg);
    }
}
