package io.llava4j.train;

import io.llava4j.TestData;
import io.llava4j.io.HostTensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** What is written at the end of training is decided from the FreezePlan: every tensor that trained is saved. */
class SaveFollowsPlanTest {

    static List<String> flags(Path out, String... extra) {
        List<String> f = new ArrayList<>(TwoStageTrainingTest.common(out));
        f.addAll(List.of("--version", "plain", "--data_path", TestData.tinyData().resolve("pretrain.json").toString(), "--max_steps", "1"));
        f.addAll(List.of(extra));
        return f;
    }

    @Test
    void adapterTuningWithUnfrozenTowerSavesTheTower(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("out");
        Trainer t = TrainRuns.run(flags(out, "--tune_mm_mlp_adapter", "True", "--unfreeze_mm_vision_tower", "True"));
        assertTrue(t.plan().partTrains("vision") && t.plan().partTrains("projector"));
        assertTrue(Files.isRegularFile(out.resolve(ProjectorFiles.FILE)), "the scripts' --pretrain_mm_mlp_adapter still chains");
        assertTrue(Files.isRegularFile(out.resolve(ProjectorFiles.BIN_FILE)));
        Map<String, HostTensor> before = TestData.tensors(TestData.tinyLlava().resolve("model.safetensors"));
        Map<String, HostTensor> got = TestData.tensors(out.resolve("model.safetensors"));
        int changed = 0;
        for (String name : t.plan().trainable()) {
            HostTensor saved = got.get(name);
            assertNotNull(saved, name + " trained but was not saved");
            float[] trained = io.llava4j.engine.Tensors.hostView(t.parameters().get(name)).toFloats();
            assertArrayEquals(trained, saved.toFloats(), 0f, name + ": the trained value is what is written");
            if (name.startsWith("vision_tower.") && !Arrays.equals(before.get(name).toFloats(), saved.toFloats())) changed++;
        }
        assertTrue(changed > 0, "the tower trained and its new weights are on disk");
    }

    @Test
    void adapterOnlyWritesTheStageOneFiles(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("out");
        TrainRuns.run(flags(out, "--tune_mm_mlp_adapter", "True"));
        assertTrue(Files.isRegularFile(out.resolve(ProjectorFiles.FILE)));
        assertFalse(Files.exists(out.resolve("model.safetensors")), "a projector-only plan writes LLaVA's stage-1 output");
    }
}
