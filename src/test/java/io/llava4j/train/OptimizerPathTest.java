package io.llava4j.train;

import com.fasterxml.jackson.databind.JsonNode;
import io.llava4j.TestData;
import io.llava4j.io.HostTensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static io.llava4j.train.TwoStageTrainingTest.JSON;
import static io.llava4j.train.TwoStageTrainingTest.REF;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Stage 2 with HF Trainer's optimizer path switched on (accumulation 2 over micro-batches of 1, weight decay 0.1 in
 * LLaVA's decay groups, clipping at 0.5, cosine with 1 warm-up step) against llava_ref.py's run
 * ({@code expected/stage2-optim}): a flipped decay sign, missing clipping or a missing accumulation divisor each moves
 * the losses, the weights or the logged grad norms.
 */
class OptimizerPathTest {

    @Test
    void accumulationDecayClippingAndCosineMatchReference(@TempDir Path out) throws Exception {
        List<String> f = new ArrayList<>(List.of("--model_name_or_path", TestData.tinyLlava().toString(),
                "--image_folder", TestData.tinyData().resolve("images").toString(),
                "--data_path", TestData.tinyData().resolve("finetune.json").toString(), "--version", "v1",
                "--per_device_train_batch_size", "1", "--gradient_accumulation_steps", "2", "--learning_rate", "1e-3",
                "--max_steps", "4", "--weight_decay", "0.1", "--max_grad_norm", "0.5", "--lr_scheduler_type", "cosine",
                "--warmup_steps", "1", "--logging_steps", "1", "--output_dir", out.toString()));
        Trainer t = TrainRuns.run(f);
        JsonNode ref = JSON.readTree(REF.resolve("expected/stage2-optim/reference.json").toFile());
        TwoStageTrainingTest.assertLosses(ref, t.losses());

        List<String> log = Files.readAllLines(out.resolve("log.jsonl"));
        JsonNode norms = ref.get("grad_norms");
        assertEquals(norms.size(), log.size());
        for (int i = 0; i < log.size(); i++) {
            double want = norms.get(i).asDouble(), got = JSON.readTree(log.get(i)).get("grad_norm").asDouble();
            assertEquals(want, got, 1e-4 * want, "grad_norm of step " + (i + 1));
        }
        assertEquals(0.0, JSON.readTree(log.get(0)).get("lr").asDouble(), "warm-up step 1 runs at lr 0");

        Map<String, HostTensor> before = TestData.tensors(TestData.tinyLlava().resolve("model.safetensors"));
        Map<String, HostTensor> want = TestData.tensors(REF.resolve("expected/stage2-optim/model.safetensors"));
        Map<String, HostTensor> got = TestData.tensors(out.resolve("model.safetensors"));
        assertEquals(want.keySet(), got.keySet());
        int decayed = 0;
        for (String k : want.keySet()) {
            if (k.startsWith("vision_tower.")) {
                assertArrayEquals(before.get(k).toFloats(), got.get(k).toFloats(), 0f, k + " is frozen");
                continue;
            }
            double e = TwoStageTrainingTest.updateError(got.get(k), want.get(k), before.get(k));
            assertTrue(e < 1e-3, k + ": update error " + e);
            if (Optimizers.decays(k)) decayed++;
        }
        assertTrue(decayed > 0);
    }

    @Test
    void epochsCountFlooredOptimizerStepsAsHfTrainer(@TempDir Path tmp) throws Exception {
        Path data = tmp.resolve("three.json");
        StringBuilder j = new StringBuilder("[");
        for (int i = 0; i < 3; i++)
            j.append(i == 0 ? "" : ",").append("{\"id\": \"t").append(i).append("\", \"conversations\": [{\"from\": \"human\", \"value\": \"Count ")
                    .append(i).append("\"}, {\"from\": \"gpt\", \"value\": \"").append(i + 1).append("\"}]}");
        Files.writeString(data, j.append("]").toString());
        Path out = tmp.resolve("out");
        Trainer t = TrainRuns.run(List.of("--model_name_or_path", TestData.tinyLlava().toString(), "--data_path", data.toString(),
                "--version", "v1", "--per_device_train_batch_size", "1", "--gradient_accumulation_steps", "2",
                "--num_train_epochs", "2", "--learning_rate", "1e-4", "--logging_steps", "1", "--output_dir", out.toString()));
        // 3 micro-batches an epoch, accumulation 2: HF counts floor(3 / 2) = 1 step an epoch, so 2 epochs = 2 steps
        assertEquals(2, t.losses().size());
        assertEquals(2, Files.readAllLines(out.resolve("log.jsonl")).size());
    }
}
