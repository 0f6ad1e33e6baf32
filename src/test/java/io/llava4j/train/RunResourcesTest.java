package io.llava4j.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.TestData;
import io.llava4j.cli.TrainCommand;
import io.llava4j.config.LlavaConfig;
import io.llava4j.engine.Tensors;
import io.llava4j.model.Checkpoints;
import io.llava4j.model.Llava;
import io.llava4j.nn.Precision;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** A run's memory and disk needs from config.json alone, checked against the models as built. */
class RunResourcesTest {

    @Test
    void parameterCountsFromTheConfigAreTheModelsCounts() {
        for (Path folder : List.of(TestData.tinyLlava(), TestData.gqa().resolve("model"), TestData.onevision().resolve("tiny-onevision"),
                TestData.onevisionSecond().resolve("model"))) {
            LlavaConfig cfg = LlavaConfig.load(folder, null, null);
            Llava m = Checkpoints.load(folder).model();
            Map<String, long[]> built = new LinkedHashMap<>();
            for (String p : ModuleGroups.PARTS) built.put(p, new long[2]);
            for (Map.Entry<String, Tensor> e : Tensors.namedParameters(m).entrySet())
                built.get(ModuleGroups.partOf(e.getKey()))[e.getValue().dim() >= 2 ? 0 : 1] += e.getValue().numel();
            Map<String, RunResources.Count> computed = RunResources.parameters(cfg);
            for (String p : ModuleGroups.PARTS) {
                assertEquals(built.get(p)[0], computed.get(p).matrices(), folder + " " + p + " matrices");
                assertEquals(built.get(p)[1], computed.get(p).vectors(), folder + " " + p + " vectors");
            }
        }
    }

    /** LoRA: the adapters' counts from the config equal the attached adapters', and only they and the projector train. */
    @Test
    void loraAdaptersCountedFromTheConfigTrainAlone() {
        Path folder = TestData.gqa().resolve("model"); // grouped-query attention: k/v narrower than q
        LlavaConfig cfg = LlavaConfig.load(folder, null, null);
        LoraSpec spec = new LoraSpec(4, 8, 0, List.of("q_proj", "k_proj", "o_proj", "down_proj"), null);
        Checkpoints.Loaded loaded = Checkpoints.load(folder, null, null, Precision.FP32);
        LoraAdapters.attach(loaded.model(), spec, loaded.layout());
        long built = 0;
        for (Map.Entry<String, Tensor> e : Tensors.namedParameters(loaded.model()).entrySet())
            if (ModuleGroups.partOf(e.getKey()).equals("llm.lora")) built += e.getValue().numel();
        Map<String, RunResources.Count> computed = RunResources.parameters(cfg, spec);
        assertTrue(built > 0);
        assertEquals(built, computed.get("llm.lora").total());
        RunResources.Needs n = RunResources.needs(cfg, FreezePlan.Flags.STAGE2, spec, Precision.BF16, 10, 0, null);
        assertEquals(built + computed.get("projector").total(), n.trainableParams(), "the base LLM is frozen under LoRA");
        assertEquals(4 * n.trainableParams(), n.output(), "LoRA writes the adapters and the other trainables, not the base");
        RunResources.Needs full = RunResources.needs(cfg, FreezePlan.Flags.STAGE2, null, Precision.BF16, 10, 0, null);
        assertTrue(full.trainableParams() > 10 * n.trainableParams(), "without LoRA the LLM trains");
    }

    @Test
    void weightBytesAtBf16AreWhatLoadingTakes() {
        Path folder = TestData.tinyLlava();
        LlavaConfig cfg = LlavaConfig.load(folder, null, null);
        // stage 1 trains only the projector, which loads in fp32 anyway: the weights are exactly the loaded model's
        RunResources.Needs n = RunResources.needs(cfg, FreezePlan.Flags.STAGE1, null, Precision.BF16, 10, 0, null);
        assertEquals(Tensors.parameterBytes(Checkpoints.load(folder, null, null, Precision.BF16).model()), n.weights());
        long projector = RunResources.parameters(cfg).get("projector").total();
        assertEquals(projector, n.trainableParams());
        assertEquals(12 * projector, n.trainingState(), "fp32 gradient + two AdamW moments");
        assertEquals(4 * projector, n.output(), "stage 1 writes the projector only");
        assertEquals(0, n.checkpoints());
    }

