package io.llava4j.dist;

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

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code --deepspeed} ZeRO stage 1 and 2 over 2 and 4 JVMs (Gloo over loopback) against one process with the global
 * batch: the same per-step losses and final weights within 1e-5 relative, with clipping, weight decay, a warmup and
 * gradient accumulation; and what each step communicates.
 */
class ZeroTrainingTest {
    static Path config(Path dir, int stage, long bucket) throws Exception {
        Path f = dir.resolve("zero" + stage + ".json");
        Files.createDirectories(dir);
        Files.writeString(f, "{\"bf16\": {\"enabled\": \"auto\"}, \"train_micro_batch_size_per_gpu\": \"auto\", \"train_batch_size\": \"auto\","
                + " \"gradient_accumulation_steps\": \"auto\", \"gradient_clipping\": \"auto\","
                + " \"zero_optimization\": {\"stage\": " + stage + ", \"reduce_bucket_size\": " + bucket + "}}");
        return f;
    }

    static List<String> ranks(List<String> flags, int n, Path ds) throws Exception {
        List<String> f = new ArrayList<>(flags);
        f.addAll(List.of("--nproc_per_node", String.valueOf(n), "--master_port", String.valueOf(DdpRuns.freePort()),
                "--ddp_timeout", "60", "--deepspeed", ds.toString()));
        return f;
    }

    /** Stage 1 of LLaVA (the projector alone): ZeRO-1 with 2 and 4 ranks; the projector's state is what is sharded. */
    @Test
    void zero1ProjectorOnTwoAndFourRanksEqualsOneProcess(@TempDir Path tmp) throws Exception {
        Path data = DdpRuns.data(tmp, false);
        DdpRuns.Result one = DdpRuns.cli(DdpRuns.flags(data, tmp.resolve("one"), false, 4, 1, 3));
        assertEquals(0, one.code(), one.output());
        // 2 ranks × 2 and 4 ranks × 1; buckets of 40,000 values: the projector's ~66 K values in 2 buckets
        for (int w : new int[]{2, 4}) {
            Path out = tmp.resolve("w" + w);
            DdpRuns.Result r = DdpRuns.cli(ranks(DdpRuns.flags(data, out, false, 4 / w, 1, 3), w, config(tmp, 1, 40_000)));
            assertEquals(0, r.code(), r.output());
            assertTrue(r.output().contains("ZeRO stage 1: " + w + " ranks"), r.output());
            DdpRuns.assertSameLosses(DdpRuns.log(tmp.resolve("one")), DdpRuns.log(out), 1e-5);
            DdpRuns.assertSameTensors(DdpRuns.written(tmp.resolve("one"), false), DdpRuns.written(out, false), 1e-5);
            long projector = 0;
            for (Map.Entry<String, HostTensor> e : TestData.tensors(TestData.tinyLlava().resolve("model.safetensors")).entrySet())
                if (e.getKey().startsWith("multi_modal_projector.")) projector += 4 * e.getValue().numel();
            for (JsonNode step : DdpRuns.log(out)) { // the projector's gradients reduced and its values gathered, padded to W parts
                long grad = step.get("allreduce_grad_bytes").asLong(), params = step.get("allgather_param_bytes").asLong();
                assertTrue(grad >= projector && grad < projector + 2 * 4 * w, grad + " vs " + projector);
                assertEquals(grad, params);
            }
        }
    }

    /** Stage 2 of LLaVA (projector + LLM): ZeRO-2 with 2 and 4 ranks and accumulation, 2 × 2 × 2 = 4 × 1 × 2 = 1 × 4 × 2 … */
    @Test
    void zero2ProjectorAndLlmWithAccumulationEqualsOneProcess(@TempDir Path tmp) throws Exception {
        Path data = DdpRuns.data(tmp, true);
        DdpRuns.Result one = DdpRuns.cli(DdpRuns.flags(data, tmp.resolve("one"), true, 4, 2, 2));
        assertEquals(0, one.code(), one.output());
        for (int w : new int[]{2, 4}) {
            Path out = tmp.resolve("w" + w);
            DdpRuns.Result r = DdpRuns.cli(ranks(DdpRuns.flags(data, out, true, 4 / w, 2, 2), w, config(tmp, 2, 30_000)));
            assertEquals(0, r.code(), r.output());
            assertTrue(r.output().contains("ZeRO stage 2: " + w + " ranks"), r.output());
            DdpRuns.assertSameLosses(DdpRuns.log(tmp.resolve("one")), DdpRuns.log(out), 1e-5);
            DdpRuns.assertSameTensors(DdpRuns.written(tmp.resolve("one"), true), DdpRuns.written(out, true), 1e-5);
            for (JsonNode step : DdpRuns.log(out)) assertTrue(step.get("reduce_scatter_grad_bytes").asLong() > 0, step.toString());
        }
    }
}
