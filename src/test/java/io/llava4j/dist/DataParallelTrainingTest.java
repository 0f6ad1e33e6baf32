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
 * {@code llava4j train --nproc_per_node 2} (two JVMs, Gloo over loopback) against one process with the global batch:
 * the same per-step losses and weights, stage 1 and stage 2; and in stage 1 only the projector's gradients are
 * communicated.
 */
class DataParallelTrainingTest {

    @Test
    void stage1TwoRanksEqualOneProcessWithTheGlobalBatch(@TempDir Path tmp) throws Exception {
        Path data = DdpRuns.data(tmp, false);
        // 7 samples, global batch 4: the epoch's second micro-batch holds 3 (rank 1 gets 1); 4 steps = 2 epochs
        DdpRuns.Result one = DdpRuns.cli(DdpRuns.flags(data, tmp.resolve("one"), false, 4, 1, 4));
        assertEquals(0, one.code(), one.output());
        List<String> two = DdpRuns.flags(data, tmp.resolve("two"), false, 2, 1, 4);
        two.addAll(List.of("--nproc_per_node", "2", "--master_port", String.valueOf(DdpRuns.freePort()), "--ddp_timeout", "60"));
        DdpRuns.Result r = DdpRuns.cli(two);
        assertEquals(0, r.code(), r.output());

        DdpRuns.assertSameLosses(DdpRuns.log(tmp.resolve("one")), DdpRuns.log(tmp.resolve("two")), 1e-5);
        DdpRuns.assertSameTensors(DdpRuns.written(tmp.resolve("one"), false), DdpRuns.written(tmp.resolve("two"), false), 1e-5);

        // communicated each step: the projector's fp32 gradients and nothing of the frozen tower or LLM
        Map<String, HostTensor> model = TestData.tensors(TestData.tinyLlava().resolve("model.safetensors"));
        long projector = 0, frozen = 0;
        for (Map.Entry<String, HostTensor> e : model.entrySet()) {
            long n = 1;
            for (long d : e.getValue().shape()) n *= d;
            if (e.getKey().startsWith("multi_modal_projector.")) projector += n * 4;
            else frozen += n * 4;
        }
        for (JsonNode step : DdpRuns.log(tmp.resolve("two"))) {
            assertEquals(projector, step.get("allreduce_grad_bytes").asLong(), "gradient bytes of step " + step.get("step"));
            // token counts (8 B a micro-batch), a flag per trainable tensor and one more (4 B each), the loss (8 B)
            assertEquals(8 + (4 + 1) * 4 + 8, step.get("allreduce_other_bytes").asLong());
        }
        assertTrue(r.output().contains(String.format("each step all-reduces %,d B of gradients (projector %,d B)", projector, projector)), r.output());
        assertTrue(r.output().contains("never the frozen parts (vision, llm.embed, llm.layers, llm.norm, llm.lm_head)"), r.output());
        assertTrue(frozen > 10 * projector);
        // rank 0 alone logs and writes
        assertFalse(Files.exists(tmp.resolve("two").resolve("log-rank1.jsonl")));
    }

    @Test
    void stage2TwoRanksWithAccumulationEqualOneProcessWithTheGlobalBatch(@TempDir Path tmp) throws Exception {
        Path data = DdpRuns.data(tmp, true);
        // global batch 2 × 2 accumulation: 2 steps an epoch; text-only and image records mixed in micro-batches
        DdpRuns.Result one = DdpRuns.cli(DdpRuns.flags(data, tmp.resolve("one"), true, 2, 2, 3));
        assertEquals(0, one.code(), one.output());
        List<String> two = new ArrayList<>(DdpRuns.flags(data, tmp.resolve("two"), true, 1, 2, 3));
        // ~100 KiB buckets: the 580 KiB of gradients go in several, started during the last micro-batch's backward
        two.addAll(List.of("--nproc_per_node", "2", "--master_port", String.valueOf(DdpRuns.freePort()), "--ddp_timeout", "60",
                "--ddp_bucket_cap_mb", "0.1"));
        DdpRuns.Result r = DdpRuns.cli(two);
        assertEquals(0, r.code(), r.output());
        DdpRuns.assertSameLosses(DdpRuns.log(tmp.resolve("one")), DdpRuns.log(tmp.resolve("two")), 1e-5);
        DdpRuns.assertSameTensors(DdpRuns.written(tmp.resolve("one"), true), DdpRuns.written(tmp.resolve("two"), true), 1e-5);
        assertTrue(r.output().contains("in 5 bucket(s)"), r.output());
        for (JsonNode step : DdpRuns.log(tmp.resolve("two")))
            assertTrue(step.get("buckets_started_in_backward").asLong() >= 4, "overlapped buckets of step " + step.get("step") + ": " + step);
    }

    /** OneVision (SigLIP + Qwen2 + AnyRes tiles of different counts per rank) in stage 2: two ranks equal one process. */
    @Test
    void onevisionStage2TwoRanksEqualOneProcess(@TempDir Path tmp) throws Exception {
        Path ref = TestData.onevision();
        java.util.function.BiFunction<Path, Integer, List<String>> flags = (out, batch) -> new ArrayList<>(List.of("train",
                "--model_name_or_path", ref.resolve("tiny-onevision").toString(), "--version", "qwen_1_5",
                "--data_path", ref.resolve("tiny-data/stage2.json").toString(), "--image_folder", ref.resolve("tiny-data/images").toString(),
                "--mm_tunable_parts", "mm_mlp_adapter,mm_language_model", "--per_device_train_batch_size", String.valueOf(batch),
                "--max_steps", "2", "--learning_rate", "1e-3", "--lr_scheduler_type", "constant", "--weight_decay", "0",
                "--max_grad_norm", "0", "--logging_steps", "1", "--output_dir", out.toString()));
        DdpRuns.Result one = DdpRuns.cli(flags.apply(tmp.resolve("one"), 2));
        assertEquals(0, one.code(), one.output());
        List<String> two = flags.apply(tmp.resolve("two"), 1);
        two.addAll(List.of("--nproc_per_node", "2", "--master_port", String.valueOf(DdpRuns.freePort()), "--ddp_timeout", "60"));
        DdpRuns.Result r = DdpRuns.cli(two);
        assertEquals(0, r.code(), r.output());
        DdpRuns.assertSameLosses(DdpRuns.log(tmp.resolve("one")), DdpRuns.log(tmp.resolve("two")), 1e-5);
        DdpRuns.assertSameTensors(DdpRuns.written(tmp.resolve("one"), true), DdpRuns.written(tmp.resolve("two"), true), 1e-4);
    }
}
