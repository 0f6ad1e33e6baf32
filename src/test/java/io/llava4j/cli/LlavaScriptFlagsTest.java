package io.llava4j.cli;

import io.llava4j.train.TrainArgs;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** The flags of LLaVA's scripts/v1_5/pretrain.sh parse with their meanings; the inapplicable ones are named, not dropped. */
class LlavaScriptFlagsTest {
    static final String PRETRAIN_SH = "--deepspeed ./scripts/zero2.json --model_name_or_path lmsys/vicuna-13b-v1.5 --version plain"
            + " --data_path blip_laion_cc_sbu_558k.json --image_folder images --vision_tower openai/clip-vit-large-patch14-336"
            + " --mm_projector_type mlp2x_gelu --tune_mm_mlp_adapter True --mm_vision_select_layer -2 --mm_use_im_start_end False"
            + " --mm_use_im_patch_token False --bf16 True --output_dir ./checkpoints/llava-v1.5-13b-pretrain --num_train_epochs 1"
            + " --per_device_train_batch_size 32 --per_device_eval_batch_size 4 --gradient_accumulation_steps 1"
            + " --evaluation_strategy no --save_strategy steps --save_steps 24000 --save_total_limit 1 --learning_rate 1e-3"
            + " --weight_decay 0. --warmup_ratio 0.03 --lr_scheduler_type cosine --logging_steps 1 --tf32 True"
            + " --model_max_length 2048 --gradient_checkpointing True --dataloader_num_workers 4 --lazy_preprocess True --report_to wandb";

    @Test
    void pretrainScriptParses() {
        TrainArgs a = TrainCommand.parse(PRETRAIN_SH.replace("./scripts/zero2.json", io.llava4j.TestData.deepspeed("zero2.json").toString()).split(" "));
        assertTrue(a.tuneMmMlpAdapter());
        assertEquals("mlp2x_gelu", a.mmProjectorType());
        assertEquals(-2, a.mmVisionSelectLayer());
        assertEquals(1e-3, a.learningRate());
        assertEquals("cosine", a.lrSchedulerType());
        assertEquals(0.03, a.warmupRatio());
        assertEquals(24000, a.saveSteps());
        assertEquals(1, a.saveTotalLimit());
        assertEquals(32, a.perDeviceTrainBatchSize());
        // every flag accepted without effect, and bf16 (how it runs here), is named in the run's notes, once
        List<String> noted = a.notes().stream().map(n -> n.substring(0, n.indexOf(' '))).toList();
        assertEquals(List.of("--bf16", "--mm_use_im_start_end", "--mm_use_im_patch_token", "--evaluation_strategy", "--tf32",
                "--lazy_preprocess", "--per_device_eval_batch_size", "--report_to"), noted, a.notes().toString());
        assertEquals(2, a.deepspeed().stage(), "zero2.json as shipped: ZeRO stage 2, its \"auto\" values from the flags");
        assertEquals(4, a.dataloaderNumWorkers()); // samples prepared ahead on 4 threads, no longer only noted
        assertEquals(io.llava4j.nn.Precision.BF16, a.precision());
        assertTrue(a.gradientCheckpointing());
        assertEquals(5_000_000_000L, a.saveMaxShardBytes()); // HF's default max_shard_size
    }

    @Test
    void valuesThatWouldChangeResultsAreErrors() {
        List<String> base = new ArrayList<>(List.of("--model_name_or_path", "m", "--data_path", "d", "--output_dir", "o"));
        for (String[] bad : new String[][]{{"--mm_use_im_start_end", "True"}, {"--evaluation_strategy", "steps"}, {"--save_strategy", "epoch"}}) {
            List<String> f = new ArrayList<>(base);
            f.addAll(List.of(bad));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TrainCommand.parse(f.toArray(new String[0])));
            assertTrue(e.getMessage().contains(bad[0]), e.getMessage());
        }
        List<String> f = new ArrayList<>(base);
        f.addAll(List.of("--save_strategy", "no", "--save_steps", "10"));
        assertEquals(0, TrainCommand.parse(f.toArray(new String[0])).saveSteps());
    }

    @Test
    void finetuneLoraScriptParsesToALoraSpec() {
        String sh = "--lora_enable True --lora_r 128 --lora_alpha 256 --mm_projector_lr 2e-5 --deepspeed " + io.llava4j.TestData.deepspeed("zero2.json")
                + " --model_name_or_path lmsys/vicuna-13b-v1.5 --version v1 --data_path mix665k.json --image_folder data"
                + " --vision_tower openai/clip-vit-large-patch14-336 --pretrain_mm_mlp_adapter mm_projector.bin --output_dir out";
        TrainArgs a = TrainCommand.parse(sh.split(" "));
        assertEquals(new io.llava4j.train.LoraSpec(128, 256, 0.05, io.llava4j.train.LoraSpec.LLAVA_TARGETS, null), a.lora());
        assertEquals(2.0, a.lora().scale());
        assertEquals(2e-5, a.mmProjectorLr());
        assertNull(TrainCommand.parse(sh.replace("--lora_enable True", "--lora_enable False").split(" ")).lora(),
                "LLaVA ignores --lora_r without --lora_enable");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> TrainCommand.parse((sh + " --lora_bias all").split(" ")));
        assertTrue(e.getMessage().contains("--lora_bias"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> TrainCommand.parse((sh + " --lora_dropout 1").split(" ")));
        assertTrue(e.getMessage().contains("--lora_dropout"), e.getMessage());
    }
}