    @Test
    void checkpointsKeptAtOnce() {
        LlavaConfig cfg = LlavaConfig.load(TestData.tinyLlava(), null, null);
        // 100 steps, a checkpoint every 10 (not at step 100, which writes the output): 9; with a limit of 2, 3 at once
        assertEquals(3, RunResources.needs(cfg, FreezePlan.Flags.STAGE2, null, Precision.FP32, 100, 10, 2).checkpoints());
        assertEquals(9, RunResources.needs(cfg, FreezePlan.Flags.STAGE2, null, Precision.FP32, 100, 10, null).checkpoints());
        assertEquals(0, RunResources.needs(cfg, FreezePlan.Flags.STAGE2, null, Precision.FP32, 100, 0, null).checkpoints());
        RunResources.Needs n = RunResources.needs(cfg, FreezePlan.Flags.STAGE2, null, Precision.FP32, 100, 10, 2);
        assertEquals(3 * n.checkpoint() + n.output(), n.disk());
    }

    @Test
    void aRunThatDoesNotFitSaysWhy(@TempDir Path dir) {
        LlavaConfig cfg = LlavaConfig.load(TestData.tinyLlava(), null, null);
        RunResources.Needs n = RunResources.needs(cfg, FreezePlan.Flags.STAGE2, null, Precision.FP32, 100, 10, 2);
        assertEquals(List.of(), RunResources.problems(n, n.memory(), dir, n.disk(), Precision.FP32, true), "exactly enough fits");
        List<String> p = RunResources.problems(n, n.memory() - 1, dir, n.disk() - 1, Precision.FP32, true);
        assertEquals(2, p.size(), p.toString());
        assertTrue(p.get(0).startsWith("not enough memory") && p.get(0).contains("--bf16 True"), p.get(0));
        assertTrue(p.get(1).startsWith("not enough disk space in " + dir) && p.get(1).contains("3 checkpoint(s)"), p.get(1));
        assertEquals(List.of(), RunResources.problems(n, n.weights(), dir, -1, Precision.FP32, false),
                "on a GPU host memory holds the weights while loading; unknown disk space is not checked");
        assertTrue(RunResources.availableMemory() > 0, "MemAvailable is read");
        assertTrue(RunResources.usableSpace(dir.resolve("not/yet")) > 0, "the nearest existing folder's file system");
    }

    @Test
    void trainRefusesAModelThatCannotFitBeforeReadingIt(@TempDir Path dir) throws Exception {
        Path model = Files.createDirectories(dir.resolve("huge"));
        try (var files = Files.list(TestData.tinyLlava())) {
            for (Path f : files.toList()) Files.copy(f, model.resolve(f.getFileName()));
        }
        ObjectMapper json = new ObjectMapper();
        ObjectNode cfg = (ObjectNode) json.readTree(model.resolve("config.json").toFile());
        ((ObjectNode) cfg.get("text_config")).put("intermediate_size", 1_000_000_000); // 1.1 TB of fp32 weights
        json.writeValue(model.resolve("config.json").toFile(), cfg);
        List<String> f = new ArrayList<>(TwoStageTrainingTest.stage1Flags(dir.resolve("out")));
        f.set(f.indexOf("--model_name_or_path") + 1, model.toString());
        Trainer t = new Trainer(TrainCommand.parse(f.toArray(new String[0])));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, t::run);
        assertTrue(e.getMessage().startsWith("this run will not fit: not enough memory") && e.getMessage().contains("--check_resources False"),
                e.getMessage());
        assertNull(t.model(), "refused before any weight is read");
    }
}
