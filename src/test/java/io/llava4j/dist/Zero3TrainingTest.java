package io.llava4j.dist;

import com.fasterxml.jackson.databind.JsonNode;
import io.llava4j.TestData;
import io.llava4j.io.HostTensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code --deepspeed} ZeRO stage 3 (parameters partitioned, each decoder layer gathered before its forward and its
 * recompute) over 2 and 4 JVMs against one process with the global batch, for LLaVA's stage 2 (projector + LLM): the
 * same per-step losses, gradient norms and saved (consolidated) model within 1e-5 relative, with accumulation; bf16
 * against DDP on the same ranks; checkpoints of partitioned state resumed with the same and another world size.
 */
class Zero3TrainingTest {
    static Path config(Path dir) throws Exception {
        return ZeroTrainingTest.config(dir, 3, 30_000);
    }

    /** Trainable values of the tiny model's stage 2, per gather unit: everything outside the decoder layers, each decoder layer. */
    static long[] unitValues() {
        long outer = 0;
        java.util.TreeMap<Integer, Long> layers = new java.util.TreeMap<>();
        for (Map.Entry<String, HostTensor> e : TestData.tensors(TestData.tinyLlava().resolve("model.safetensors")).entrySet()) {
            String k = e.getKey();
            if (k.startsWith("vision_tower.")) continue; // frozen
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("^language_model\\.model\\.layers\\.(\\d+)\\.").matcher(k);
            if (m.find()) layers.merge(Integer.parseInt(m.group(1)), e.getValue().numel(), Long::sum);
            else outer += e.getValue().numel();
        }
        long[] out = new long[1 + layers.size()];
        out[0] = outer;
        int i = 1;
        for (long v : layers.values()) out[i++] = v;
        return out;
    }

    /**
     * 2 × 2 × 2 = 4 × 1 × 2 = 1 × 4 × 2 samples a step; what rank 0 holds between steps, and what each step all-gathers
     * and reduce-scatters.
     */
    @Test
    void zero3ProjectorAndLlmWithAccumulationOnTwoAndFourRanksEqualsOneProcess(@TempDir Path tmp) throws Exception {
        Path data = DdpRuns.data(tmp, true);
        DdpRuns.Result one = DdpRuns.cli(DdpRuns.flags(data, tmp.resolve("one"), true, 4, 2, 2));
        assertEquals(0, one.code(), one.output());
        long[] units = unitValues();
        for (int w : new int[]{2, 4}) {
            Path out = tmp.resolve("w" + w);
            DdpRuns.Result r = DdpRuns.cli(ZeroTrainingTest.ranks(DdpRuns.flags(data, out, true, 4 / w, 2, 2), w, config(tmp)));
            assertEquals(0, r.code(), r.output());
            assertTrue(r.output().contains("ZeRO stage 3: " + w + " ranks"), r.output());
            DdpRuns.assertSameLosses(DdpRuns.log(tmp.resolve("one")), DdpRuns.log(out), 1e-5);
            ZeroTrainingTest.assertSameGradNorms(DdpRuns.log(tmp.resolve("one")), DdpRuns.log(out));
            DdpRuns.assertSameTensors(DdpRuns.written(tmp.resolve("one"), true), DdpRuns.written(out, true), 1e-5);
            // per micro-batch (2 a step): the outer unit gathered once, each decoder layer twice (forward, recompute);
            // every unit's gradients reduce-scattered once; each unit padded to a multiple of W
            long gathers = units[0], reduces = units[0];
            for (int i = 1; i < units.length; i++) {
                gathers += 2 * units[i];
                reduces += units[i];
            }
            for (JsonNode step : DdpRuns.log(out)) {
                // between steps rank 0 holds its part of each unit: fp32 values, reduced gradient, two moments — and
                // no parameter values or gradients
                long parts = 0;
                for (long u : units) parts += (u + w - 1) / w;
                assertEquals(16 * parts, step.get("resident_trainable_bytes").asLong(), "1/" + w + " of the trainable state: " + step);
                long g = step.get("allgather_param_bytes").asLong(), rs = step.get("reduce_scatter_grad_bytes").asLong();
                long pad = 4L * 2 * w * 2 * units.length;
                assertTrue(g >= 2 * 4 * gathers && g <= 2 * 4 * gathers + pad, g + " vs " + 2 * 4 * gathers);
                assertTrue(rs >= 2 * 4 * reduces && rs <= 2 * 4 * reduces + pad, rs + " vs " + 2 * 4 * reduces);
            }
        }
    }

    /**
     * LLaVA's stage 1 under ZeRO-3 (only the projector trains: the outer unit; the frozen LLM and tower stay whole and
     * are never sent): 2 ranks with accumulation equal one process with the global batch.
     */
    @Test
    void zero3ProjectorOnlyWithAccumulationOnTwoRanksEqualsOneProcess(@TempDir Path tmp) throws Exception {
        Path data = DdpRuns.data(tmp, false);
        DdpRuns.Result one = DdpRuns.cli(DdpRuns.flags(data, tmp.resolve("one"), false, 4, 2, 2));
        assertEquals(0, one.code(), one.output());
        Path out = tmp.resolve("w2");
        DdpRuns.Result r = DdpRuns.cli(ZeroTrainingTest.ranks(DdpRuns.flags(data, out, false, 2, 2, 2), 2, config(tmp)));
        assertEquals(0, r.code(), r.output());
        assertTrue(r.output().contains("ZeRO stage 3: 2 ranks"), r.output());
        DdpRuns.assertSameLosses(DdpRuns.log(tmp.resolve("one")), DdpRuns.log(out), 1e-5);
        ZeroTrainingTest.assertSameGradNorms(DdpRuns.log(tmp.resolve("one")), DdpRuns.log(out));
        DdpRuns.assertSameTensors(DdpRuns.written(tmp.resolve("one"), false), DdpRuns.written(out, false), 1e-5);
    }

