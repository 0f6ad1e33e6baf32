package io.llava4j.train;

import io.llava4j.TestData;
import io.llava4j.data.DataException;
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
 * The flag lists of LLaVA's own scripts (scripts/v1_5/pretrain.sh, finetune.sh, finetune_task.sh; scripts/pretrain.sh,
 * finetune.sh), verbatim but for their paths, run through {@code llava4j train} and chained stage 1 → stage 2 through
 * the stage-1 output's {@code mm_projector.bin}, as the scripts chain.
 */
class LlavaScriptsChainTest {
    static final String V15_PRETRAIN = "--deepspeed ./scripts/zero2.json --model_name_or_path LLAMA --version plain"
            + " --data_path PRETRAIN_JSON --image_folder IMAGES --vision_tower CLIP"
            + " --mm_projector_type mlp2x_gelu --tune_mm_mlp_adapter True --mm_vision_select_layer -2 --mm_use_im_start_end False"
            + " --mm_use_im_patch_token False --bf16 True --output_dir OUT --num_train_epochs 1"
            + " --per_device_train_batch_size 32 --per_device_eval_batch_size 4 --gradient_accumulation_steps 1"
            + " --evaluation_strategy no --save_strategy steps --save_steps 24000 --save_total_limit 1 --learning_rate 1e-3"
            + " --weight_decay 0. --warmup_ratio 0.03 --lr_scheduler_type cosine --logging_steps 1 --tf32 True"
            + " --model_max_length 2048 --gradient_checkpointing True --dataloader_num_workers 4 --lazy_preprocess True --report_to wandb";
    static final String V15_FINETUNE = "--deepspeed ./scripts/zero3.json --model_name_or_path LLAMA --version v1"
            + " --data_path FINETUNE_JSON --image_folder IMAGES --vision_tower CLIP --pretrain_mm_mlp_adapter ADAPTER"
            + " --mm_projector_type mlp2x_gelu --mm_vision_select_layer -2 --mm_use_im_start_end False --mm_use_im_patch_token False"
            + " --image_aspect_ratio pad --group_by_modality_length True --bf16 True --output_dir OUT --num_train_epochs 1"
            + " --per_device_train_batch_size 16 --per_device_eval_batch_size 4 --gradient_accumulation_steps 1"
            + " --evaluation_strategy no --save_strategy steps --save_steps 50000 --save_total_limit 1 --learning_rate 2e-5"
            + " --weight_decay 0. --warmup_ratio 0.03 --lr_scheduler_type cosine --logging_steps 1 --tf32 True"
            + " --model_max_length 2048 --gradient_checkpointing True --dataloader_num_workers 4 --lazy_preprocess True --report_to wandb";
    /** finetune_task.sh: as finetune.sh, from a finished LLaVA and without --pretrain_mm_mlp_adapter. */
    static final String V15_FINETUNE_TASK = V15_FINETUNE.replace(" --pretrain_mm_mlp_adapter ADAPTER", "");
    /** scripts/v1_5/finetune_lora.sh: finetune.sh's flags with LoRA on the LLM and the projector at its own lr. */
    static final String V15_FINETUNE_LORA = "--lora_enable True --lora_r 128 --lora_alpha 256 --mm_projector_lr 2e-5"
            + " --deepspeed ./scripts/zero3.json --model_name_or_path LLAMA --version v1"
            + " --data_path FINETUNE_JSON --image_folder IMAGES --vision_tower CLIP --pretrain_mm_mlp_adapter ADAPTER"
            + " --mm_projector_type mlp2x_gelu --mm_vision_select_layer -2 --mm_use_im_start_end False --mm_use_im_patch_token False"
            + " --image_aspect_ratio pad --group_by_modality_length True --bf16 True --output_dir OUT --num_train_epochs 1"
            + " --per_device_train_batch_size 16 --per_device_eval_batch_size 4 --gradient_accumulation_steps 1"
            + " --evaluation_strategy no --save_strategy steps --save_steps 50000 --save_total_limit 1 --learning_rate 2e-4"
            + " --weight_decay 0. --warmup_ratio 0.03 --lr_scheduler_type cosine --logging_steps 1 --tf32 True"
            + " --model_max_length 2048 --gradient_checkpointing True --dataloader_num_workers 4 --lazy_preprocess True --report_to wandb";
    /** scripts/v1_5/finetune_task_lora.sh: as finetune_lora.sh, from a finished LLaVA and without --pretrain_mm_mlp_adapter. */
    static final String V15_FINETUNE_TASK_LORA = V15_FINETUNE_LORA.replace(" --pretrain_mm_mlp_adapter ADAPTER", "");
    static final String OLD_PRETRAIN = "--deepspeed /path/to/deepspeed.json --model_name_or_path LLAMA --version VERSION"
            + " --data_path PRETRAIN_JSON --image_folder IMAGES --vision_tower CLIP --tune_mm_mlp_adapter True"
            + " --mm_vision_select_layer -2 --mm_use_im_start_end False --mm_use_im_patch_token False --bf16 True --output_dir OUT"
            + " --num_train_epochs 1 --per_device_train_batch_size 16 --per_device_eval_batch_size 4 --gradient_accumulation_steps 1"
            + " --evaluation_strategy no --save_strategy steps --save_steps 24000 --save_total_limit 1 --learning_rate 2e-3"
            + " --weight_decay 0. --warmup_ratio 0.03 --lr_scheduler_type cosine --logging_steps 1 --tf32 True --model_max_length 2048"
            + " --gradient_checkpointing True --dataloader_num_workers 4 --lazy_preprocess True --report_to wandb";
    static final String OLD_FINETUNE = "--deepspeed /path/to/deepspeed.json --model_name_or_path LLAMA --version VERSION"
            + " --data_path FINETUNE_JSON --image_folder IMAGES --vision_tower CLIP --pretrain_mm_mlp_adapter ADAPTER"
            + " --mm_vision_select_layer -2 --mm_use_im_start_end False --mm_use_im_patch_token False --bf16 True --output_dir OUT"
            + " --num_train_epochs 1 --per_device_train_batch_size 16 --per_device_eval_batch_size 4 --gradient_accumulation_steps 1"
            + " --evaluation_strategy no --save_strategy steps --save_steps 50000 --save_total_limit 1 --learning_rate 2e-5"
            + " --weight_decay 0. --warmup_ratio 0.03 --lr_scheduler_type cosine --logging_steps 1 --tf32 True --model_max_length 2048"
            + " --gradient_checkpointing True --dataloader_num_workers 4 --lazy_preprocess True --report_to wandb";

