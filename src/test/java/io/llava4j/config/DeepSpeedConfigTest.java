package io.llava4j.config;

import io.llava4j.TestData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** LLaVA's DeepSpeed files read as shipped; "auto" filled from the flags as HF fills it; what would change results refused by name. */
class DeepSpeedConfigTest {
    /** pretrain.sh's flags: batch 32, accumulation 1, --bf16 True, lr 1e-3, default clipping and AdamW. */
    static DeepSpeedConfig.Flags flags(int world) {
        return new DeepSpeedConfig.Flags(32, 1, world, 1.0, 1e-3, 0.9, 0.999, 1e-8, 0.0, true, false, false);
    }

    @Test
    void zero2AsShippedIsStage2WithAutoBuckets() {
        DeepSpeedConfig c = DeepSpeedConfig.read(TestData.deepspeed("zero2.json"), flags(8));
        assertEquals(2, c.stage());
        assertEquals(-1, c.reduceBucketSize(), "auto");
        assertEquals(4096L * 4096, c.reduceBucketElements(4096), "HF fills reduce_bucket_size with hidden_size²");
        assertTrue(c.overlapComm());
        assertTrue(c.contiguousGradients());
        assertFalse(c.optimizerBlock());
        assertEquals("none", c.offloadOptimizer());
        String notes = String.join("\n", c.notes());
        assertTrue(notes.contains("zero_optimization.sub_group_size") && notes.contains("zero_optimization.contiguous_gradients"), notes);
        assertFalse(notes.contains("overlap_comm"), "stage 2 overlaps its reduce-scatter with the backward: " + notes);
    }

    @Test
    void zero3AsShippedIsStage3WithItsTuningKeysNoted() {
        DeepSpeedConfig c = DeepSpeedConfig.read(TestData.deepspeed("zero3.json"), flags(8));
        assertEquals(3, c.stage());
        assertTrue(c.gatherWeightsOnSave());
        assertEquals(-1, c.reduceBucketSize(), "auto");
        String notes = String.join("\n", c.notes());
        for (String k : List.of("stage3_prefetch_bucket_size", "stage3_param_persistence_threshold", "stage3_max_live_parameters",
                "stage3_max_reuse_distance", "sub_group_size"))
            assertTrue(notes.contains("zero_optimization." + k), k + ": " + notes);
        assertTrue(notes.contains("ZeRO stage 3: decoder layers are recomputed"), notes);
        assertFalse(notes.contains("consolidated into one folder anyway"), "the file gathers on save: " + notes);
        assertTrue(c.describe().contains("parameters partitioned"), c.describe());
    }

    /** zero3_offload.json: stage 3 and the cpu offload are accepted; only its WarmupLR scheduler block is refused, by name. */
    @Test
    void zero3OffloadIsRefusedOnlyForItsScheduler(@TempDir Path tmp) throws Exception {
        ConfigException e = assertThrows(ConfigException.class, () -> DeepSpeedConfig.read(TestData.deepspeed("zero3_offload.json"), flags(8)));
        assertTrue(e.getMessage().contains("scheduler 'WarmupLR'"), e.getMessage());
        assertFalse(e.getMessage().contains("stage"), e.getMessage());
        com.fasterxml.jackson.databind.node.ObjectNode root = (com.fasterxml.jackson.databind.node.ObjectNode)
                new com.fasterxml.jackson.databind.ObjectMapper().readTree(TestData.deepspeed("zero3_offload.json").toFile());
        root.remove("scheduler");
        Path f = tmp.resolve("zero3_offload_no_scheduler.json");
        java.nio.file.Files.writeString(f, root.toString());
        DeepSpeedConfig c = DeepSpeedConfig.read(f, flags(8));
        assertEquals(3, c.stage());
        assertEquals("cpu", c.offloadParam());
        assertTrue(c.gatherWeightsOnSave(), "gather_16bit_weights_on_model_save, the newer name");
        // without the gather on save the model is consolidated anyway, and the note says so
        ((com.fasterxml.jackson.databind.node.ObjectNode) root.get("zero_optimization")).put("gather_16bit_weights_on_model_save", false);
        java.nio.file.Files.writeString(f, root.toString());
        assertTrue(String.join("\n", DeepSpeedConfig.read(f, flags(8)).notes()).contains("consolidated into one folder anyway"));
    }