    /**
     * --bf16 True (bf16 frozen weights and autocast, fp32 master values partitioned) against DDP on the same 2 ranks
     * (ZeroTrainingTest says why not one process).
     */
    @Test
    void zero3Bf16EqualsDdpOnTheSameRanks(@TempDir Path tmp) throws Exception {
        Path data = DdpRuns.data(tmp, true);
        List<String> ddp = DdpRuns.with(DdpRuns.flags(data, tmp.resolve("ddp"), true, 2, 2, 2), "--bf16", "True");
        ddp.addAll(List.of("--nproc_per_node", "2", "--master_port", String.valueOf(DdpRuns.freePort()), "--ddp_timeout", "60"));
        DdpRuns.Result d = DdpRuns.cli(ddp);
        assertEquals(0, d.code(), d.output());
        Path out = tmp.resolve("zero3");
        DdpRuns.Result r = DdpRuns.cli(ZeroTrainingTest.ranks(DdpRuns.with(DdpRuns.flags(data, out, true, 2, 2, 2), "--bf16", "True"), 2, config(tmp)));
        assertEquals(0, r.code(), r.output());
        assertTrue(r.output().contains("ZeRO stage 3: 2 ranks"), r.output());
        DdpRuns.assertSameLosses(DdpRuns.log(tmp.resolve("ddp")), DdpRuns.log(out), 1e-5);
        ZeroTrainingTest.assertSameGradNorms(DdpRuns.log(tmp.resolve("ddp")), DdpRuns.log(out));
        DdpRuns.assertSameTensors(DdpRuns.written(tmp.resolve("ddp"), true), DdpRuns.written(out, true), 1e-5);
    }

    /**
     * Each rank writes its partition's optimizer state; the checkpoint's trainable tensors are whole (gathered). A
     * resume with the same world size gives step 3's loss and the final model exactly; 4 ranks resume from 2 ranks'
     * shards within 1e-5.
     */
    @Test
    void zero3CheckpointsResumeWithTheSameOrAnotherWorldSize(@TempDir Path tmp) throws Exception {
        Path data = DdpRuns.data(tmp, true);
        Path out = tmp.resolve("run");
        DdpRuns.Result full = DdpRuns.cli(ZeroTrainingTest.ranks(DdpRuns.with(DdpRuns.flags(data, out, true, 2, 1, 3), "--save_steps", "2"), 2, config(tmp)));
        assertEquals(0, full.code(), full.output());
        List<JsonNode> whole = DdpRuns.log(out);
        Map<String, HostTensor> wholeWeights = DdpRuns.written(out, true);
        Path ck = out.resolve("checkpoint-2");
        assertEquals(3, DdpRuns.JSON.readTree(ck.resolve("trainer_state.json").toFile()).get("zero_stage").asInt());
        long[] held = new long[2];
        for (int r = 0; r < 2; r++)
            for (Map.Entry<String, HostTensor> e : TestData.tensors(ck.resolve("optimizer_shards/rank-0000" + r + "-of-00002.safetensors")).entrySet())
                if (e.getKey().endsWith(".exp_avg")) held[r] += e.getValue().numel();
        long trainable = 0;
        for (long u : unitValues()) trainable += u;
        assertTrue(Math.abs(held[0] - held[1]) <= 2 * unitValues().length && held[0] + held[1] == trainable,
                java.util.Arrays.toString(held) + " of " + trainable);
        for (Map.Entry<String, HostTensor> e : TestData.tensors(ck.resolve("trainable.safetensors")).entrySet())
            assertTrue(e.getValue().numel() > 0, e.getKey() + " is written whole");

        Path again = tmp.resolve("again");
        ZeroTrainingTest.copyTree(ck, again.resolve("checkpoint-2"));
        DdpRuns.Result r2 = DdpRuns.cli(ZeroTrainingTest.ranks(DdpRuns.with(DdpRuns.with(DdpRuns.flags(data, again, true, 2, 1, 3),
                "--save_steps", "2"), "--resume_from_checkpoint", "True"), 2, config(tmp)));
        assertEquals(0, r2.code(), r2.output());
        assertEquals(whole.get(2).get("loss").asDouble(), DdpRuns.log(again).get(0).get("loss").asDouble(), 0.0, "step 3 after a resume with 2 ranks");
        DdpRuns.assertSameTensors(wholeWeights, DdpRuns.written(again, true), 0.0);

        Path four = tmp.resolve("four");
        ZeroTrainingTest.copyTree(ck, four.resolve("checkpoint-2"));
        DdpRuns.Result r4 = DdpRuns.cli(ZeroTrainingTest.ranks(DdpRuns.with(DdpRuns.flags(data, four, true, 1, 1, 3),
                "--resume_from_checkpoint", "True"), 4, config(tmp)));
        assertEquals(0, r4.code(), r4.output());
        DdpRuns.assertClose(whole.get(2).get("loss").asDouble(), DdpRuns.log(four).get(0).get("loss").asDouble(), 1e-5, "step 3, 4 ranks");
        DdpRuns.assertSameTensors(wholeWeights, DdpRuns.written(four, true), 1e-5);
    }
}