    static List<String> flags(String script, Path llama, Path clip, Path out, Path adapter, String version) {
        String s = script.replace("LLAMA", llama.toString()).replace("CLIP", clip.toString()).replace("OUT", out.toString())
                .replace("IMAGES", TestData.tinyData().resolve("images").toString())
                .replace("PRETRAIN_JSON", TestData.tinyData().resolve("pretrain.json").toString())
                .replace("FINETUNE_JSON", TestData.tinyData().resolve("finetune.json").toString())
                .replace("VERSION", version == null ? "" : version)
                // LLaVA's DeepSpeed files as shipped (in one process they only check the flags)
                .replace("./scripts/zero2.json", TestData.deepspeed("zero2.json").toString())
                .replace("./scripts/zero3.json", TestData.deepspeed("zero3.json").toString())
                .replace("/path/to/deepspeed.json", TestData.deepspeed("zero2.json").toString());
        if (adapter != null) s = s.replace("ADAPTER", adapter.toString());
        return new ArrayList<>(List.of(s.split(" ")));
    }

    @Test
    void v15ScriptsChainPretrainFinetuneAndTask(@TempDir Path tmp) throws Exception {
        Path[] lc = FromLlamaAndClipTest.split(tmp);
        Path s1 = tmp.resolve("pretrain"), s2 = tmp.resolve("finetune"), s3 = tmp.resolve("task");
        Trainer p = TrainRuns.run(flags(V15_PRETRAIN, lc[0], lc[1], s1, null, null));
        assertEquals(1, p.losses().size(), "one epoch of one batch");
        assertTrue(Files.isRegularFile(s1.resolve("mm_projector.bin")));
        Trainer f = TrainRuns.run(flags(V15_FINETUNE, lc[0], lc[1], s2, s1.resolve("mm_projector.bin"), null));
        assertEquals(1, f.losses().size());
        assertTrue(f.losses().get(0) > 0, "v1 samples are supervised");
        // the finetuned projector started from stage 1's: the .bin the script names was read
        Map<String, HostTensor> stage1 = TestData.tensors(s1.resolve("mm_projector.safetensors"));
        assertFalse(stage1.isEmpty());
        assertTrue(Files.isRegularFile(s2.resolve("config.json")));
        // finetune_task.sh: from the finished model of stage 2, its own tower and projector kept
        Path clipOfS2 = Files.isDirectory(s2.resolve("vision_tower")) ? s2.resolve("vision_tower") : lc[1];
        Trainer t = TrainRuns.run(flags(V15_FINETUNE_TASK, s2, clipOfS2, s3, null, null));
        assertEquals(1, t.losses().size());
    }

