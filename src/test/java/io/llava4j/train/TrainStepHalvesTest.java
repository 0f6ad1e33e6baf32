package io.llava4j.train;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A micro-batch run as two halves at once (TrainStep's two-core path) trains the model the batched step trains, and
 * is exactly reproducible: stage 1 and stage 2 (the LLM trains) on eight captions of the reference images, batch 2
 * with two accumulation steps (so the second micro-batch's gradients, which differ from the first's, are added to them).
 */
class TrainStepHalvesTest {

    /** Each step's loss and gradient norm (before clipping), as the run logs them. */
    static Path data(Path dir) throws java.io.IOException {
        String[] captions = {"a red circle above a blue square", "two green triangles on a white background", "a blue square",
                "a red circle", "two green triangles", "shapes on white", "a circle and a square", "green and red and blue"};
        com.fasterxml.jackson.databind.node.ArrayNode all = new com.fasterxml.jackson.databind.ObjectMapper().createArrayNode();
        for (int i = 0; i < captions.length; i++) {
            com.fasterxml.jackson.databind.node.ObjectNode r = all.addObject().put("id", "h" + i).put("image", "img" + (i % 2) + ".png");
            r.putArray("conversations").addObject().put("from", "human").put("value", "<image>\nDescribe the image briefly.");
            ((com.fasterxml.jackson.databind.node.ArrayNode) r.get("conversations")).addObject().put("from", "gpt").put("value", captions[i]);
        }
        java.nio.file.Files.createDirectories(dir);
        Path p = dir.resolve("captions8.json");
        java.nio.file.Files.writeString(p, all.toString());
        return p;
    }

    static List<Double> run(Path out, String mode, boolean stage2) throws Exception {
        return run(out, mode, stage2, false);
    }

    static List<Double> run(Path out, String mode, boolean stage2, boolean alwaysHalves) throws Exception {
        String before = System.getProperty("llava4j.sample_threads");
        System.setProperty("llava4j.sample_threads", mode);
        try {
            List<String> f = FreezeAwareDataTest.stage1(out, "--gradient_accumulation_steps", "2", "--num_train_epochs", "3",
                    "--logging_steps", "1");
            f.set(f.indexOf("--per_device_train_batch_size") + 1, "2");
            f.set(f.indexOf("--max_steps") + 1, "3");
            if (stage2) f.set(f.indexOf("--tune_mm_mlp_adapter") + 1, "False");
            f.set(f.indexOf("--data_path") + 1, data(out.getParent()).toString());
            if (alwaysHalves) new Trainer(io.llava4j.cli.TrainCommand.parse(f.toArray(new String[0]))).alwaysHalves().run();
            else TrainRuns.run(f);
            List<Double> out2 = new java.util.ArrayList<>();
            for (String line : java.nio.file.Files.readAllLines(out.resolve("log.jsonl"))) {
                com.fasterxml.jackson.databind.JsonNode j = new com.fasterxml.jackson.databind.ObjectMapper().readTree(line);
                out2.add(j.get("loss").asDouble());
                out2.add(j.get("grad_norm").asDouble());
            }
            return out2;
        } finally {
            if (before == null) System.clearProperty("llava4j.sample_threads");
            else System.setProperty("llava4j.sample_threads", before);
        }
    }

    /** Trainer.alwaysHalves at one intra-op thread runs the halves path: the forced run's numbers bit for bit. */
    @Test
    void alwaysHalvesRunsTheHalvesAtOneThread(@TempDir Path tmp) throws Exception {
        io.llava4j.engine.Engine.init();
        int threads = org.bytedeco.pytorch.global.torch.get_num_threads();
        org.bytedeco.pytorch.global.torch.set_num_threads(1);
        try {
            List<Double> forced = run(tmp.resolve("a"), "force", false, false);
            List<Double> batched = run(tmp.resolve("b"), "auto", false, false);
            List<Double> always = run(tmp.resolve("c"), "auto", false, true);
            assertEquals(forced, always, "alwaysHalves did not run the halves");
            assertNotEquals(batched, always, "at one thread the auto mode ran halves too: the test shows nothing");
        } finally {
            org.bytedeco.pytorch.global.torch.set_num_threads(threads);
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
        assertEquals(6, batched.size());
        assertEquals(halves, again, "two runs with halves differ");
        // the gradient norm catches a lost accumulation (Adam's first steps barely depend on the gradient's size)
        for (int i = 0; i < batched.size(); i++)
            assertEquals(batched.get(i), halves.get(i), 1e-5 * Math.abs(batched.get(i)),
                    (i % 2 == 0 ? "loss" : "gradient norm") + " of step " + (i / 2 + 1));
        assertNotEquals(batched, halves, "the halves path did not run (identical bits to the batched step)");
    }
}
