package io.llava4j.train;

import io.llava4j.TestData;
import io.llava4j.config.LlavaConfig;
import io.llava4j.nn.Precision;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** The per-rank memory report of {@code --dry_run True --deepspeed}: LLaVA-1.5-7B's real config, and the CLI on the tiny model. */
class ZeroMemoryTest {
    static final Path REAL_7B = Path.of("src/test/resources/real-configs/llava-hf__llava-1.5-7b-hf");

    @Test
    void llava7bStage2AtEightRanks() {
        LlavaConfig c = LlavaConfig.load(REAL_7B, null, null);
        Map<String, RunResources.Count> parts = RunResources.parameters(c);
        long n = parts.get("projector").total() + parts.get("llm.embed").total() + parts.get("llm.layers").total()
                + parts.get("llm.norm").total() + parts.get("llm.lm_head").total();
        assertEquals(6_759_919_616L, n, "LLaMA-7B with vocab 32064 + the mlp2x_gelu projector");
        ZeroMemory z = ZeroMemory.of(c, FreezePlan.Flags.STAGE2, null, Precision.BF16, 2, 8);
        System.out.print(z.render());
        assertEquals(n, z.trainable());
        assertEquals(8 * ((n + 7) / 8), z.optimizerState(), "two fp32 moments of 1/8 of the values");
        assertEquals(4 * ((n + 7) / 8), z.gradientsAtUpdate(), "stage 2 keeps only the reduced 1/8 through the update");
        assertEquals(4 * n + 4 * ((n + 7) / 8), z.gradientsAtBackward());
        long tower = parts.get("vision").matrices() * 2 + parts.get("vision").vectors() * 4; // frozen, bf16 matrices
        assertEquals(4 * n + tower, z.weights());
        ZeroMemory replica = ZeroMemory.of(c, FreezePlan.Flags.STAGE2, null, Precision.BF16, 0, 8);
        assertEquals(8 * n, replica.optimizerState());
        assertTrue(replica.peak() - z.peak() > 40L << 30, "ZeRO-2 at W = 8 saves 7/8 of 50 GiB of AdamW state a rank");
        // LLaVA's zero2.json (overlap_comm true, buckets of hidden² values): no whole gradient at the backward's end, only
        // the shard, the largest tensor's gradient and bucket (embed_tokens / lm_head, 32064 × 4096) and two running buckets
        ZeroMemory overlapped = ZeroMemory.of(c, FreezePlan.Flags.STAGE2, null, Precision.BF16, 2, 8, true, 4096L * 4096);
        System.out.print(overlapped.render());
        assertEquals(4 * ((n + 7) / 8) + 4 * (2 * 32064L * 4096 + 2 * 4096L * 4096), overlapped.gradientsAtBackward());
        assertEquals(z.gradientsAtUpdate(), overlapped.gradientsAtUpdate());
        assertEquals(z.optimizerState(), overlapped.optimizerState());
        assertTrue(overlapped.render().contains("during the backward (overlap_comm)"), overlapped.render());
        ZeroMemory stage1 = ZeroMemory.of(c, FreezePlan.Flags.STAGE2, null, Precision.BF16, 1, 8);
        assertEquals(stage1.gradientsAtBackward(), ZeroMemory.of(c, FreezePlan.Flags.STAGE2, null, Precision.BF16, 1, 8, true,
                4096L * 4096).gradientsAtBackward(), "stage 1 reduces after the backward whatever overlap_comm says");
        assertEquals(4 * n + 4 * ((n + 7) / 8), stage1.gradientsAtUpdate(), "stage 1 keeps the whole gradients");
        // LLaVA's stage 1 shards only the projector's state
        ZeroMemory projector = ZeroMemory.of(c, FreezePlan.Flags.STAGE1, null, Precision.BF16, 2, 8);
        assertEquals(parts.get("projector").total(), projector.trainable());
    }