    /**
     * finetune.sh's flags with its scripts/zero3.json on 2 ranks (only paths changed, plus the launcher's flags): ZeRO
     * stage 3 runs them, and the saved model is one consolidated folder holding every LLM tensor whole (the one step's
     * learning rate is 0 after warmup_ratio's rounding: each tensor gathered from the two partitions equals the input's).
     */
    @Test
    void v15FinetuneRunsUnderZero3OnTwoRanks(@TempDir Path tmp) throws Exception {
        Path[] lc = FromLlamaAndClipTest.split(tmp);
        Path s1 = tmp.resolve("pretrain"), s2 = tmp.resolve("finetune");
        TrainRuns.run(flags(V15_PRETRAIN, lc[0], lc[1], s1, null, null));
        List<String> f = flags(V15_FINETUNE, lc[0], lc[1], s2, s1.resolve("mm_projector.bin"), null);
        int port;
        try (java.net.ServerSocket sock = new java.net.ServerSocket(0)) {
            port = sock.getLocalPort();
        }
        f.add(0, "train");
        f.addAll(List.of("--nproc_per_node", "2", "--master_port", String.valueOf(port), "--ddp_timeout", "60"));
        java.io.ByteArrayOutputStream buf = new java.io.ByteArrayOutputStream();
        java.io.PrintStream out = System.out;
        System.setOut(new java.io.PrintStream(buf, true, java.nio.charset.StandardCharsets.UTF_8));
        int code;
        try {
            code = io.llava4j.cli.Main.run(f.toArray(new String[0]));
        } finally {
            System.setOut(out);
        }
        String s = buf.toString(java.nio.charset.StandardCharsets.UTF_8);
        assertEquals(0, code, s);
        assertTrue(s.contains("ZeRO stage 3: 2 ranks"), s);
        Map<String, HostTensor> saved = new java.util.HashMap<>();
        try (java.util.stream.Stream<Path> files = Files.list(s2)) {
            for (Path p : files.filter(p -> p.toString().endsWith(".safetensors")).toList()) saved.putAll(TestData.tensors(p));
        }
        Map<String, HostTensor> llama = TestData.tensors(lc[0].resolve("model.safetensors"));
        for (Map.Entry<String, HostTensor> e : llama.entrySet()) {
            HostTensor t = saved.get(e.getKey());
            assertNotNull(t, e.getKey() + " saved");
            assertArrayEquals(e.getValue().shape(), t.shape(), e.getKey());
            // warmup_ratio 0.03 of one step: its learning rate is 0, so every gathered value is the input's as --bf16 True
            // loaded it (matrices rounded to bf16, vectors kept in fp32; then fp32 master weights)
            float[] want = e.getValue().toFloats();
            if (e.getValue().shape().length >= 2) for (int i = 0; i < want.length; i++) want[i] = bf16(want[i]);
            assertArrayEquals(want, t.toFloats(), e.getKey());
        }
    }

    /** {@code f} rounded to bfloat16 (to nearest, ties to even), as a float. */
    static float bf16(float f) {
        int b = Float.floatToRawIntBits(f);
        return Float.intBitsToFloat((b + 0x7FFF + ((b >>> 16) & 1)) & 0xFFFF0000);
    }

