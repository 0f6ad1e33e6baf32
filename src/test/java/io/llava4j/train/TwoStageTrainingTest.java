package io.llava4j.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.llava4j.TestData;
import io.llava4j.cli.TrainCommand;
import io.llava4j.engine.Tensors;
import io.llava4j.io.HostTensor;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** LLaVA's two stages on the reference data, through the CLI's flags, against llava_ref.py's runs. */
class TwoStageTrainingTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final Path REF = TestData.reference();

    static List<String> common(Path out) {
        return new ArrayList<>(List.of("--model_name_or_path", TestData.tinyLlava().toString(),
                "--image_folder", TestData.tinyData().resolve("images").toString(), "--per_device_train_batch_size", "2",
                "--learning_rate", "1e-3", "--lr_scheduler_type", "constant", "--warmup_ratio", "0", "--weight_decay", "0",
                "--max_grad_norm", "0", "--logging_steps", "1", "--output_dir", out.toString()));
    }

    static List<String> stage1Flags(Path out) {
        List<String> f = common(out);
        f.addAll(List.of("--version", "plain", "--data_path", TestData.tinyData().resolve("pretrain.json").toString(),
                "--tune_mm_mlp_adapter", "True", "--max_steps", "3"));
        return f;
    }

    /** ‖got − want‖ / ‖want − before‖: error relative to the reference's update. */
    static double updateError(HostTensor got, HostTensor want, HostTensor before) {
        Tensor g = Tensors.fromHost(got), w = Tensors.fromHost(want), b = Tensors.fromHost(before);
        return g.sub(w).norm().item_double() / w.sub(b).norm().item_double();
    }

    static void assertLosses(JsonNode reference, List<Double> got) {
        JsonNode want = reference.get("losses");
        assertEquals(want.size(), got.size());
        for (int i = 0; i < got.size(); i++)
            assertEquals(want.get(i).asDouble(), got.get(i), 1e-4 * Math.abs(want.get(i).asDouble()), "loss of step " + (i + 1));
    }

    @Test
    void stage1TrainsOnlyTheProjectorAndMatchesReference(@TempDir Path out) throws Exception {
        Trainer t = TrainRuns.run(stage1Flags(out));
        JsonNode ref = JSON.readTree(REF.resolve("expected/stage1/reference.json").toFile());
        assertLosses(ref, t.losses());

        Map<String, HostTensor> before = TestData.tensors(TestData.tinyLlava().resolve("model.safetensors"));
        Map<String, HostTensor> got = TestData.tensors(out.resolve("mm_projector.safetensors"));
        Map<String, HostTensor> want = TestData.tensors(REF.resolve("expected/stage1/mm_projector.safetensors"));
        assertEquals(want.keySet(), got.keySet(), "LLaVA's projector keys");
        for (String k : want.keySet()) {
            String hf = io.llava4j.io.Layout.projectorNameFromFile(k, 2);
            double e = updateError(got.get(k), want.get(k), before.get(hf));
            assertTrue(e < 1e-3, k + ": update error " + e);
        }
        assertTrue(Files.isRegularFile(out.resolve("config.json")));

        // frozen: bit-identical, no gradient; the optimizer holds state for the projector's tensors only
        for (Map.Entry<String, Tensor> e : t.parameters().entrySet()) {
            boolean projector = e.getKey().startsWith("multi_modal_projector.");
            assertEquals(projector, e.getValue().requires_grad(), e.getKey());
            if (projector) continue;
            assertFalse(e.getValue().grad().defined(), e.getKey() + " has a gradient");
            assertTrue(e.getValue().equal(Tensors.fromHost(before.get(e.getKey()))), e.getKey() + " changed");
        }
        List<String> projectorNames = t.parameters().keySet().stream().filter(n -> n.startsWith("multi_modal_projector.")).toList();
        assertEquals(new java.util.HashSet<>(projectorNames), t.optimizer().state().keySet());
        assertEquals(3, t.optimizer().state().values().iterator().next().step);
        assertEquals(new TrainReport(t.model(), t.plan()).total().optimizerBytes(), t.optimizer().stateBytes());

        List<String> log = Files.readAllLines(out.resolve("log.jsonl"));
        assertEquals(3, log.size());
        JsonNode last = JSON.readTree(log.get(2));
        for (String f : List.of("step", "loss", "lr", "grad_norm", "tokens_per_s")) assertTrue(last.has(f), f);
    }

    @Test
    void stage2FromStage1ProjectorMatchesReference(@TempDir Path tmp) throws Exception {
        Path s1 = tmp.resolve("s1"), s2 = tmp.resolve("s2");
        List<String> cli = new ArrayList<>(List.of("train"));
        cli.addAll(stage1Flags(s1));
        assertEquals(0, io.llava4j.cli.Main.run(cli.toArray(new String[0])), "stage 1 through the command line");
        List<String> f = common(s2);
        f.addAll(List.of("--version", "v1", "--data_path", TestData.tinyData().resolve("finetune.json").toString(),
                "--pretrain_mm_mlp_adapter", s1.resolve("mm_projector.safetensors").toString(), "--max_steps", "2"));
        Trainer t = TrainRuns.run(f);
        assertLosses(JSON.readTree(REF.resolve("expected/stage2/reference.json").toFile()), t.losses());

        Map<String, HostTensor> input = TestData.tensors(TestData.tinyLlava().resolve("model.safetensors"));
        Map<String, HostTensor> stage1 = TestData.tensors(REF.resolve("expected/stage1/mm_projector.safetensors"));
        Map<String, HostTensor> want = TestData.tensors(REF.resolve("expected/stage2/model.safetensors"));
        Map<String, HostTensor> got = TestData.tensors(s2.resolve("model.safetensors"));
        assertEquals(want.keySet(), got.keySet(), "full model in the input's (llava-hf) names");
        for (String k : want.keySet()) {
            if (k.startsWith("vision_tower.")) {
                assertArrayEquals(input.get(k).toFloats(), got.get(k).toFloats(), 0f, k + " must be bit-identical");
                continue;
            }
            HostTensor before = k.startsWith("multi_modal_projector.")
                    ? stage1.get(io.llava4j.io.Layout.originalProjectorName(k, 2)) : input.get(k);
            double e = updateError(got.get(k), want.get(k), before);
            assertTrue(e < 1e-3, k + ": update error " + e);
        }
        // the written folder is a model llava4j loads again
        assertEquals(io.llava4j.io.Layout.LLAVA_HF, io.llava4j.model.Checkpoints.load(s2).layout());
        assertTrue(Files.isRegularFile(s2.resolve("tokenizer.json")));
    }
}