    @Test
    void explicitValuesMustMatchTheFlags(@TempDir Path tmp) throws Exception {
        Path f = tmp.resolve("ds.json");
        Files.writeString(f, """
                {"train_micro_batch_size_per_gpu": 16, "gradient_accumulation_steps": "auto", "train_batch_size": "auto",
                 "gradient_clipping": 0.5, "bf16": {"enabled": false}, "zero_optimization": {"stage": 1, "reduce_bucket_size": 5e8}}""");
        ConfigException e = assertThrows(ConfigException.class, () -> DeepSpeedConfig.read(f, flags(2)));
        assertTrue(e.getMessage().contains("train_micro_batch_size_per_gpu=16 vs --per_device_train_batch_size=32"), e.getMessage());
        assertTrue(e.getMessage().contains("gradient_clipping=0.5 vs --max_grad_norm=1.0"), e.getMessage());
        assertTrue(e.getMessage().contains("bf16.enabled=false vs --bf16 True"), e.getMessage());
        assertTrue(e.getMessage().contains(f.toString()), e.getMessage());
        // DeepSpeed's own batch check: 64 = 32 × 1 × 2 passes, 96 does not
        Files.writeString(f, "{\"train_batch_size\": 64, \"zero_optimization\": {\"stage\": 1, \"reduce_bucket_size\": 5e8}}");
        DeepSpeedConfig ok = DeepSpeedConfig.read(f, flags(2));
        assertEquals(1, ok.stage());
        assertEquals(500_000_000L, ok.reduceBucketElements(4096));
        e = assertThrows(ConfigException.class, () -> DeepSpeedConfig.read(f, flags(3)));
        assertTrue(e.getMessage().contains("train_batch_size=64 vs --train_batch_size (world 3"), e.getMessage());
    }

    @Test
    void keysThatChangeResultsAreRefusedByName(@TempDir Path tmp) throws Exception {
        Path f = tmp.resolve("ds.json");
        Files.writeString(f, """
                {"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "nvme"}, "zero_quantized_gradients": true,
                  "reduce_bucket_sise": 5e8},
                 "communication_data_type": "bf16", "optimizer": {"type": "Lamb", "params": {}}, "gradient_accumulation_step": 2}""");
        ConfigException e = assertThrows(ConfigException.class, () -> DeepSpeedConfig.read(f, flags(2)));
        for (String k : new String[]{"offload_optimizer.device 'nvme'", "zero_quantized_gradients", "unknown key 'zero_optimization.reduce_bucket_sise'",
                "communication_data_type 'bf16'", "optimizer 'Lamb'", "unknown key 'gradient_accumulation_step'"})
            assertTrue(e.getMessage().contains(k), k + " in " + e.getMessage());
    }

    @Test
    void anAdamWBlockIsMatchedAndDecaysEveryTensor(@TempDir Path tmp) throws Exception {
        Path f = tmp.resolve("ds.json");
        Files.writeString(f, """
                {"optimizer": {"type": "AdamW", "params": {"lr": "auto", "betas": [0.9, 0.95], "eps": "auto", "weight_decay": "auto"}},
                 "zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu", "pin_memory": true}}}""");
        ConfigException e = assertThrows(ConfigException.class, () -> DeepSpeedConfig.read(f, flags(2)));
        assertTrue(e.getMessage().contains("betas=[0.9,0.95] vs --adam_beta1 0.9 --adam_beta2 0.999"), e.getMessage());
        Files.writeString(f, Files.readString(f).replace("[0.9, 0.95]", "\"auto\""));
        DeepSpeedConfig c = DeepSpeedConfig.read(f, flags(2));
        assertTrue(c.optimizerBlock());
        assertEquals("cpu", c.offloadOptimizer());
        assertTrue(String.join("\n", c.notes()).contains("states are in host memory already"), c.notes().toString());
        DeepSpeedConfig.Flags perPartLr = new DeepSpeedConfig.Flags(32, 1, 2, 1.0, 1e-3, 0.9, 0.999, 1e-8, 0.0, true, false, true);
        e = assertThrows(ConfigException.class, () -> DeepSpeedConfig.read(f, perPartLr));
        assertTrue(e.getMessage().contains("--mm_projector_lr"), e.getMessage());
    }
}
