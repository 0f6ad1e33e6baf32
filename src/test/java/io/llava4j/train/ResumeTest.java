package io.llava4j.train;

import io.llava4j.TestData;
import io.llava4j.cli.TrainCommand;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** A run stopped after step k and resumed gives the uninterrupted run's losses and weights. */
class ResumeTest {

    static List<String> flags(Path out, int maxSteps) {
        return new ArrayList<>(List.of("--model_name_or_path", TestData.tinyLlava().toString(), "--version", "v1",
                "--data_path", TestData.tinyData().resolve("finetune.json").toString(),
                "--image_folder", TestData.tinyData().resolve("images").toString(),
                "--per_device_train_batch_size", "1", "--num_train_epochs", "3", "--max_steps", String.valueOf(maxSteps),
                "--learning_rate", "1e-3", "--lr_scheduler_type", "cosine", "--warmup_steps", "2", "--weight_decay", "0.01",
                "--max_grad_norm", "1.0", "--save_steps", "2", "--save_total_limit", "1", "--logging_steps", "1",
                "--seed", "7", "--output_dir", out.toString()));
    }

    @Test
    void resumedRunEqualsUninterruptedRun(@TempDir Path tmp) throws Exception {
        Path full = tmp.resolve("full"), cut = tmp.resolve("cut");
        Trainer whole = TrainRuns.run(flags(full, 6));
        assertEquals(6, whole.losses().size());
        // checkpoints 2 and 4 were written, --save_total_limit 1 kept the newest; none at the final step
        assertEquals(List.of("checkpoint-4"),
                TrainCheckpoint.list(full).stream().map(p -> p.getFileName().toString()).toList());

        // the same run, stopped after step 3 (its newest checkpoint is step 2), then resumed
        List<String> stopped = flags(cut, 6);
        Trainer first = new Trainer(TrainCommand.parse(stopped.toArray(new String[0]))).stopAfterStep(3);
        first.run();
        assertEquals(whole.losses().subList(0, 3), first.losses());
        assertFalse(Files.exists(cut.resolve("model.safetensors")), "a stopped run writes no final output");
        assertEquals(List.of("checkpoint-2"), TrainCheckpoint.list(cut).stream().map(p -> p.getFileName().toString()).toList());

        Trainer resumed = TrainRuns.run(withResumeList(stopped, "True"));
        assertEquals(4, resumed.losses().size(), "steps 3..6");
        for (int i = 0; i < 4; i++)
            assertEquals(whole.losses().get(i + 2), resumed.losses().get(i), 0.0, "loss of step " + (i + 3));
        Map<String, org.bytedeco.pytorch.Tensor> a = whole.parameters(), b = resumed.parameters();
        for (String n : a.keySet()) assertTrue(a.get(n).equal(b.get(n)), n + " differs after resume");
        // the log has each step once
        assertEquals(6, Files.readAllLines(cut.resolve("log.jsonl")).size());
    }

    static List<String> withResumeList(List<String> f, String v) {
        List<String> g = new ArrayList<>(f);
        g.addAll(List.of("--resume_from_checkpoint", v));
        return g;
    }
}