    @Test
    void v15LoraScriptsChainWithMerges(@TempDir Path tmp) throws Exception {
        Path[] lc = FromLlamaAndClipTest.split(tmp);
        Path s1 = tmp.resolve("pretrain"), lora = tmp.resolve("lora"), merged = tmp.resolve("merged");
        TrainRuns.run(flags(V15_PRETRAIN, lc[0], lc[1], s1, null, null));
        Trainer f = TrainRuns.run(flags(V15_FINETUNE_LORA, lc[0], lc[1], lora, s1.resolve("mm_projector.bin"), null));
        assertEquals(1, f.losses().size());
        assertTrue(f.losses().get(0) > 0);
        com.fasterxml.jackson.databind.JsonNode cfg = new com.fasterxml.jackson.databind.ObjectMapper()
                .readTree(lora.resolve("adapter_config.json").toFile());
        assertEquals(128, cfg.get("r").asInt());
        assertEquals(256, cfg.get("lora_alpha").asInt());
        assertEquals(0.05, cfg.get("lora_dropout").asDouble(), "LLaVA's default --lora_dropout");
        Map<String, HostTensor> adapter = TestData.tensors(lora.resolve("adapter_model.safetensors"));
        assertTrue(adapter.containsKey("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"), adapter.keySet().toString());
        assertTrue(adapter.keySet().stream().noneMatch(k -> k.contains("vision")), "no adapter in the CLIP tower");
        assertEquals(java.util.Set.of("base_model.model.model.mm_projector.0.weight", "base_model.model.model.mm_projector.0.bias",
                        "base_model.model.model.mm_projector.2.weight", "base_model.model.model.mm_projector.2.bias"),
                io.llava4j.io.TorchPickleReader.read(lora.resolve("non_lora_trainables.bin")).keySet(), "LLaVA's non_lora_trainables.bin keys");
        for (AdamW.Group g : f.optimizer().groups()) // --mm_projector_lr for the projector, --learning_rate for the adapters
            assertEquals(g.params.keySet().stream().allMatch(n -> n.startsWith("multi_modal_projector.")) ? 2e-5 : 2e-4, g.baseLr, 1e-15, g.name);
        // scripts/merge_lora_weights.py: a plain original-LLaVA folder from the LLaMA base
        assertEquals(0, io.llava4j.cli.Main.run("merge", "--model-path", lora.toString(), "--model-base", lc[0].toString(),
                "--save-model-path", merged.toString()));
        assertTrue(TestData.tensors(merged.resolve("model.safetensors")).keySet().stream().noneMatch(k -> k.contains("lora")));
        // finetune_task_lora.sh from the merged model (its own tower and projector), merged again onto it
        Path task = tmp.resolve("task-lora");
        Trainer t = TrainRuns.run(flags(V15_FINETUNE_TASK_LORA, merged, lc[1], task, null, null));
        assertEquals(1, t.losses().size());
        assertEquals(0, io.llava4j.cli.Main.run("merge", "--lora_path", task.toString(), "--model_name_or_path", merged.toString(),
                "--output_dir", tmp.resolve("merged-task").toString()));
        assertTrue(Files.isRegularFile(tmp.resolve("merged-task").resolve("config.json")));
    }

    @Test
    void olderScriptsChainWithV0PlainThenV1OrLlavaLlama2(@TempDir Path tmp) throws Exception {
        Path[] lc = FromLlamaAndClipTest.split(tmp);
        Path s1 = tmp.resolve("pretrain"), s2 = tmp.resolve("finetune");
        // scripts/pretrain.sh: PROMPT_VERSION=v0_plain (LLaVA's conv_llava_plain, the plain template), no --mm_projector_type (linear)
        Trainer p = TrainRuns.run(flags(OLD_PRETRAIN, lc[0], lc[1], s1, null, "v0_plain"));
        assertEquals(1, p.losses().size());
        assertEquals(java.util.Set.of("model.mm_projector.weight", "model.mm_projector.bias"),
                TestData.tensors(s1.resolve("mm_projector.safetensors")).keySet(), "a linear projector, LLaVA's default");
        // scripts/finetune.sh, VICUNA block: PROMPT_VERSION=v1
        Trainer f = TrainRuns.run(flags(OLD_FINETUNE, lc[0], lc[1], s2, s1.resolve("mm_projector.bin"), "v1"));
        assertEquals(1, f.losses().size());
        assertTrue(f.losses().get(0) > 0);
        // LLaMA-2 block: PROMPT_VERSION=llava_llama_2
        Trainer l2 = TrainRuns.run(flags(OLD_FINETUNE, lc[0], lc[1], tmp.resolve("l2"), s1.resolve("mm_projector.bin"), "llava_llama_2"));
        assertEquals(1, l2.losses().size());
        assertTrue(l2.losses().get(0) > 0, "llava_llama_2 samples are supervised");
        assertNotEquals(f.losses().get(0), l2.losses().get(0), "another prompt than v1's");
        // a --version that is not in LLaVA's conv_templates (its train.py silently trains vicuna_v1) is refused by name before any weight is read
        DataException e = assertThrows(DataException.class,
                () -> TrainRuns.run(flags(OLD_FINETUNE, lc[0], lc[1], tmp.resolve("v05"), s1.resolve("mm_projector.bin"), "v0.5")));
        assertTrue(e.getMessage().contains("v0.5"), e.getMessage());
    }
}
