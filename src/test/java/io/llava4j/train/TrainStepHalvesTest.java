package io.llava4j.train;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A micro-batch run as two halves at once (TrainStep's two-core path) trains the model the batched step trains, and
 * is exactly reproducible: stage 1 and stage 2 (the LLM trains) on the reference data, batch 2 with two accumulation
 * steps (so the second micro-batch's gradients are added to the first's).
 */
class TrainStepHalvesTest {

    static List<Double> run(Path out, String mode) throws Exception {
        return run(out, mode, false);
    }

    static List<Double> run(Path out, String mode, boolean stage2) throws Exception {
        String before = System.getProperty("llava4j.sample_threads");
        System.setProperty("llava4j.sample_threads", mode);
        try {
            List<String> f = FreezeAwareDataTest.stage1(out, "--gradient_accumulation_steps", "2", "--num_train_epochs", "3");
            f.set(f.indexOf("--per_device_train_batch_size") + 1, "2");
            f.set(f.indexOf("--max_steps") + 1, "3");
            if (stage2) f.set(f.indexOf("--tune_mm_mlp_adapter") + 1, "False");
            return TrainRuns.run(f).losses();
        } finally {
            if (before == null) System.clearProperty("llava4j.sample_threads");
            else System.setProperty("llava4j.sample_threads", before);
        }
    }

    @Test
    void halvesTrainAsTheBatchedStepAndRepeatExactly(@TempDir Path tmp) throws Exception {
        check(tmp, false);
    }

    @Test
    void halvesTrainTheLlmAsTheBatchedStep(@TempDir Path tmp) throws Exception {
        check(tmp, true);
    }

    private static void check(Path tmp, boolean stage2) throws Exception {
        List<Double> batched = run(tmp.resolve("a"), "0", stage2);
        List<Double> halves = run(tmp.resolve("b"), "force", stage2);
        List<Double> again = run(tmp.resolve("c"), "force", stage2);
        assertEquals(3, batched.size());
        assertEquals(halves, again, "two runs with halves differ");
        for (int i = 0; i < batched.size(); i++)
            assertEquals(batched.get(i), halves.get(i), 1e-5 * Math.abs(batched.get(i)), "step " + (i + 1));
        assertNotEquals(batched, halves, "the halves path did not run (identical bits to the batched step)");
    }
}