    /**
     * Stage 3 of LLaVA-1.5-7B's stage 2 at W = 8: the trainable parameters, their reduced gradients and AdamW's state
     * are 1/8 a rank; whole are only the units gathered at once (projector, embed_tokens, norm, lm_head and one of the
     * 32 decoder layers).
     */
    @Test
    void llava7bStage3AtEightRanks() {
        LlavaConfig c = LlavaConfig.load(REAL_7B, null, null);
        Map<String, RunResources.Count> parts = RunResources.parameters(c);
        long outer = parts.get("projector").total() + parts.get("llm.embed").total() + parts.get("llm.norm").total()
                + parts.get("llm.lm_head").total();
        long layers = parts.get("llm.layers").total(), n = outer + layers, part = (n + 7) / 8;
        ZeroMemory z = ZeroMemory.of(c, FreezePlan.Flags.STAGE2, null, Precision.BF16, 3, 8);
        System.out.print(z.render());
        assertEquals(n, z.trainable());
        assertEquals(4 * (outer + layers / 32), z.gathered(), "the outer unit and one decoder layer, whole in fp32");
        long tower = parts.get("vision").matrices() * 2 + parts.get("vision").vectors() * 4;
        assertEquals(tower + 4 * part + z.gathered(), z.weights(), "this rank's 1/8 of the fp32 values, not all of them");
        assertEquals(8 * part, z.optimizerState());
        assertEquals(4 * part, z.gradientsAtUpdate());
        assertEquals(z.gathered() + 4 * part, z.gradientsAtBackward(), "whole gradients of the gathered units only");
        ZeroMemory two = ZeroMemory.of(c, FreezePlan.Flags.STAGE2, null, Precision.BF16, 2, 8);
        assertTrue(two.peak() - z.peak() > 40L << 30, "7/8 of 25 GiB of weights and the whole gradients saved: " + two.peak() + " vs " + z.peak());
        assertTrue(z.render().contains("this rank's 1/8 fp32 part"), z.render());
        // one rank alone holds everything, as a replica's values, gradients and state
        ZeroMemory alone = ZeroMemory.of(c, FreezePlan.Flags.STAGE2, null, Precision.BF16, 3, 1);
        assertEquals(8 * n, alone.optimizerState());
        assertEquals(tower + 4 * n + alone.gathered(), alone.weights());
    }

    /** {@code --dry_run True --deepspeed zero2.json --nproc_per_node 4}: the report for 4 ranks, printed by this process, no weight read. */
    @Test
    void dryRunPrintsThePerRankReportWithoutStartingRanks(@TempDir Path tmp) throws Exception {
        java.io.ByteArrayOutputStream buf = new java.io.ByteArrayOutputStream();
        java.io.PrintStream out = System.out;
        System.setOut(new java.io.PrintStream(buf, true, java.nio.charset.StandardCharsets.UTF_8));
        int code;
        try {
            code = io.llava4j.cli.Main.run("train", "--model_name_or_path", TestData.tinyLlava().toString(), "--version", "v1",
                    "--data_path", TestData.tinyData().resolve("finetune.json").toString(), "--image_folder", TestData.tinyData().resolve("images").toString(),
                    "--per_device_train_batch_size", "2", "--output_dir", tmp.resolve("o").toString(), "--dry_run", "True",
                    "--deepspeed", TestData.deepspeed("zero2.json").toString(), "--nproc_per_node", "4");
        } finally {
            System.setOut(out);
        }
        String s = buf.toString(java.nio.charset.StandardCharsets.UTF_8);
        assertEquals(0, code, s);
        LlavaConfig c = LlavaConfig.load(TestData.tinyLlava(), null, null);
        ZeroMemory z = ZeroMemory.of(c, FreezePlan.Flags.STAGE2, null, Precision.FP32, 2, 4);
        assertTrue(s.contains("ZeRO stage 2, per rank at W = 4"), s);
        assertTrue(s.contains(String.format("optimizer state %,d B", z.optimizerState())), s);
        assertFalse(s.contains("launcher:"), "no rank started: " + s);
        assertTrue(s.contains("note: --deepspeed " + TestData.deepspeed("zero2.json") + ": no effect here:"), s);
        assertEquals(List.of(), java.nio.file.Files.exists(tmp.resolve("o")) ? List.of(tmp.resolve("o")) : List.of(), "nothing written");
    }

    /** {@code --dry_run True --deepspeed zero3.json --nproc_per_node 2}: the stage-3 report, parameters 1/W too. */
    @Test
    void dryRunReportsStage3(@TempDir Path tmp) throws Exception {
        java.io.ByteArrayOutputStream buf = new java.io.ByteArrayOutputStream();
        java.io.PrintStream out = System.out;
        System.setOut(new java.io.PrintStream(buf, true, java.nio.charset.StandardCharsets.UTF_8));
        int code;
        try {
            code = io.llava4j.cli.Main.run("train", "--model_name_or_path", TestData.tinyLlava().toString(), "--version", "v1",
                    "--data_path", TestData.tinyData().resolve("finetune.json").toString(), "--image_folder", TestData.tinyData().resolve("images").toString(),
                    "--per_device_train_batch_size", "2", "--output_dir", tmp.resolve("o").toString(), "--dry_run", "True",
                    "--deepspeed", TestData.deepspeed("zero3.json").toString(), "--nproc_per_node", "2");
        } finally {
            System.setOut(out);
        }
        String s = buf.toString(java.nio.charset.StandardCharsets.UTF_8);
        assertEquals(0, code, s);
        ZeroMemory z = ZeroMemory.of(LlavaConfig.load(TestData.tinyLlava(), null, null), FreezePlan.Flags.STAGE2, null, Precision.FP32, 3, 2);
        assertTrue(s.contains("ZeRO stage 3, per rank at W = 2"), s);
        assertTrue(s.contains(String.format("params %,d B", z.weights())), s);
        assertTrue(s.contains("this rank's 1/2 fp32 part"), s);
        assertTrue(s.contains("stage3_max_live_parameters"), "tuning keys without effect are noted: " + s);
    }
}
