package io.llava4j.config;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * {@code --deepspeed FILE}: DeepSpeed's JSON config as LLaVA's scripts ship it ({@code scripts/zero2.json},
 * {@code zero3.json}, {@code zero3_offload.json}), read once and checked against the training flags as Hugging Face's
 * Trainer integration checks it: every {@code "auto"} is filled from the flags ({@code train_micro_batch_size_per_gpu}
 * ← {@code --per_device_train_batch_size}, {@code gradient_accumulation_steps}, {@code train_batch_size} ← world ×
 * micro-batch × accumulation, {@code gradient_clipping} ← {@code --max_grad_norm}, {@code bf16}/{@code fp16}
 * {@code enabled} ← {@code --bf16}/{@code --fp16}, the optimizer block's {@code lr}, {@code betas}, {@code eps},
 * {@code weight_decay}), and an explicit value that differs from its flag is refused (HF's "values that mismatch
 * TrainingArguments"), as is a {@code train_batch_size} that is not micro-batch × accumulation × world (DeepSpeed's own
 * check). {@code reduce_bucket_size: "auto"} becomes the LLM's hidden size squared once the model config is known
 * ({@link #reduceBucketElements}).
 *
 * <p>Keys that would change results and are not implemented are refused by name with the file; keys without effect
 * here (logging, pinned memory, stage-3 tuning knobs of a stage this run does not use, …) are listed in {@link #notes}.
 * Unknown keys are refused: a misspelt key must not pass silently.
 *
 * @param worldSize              the world size the file was checked against ({@code train_batch_size})
 * @param stage                  {@code zero_optimization.stage}: 0 (plain data parallel), 1, 2 or 3
 * @param reduceBucketSize       elements per reduce bucket; -1 = {@code "auto"} (hidden size²)
 * @param overlapComm            {@code overlap_comm} as written: stage 2 reduce-scatters during the backward when true;
 *                               stage 1 always reduces after it (said in {@link #notes})
 * @param offloadOptimizer       {@code offload_optimizer.device}: none or cpu (on the CPU the state is in host memory anyway)
 * @param gatherWeightsOnSave    {@code stage3_gather_16bit_weights_on_model_save} (the saved model is always consolidated)
 * @param optimizerBlock         the file has an {@code optimizer} block: DeepSpeed's AdamW over every trainable tensor in
 *                               one group, so weight decay applies to biases and norms too (HF's no-decay groups and
 *                               LLaVA's {@code --mm_projector_lr} do not apply)
 */
public record DeepSpeedConfig(Path file, int worldSize, int stage, long reduceBucketSize, boolean overlapComm, boolean contiguousGradients,
                              String offloadOptimizer, String offloadParam, boolean gatherWeightsOnSave, boolean optimizerBlock,
                              List<String> notes) {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** The training flags {@code "auto"} values come from, and that explicit values must match. */
    public record Flags(int perDeviceTrainBatchSize, int gradientAccumulationSteps, int worldSize, double maxGradNorm,
                        double learningRate, double adamBeta1, double adamBeta2, double adamEpsilon, double weightDecay,
                        boolean bf16, boolean fp16, boolean projectorOrTowerLr) {}

    /** Top-level keys with no effect on what is computed here. */
    private static final Set<String> NOTED = Set.of("steps_per_print", "wall_clock_breakdown", "memory_breakdown", "dump_state",
            "flops_profiler", "tensorboard", "wandb", "csv_monitor", "comms_logger", "zero_allow_untested_optimizer",
            "zero_force_ds_cpu_optimizer", "aio", "checkpoint", "activation_checkpointing", "prescale_gradients",
            "gradient_predivide_factor", "fp32_allreduce", "autotuning", "elasticity");
    /** Top-level keys that change the computation, each read below (or refused there when set to what is not implemented). */
    private static final Set<String> READ = Set.of("fp16", "bf16", "bfloat16", "train_micro_batch_size_per_gpu", "train_batch_size",
            "gradient_accumulation_steps", "gradient_clipping", "zero_optimization", "optimizer", "scheduler",
            "communication_data_type", "data_types", "amp", "sparse_gradients", "sparse_attention", "pipeline",
            "compression_training", "data_efficiency", "curriculum_learning", "seq_parallel_communication_data_type");
    /** zero_optimization keys with no effect here. */
    private static final Set<String> ZERO_NOTED = Set.of("contiguous_gradients", "reduce_scatter", "allgather_partitions",
            "allgather_bucket_size", "load_from_fp32_weights", "elastic_checkpoint", "sub_group_size",
            "stage3_max_live_parameters", "stage3_max_reuse_distance", "stage3_prefetch_bucket_size",
            "stage3_param_persistence_threshold", "round_robin_gradients", "ignore_unused_parameters", "legacy_stage1",
            "memory_efficient_linear", "use_multi_rank_bucket_allreduce", "log_trace_cache_warnings",
            "stage3_module_granularity_threshold", "module_granularity_threshold", "use_all_reduce_for_fetch_params",
            "pipeline_loading_checkpoint", "override_module_apply", "cpu_offload_use_pin_memory");
    private static final Set<String> ZERO_READ = Set.of("stage", "reduce_bucket_size", "overlap_comm", "offload_optimizer", "offload_param",
            "stage3_gather_16bit_weights_on_model_save", "gather_16bit_weights_on_model_save",
            "stage3_gather_fp16_weights_on_model_save", "zero_quantized_weights", "zero_quantized_gradients",
            "zero_quantized_nontrainable_weights", "zero_hpz_partition_size", "mics_shard_size", "cpu_offload", "cpu_offload_params");

    public DeepSpeedConfig {
        notes = List.copyOf(notes);
    }

    /** Reads and checks {@code file} against {@code flags}; every problem of the file is named in one exception. */
    public static DeepSpeedConfig read(Path file, Flags flags) {
        JsonNode root;
        try {
            root = JSON.readTree(Files.readString(file));
        } catch (IOException e) {
            throw new ConfigException("--deepspeed " + file + ": cannot read it (" + e.getMessage() + ")", e);
        }
        if (root == null || !root.isObject()) throw new ConfigException("--deepspeed " + file + ": not a JSON object");
        return new Reader(file, root, flags).read();
    }

    /** Elements per reduce bucket: the file's, or for {@code "auto"} the LLM's hidden size squared (as HF fills it). */
    public long reduceBucketElements(int hiddenSize) {
        return reduceBucketSize > 0 ? reduceBucketSize : (long) hiddenSize * hiddenSize;
    }

    /** One line for the run's report. */
    public String describe() {
        return String.format(Locale.ROOT, "--deepspeed %s: ZeRO stage %d%s", file, stage,
                stage == 0 ? " (plain data parallel)" : stage == 1 ? " (optimizer state sharded)" : stage == 2 ? " (optimizer state and gradients sharded)"
                        : " (optimizer state, gradients and parameters partitioned)");
    }

    private static final class Reader {
        final Path file;
        final JsonNode root;
        final Flags f;
        final List<String> refused = new ArrayList<>(), mismatched = new ArrayList<>(), notes = new ArrayList<>();

        Reader(Path file, JsonNode root, Flags f) {
            this.file = file;
            this.root = root;
            this.f = f;
        }

        DeepSpeedConfig read() {
            for (Iterator<String> it = root.fieldNames(); it.hasNext(); ) {
                String k = it.next();
                if (NOTED.contains(k)) notes.add(k);
                else if (!READ.contains(k)) refused.add("unknown key '" + k + "'");
            }
            // HF: fill_match of each "auto" or explicit value against the flags
            int train = f.worldSize() * f.perDeviceTrainBatchSize() * f.gradientAccumulationSteps();
            long micro = match("train_micro_batch_size_per_gpu", f.perDeviceTrainBatchSize(), "per_device_train_batch_size");
            long accum = match("gradient_accumulation_steps", f.gradientAccumulationSteps(), "gradient_accumulation_steps");
            long batch = match("train_batch_size", train, "train_batch_size (world " + f.worldSize() + " x micro-batch x accumulation)");
            if (mismatched.isEmpty() && batch != micro * accum * f.worldSize()) // DeepSpeed's own check
                refused.add("train_batch_size " + batch + " is not train_micro_batch_size_per_gpu " + micro
                        + " x gradient_accumulation_steps " + accum + " x world size " + f.worldSize());
            matchDouble(root, "gradient_clipping", f.maxGradNorm(), "max_grad_norm");
            boolean bf16 = enabled(root.has("bf16") ? "bf16" : "bfloat16", f.bf16(), "bf16");
            boolean fp16 = enabled("fp16", f.fp16(), "fp16");
            if (fp16) refused.add("fp16.enabled true: DeepSpeed's fp16 with dynamic loss scaling is not implemented (use bf16)");
            if (bf16 && fp16) refused.add("bf16 and fp16 both enabled");
            enabledOff("amp", "amp (apex) is not implemented");
            enabledOff("sparse_attention", "sparse attention is not implemented");
            enabledOff("compression_training", "compression training is not implemented");
            enabledOff("data_efficiency", "data efficiency (curriculum, data routing) is not implemented");
            enabledOff("curriculum_learning", "curriculum learning is not implemented");
            if (root.has("pipeline")) refused.add("pipeline: pipeline parallelism is not implemented");
            if (root.path("sparse_gradients").asBoolean(false)) refused.add("sparse_gradients true is not implemented");
            for (String k : List.of("communication_data_type", "seq_parallel_communication_data_type"))
                if (root.has(k) && !root.get(k).isNull() && !List.of("fp32", "float32", "float").contains(root.get(k).asText()))
                    refused.add(k + " '" + root.get(k).asText() + "': gradients are communicated in fp32 only");
            JsonNode acc = root.path("data_types").path("grad_accum_dtype");
            if (!acc.isMissingNode() && !acc.isNull() && !List.of("fp32", "float32").contains(acc.asText()))
                refused.add("data_types.grad_accum_dtype '" + acc.asText() + "': gradients accumulate in fp32 only");
            boolean optimizer = optimizer();
            if (root.has("scheduler"))
                refused.add("scheduler '" + root.path("scheduler").path("type").asText("?") + "': DeepSpeed's schedulers (which"
                        + " replace --lr_scheduler_type) are not implemented; remove the block to use --lr_scheduler_type");

            JsonNode z = root.path("zero_optimization");
            int stage = 0;
            long bucket = -1;
            String offOpt = "none", offParam = "none";
            boolean gather = false;
            if (!z.isMissingNode()) {
                if (!z.isObject()) refused.add("zero_optimization is not an object");
                for (Iterator<String> it = z.fieldNames(); it.hasNext(); ) {
                    String k = it.next();
                    if (ZERO_NOTED.contains(k)) notes.add("zero_optimization." + k);
                    else if (!ZERO_READ.contains(k)) refused.add("unknown key 'zero_optimization." + k + "'");
                }
                stage = z.path("stage").asInt(0);
                if (!z.path("stage").isMissingNode() && !z.path("stage").canConvertToInt() || stage < 0 || stage > 3)
                    refused.add("zero_optimization.stage " + z.path("stage") + " is not 0, 1, 2 or 3");
                JsonNode rb = z.path("reduce_bucket_size");
                if (!rb.isMissingNode() && !"auto".equals(rb.asText())) {
                    if (!rb.isNumber() || rb.asDouble() < 1) refused.add("zero_optimization.reduce_bucket_size " + rb + " is not a positive number");
                    else bucket = (long) rb.asDouble();
                }
                offOpt = offload(z, "offload_optimizer");
                offParam = offload(z, "offload_param");
                if (z.path("cpu_offload").asBoolean(false)) offOpt = "cpu";
                if (z.path("cpu_offload_params").asBoolean(false)) offParam = "cpu";
                for (String k : List.of("stage3_gather_16bit_weights_on_model_save", "gather_16bit_weights_on_model_save",
                        "stage3_gather_fp16_weights_on_model_save"))
                    gather |= z.path(k).asBoolean(false);
                for (String k : List.of("zero_quantized_weights", "zero_quantized_gradients", "zero_quantized_nontrainable_weights"))
                    if (z.path(k).asBoolean(false)) refused.add("zero_optimization." + k + " true: quantized communication (ZeRO++) is not implemented");
                if (z.path("zero_hpz_partition_size").asInt(1) > 1) refused.add("zero_optimization.zero_hpz_partition_size > 1 (ZeRO++ hierarchical partitions) is not implemented");
                if (z.path("mics_shard_size").asInt(-1) > 0) refused.add("zero_optimization.mics_shard_size (MiCS) is not implemented");
            }
            if (!mismatched.isEmpty())
                refused.add(0, "values that mismatch the flags (set them to \"auto\", or change the flag): " + String.join("; ", mismatched));
            if (!refused.isEmpty())
                throw new ConfigException("--deepspeed " + file + ": " + String.join("; ", refused));
            List<String> out = new ArrayList<>();
            if (!notes.isEmpty()) out.add("--deepspeed " + file + ": no effect here: " + String.join(", ", notes));
            if (!offOpt.equals("none") || !offParam.equals("none"))
                out.add("--deepspeed " + file + ": offload_optimizer " + offOpt + ", offload_param " + offParam
                        + ": on the CPU the states are in host memory already; nothing moves");
            if (optimizer)
                out.add("--deepspeed " + file + ": its optimizer block is DeepSpeed's AdamW over all trainable tensors in one group:"
                        + " weight decay " + f.weightDecay() + " applies to biases and norm weights too");
            if (stage == 1 && z.path("overlap_comm").asBoolean(false))
                out.add("--deepspeed " + file + ": overlap_comm true: stage 1 reduces the gradients after the backward, bucket by bucket (stage 2 overlaps)");
            if (stage == 3) {
                out.add("--deepspeed " + file + ": ZeRO stage 3: decoder layers are recomputed in the backward (as --gradient_checkpointing"
                        + " True does); each is all-gathered when reached (no prefetch: stage3_prefetch_bucket_size, stage3_max_live_parameters,"
                        + " stage3_max_reuse_distance and overlap_comm change nothing), every trainable tensor is partitioned whatever its"
                        + " size (stage3_param_persistence_threshold changes nothing), and gradients are reduce-scattered per decoder layer"
                        + " (reduce_bucket_size changes nothing)");
                if (!gather)
                    out.add("--deepspeed " + file + ": stage3_gather_16bit_weights_on_model_save is false: the saved model is consolidated"
                            + " into one folder anyway (the trainable tensors in fp32, gathered from every rank)");
            }
            return new DeepSpeedConfig(file, f.worldSize(), stage, bucket, z.path("overlap_comm").asBoolean(false),
                    z.path("contiguous_gradients").asBoolean(false), offOpt, offParam, gather, optimizer, out);
        }

        /** HF's fill_match for an integer: "auto" (or absent) takes the flag's value; another value must equal it. */
        long match(String key, long flag, String flagName) {
            JsonNode v = root.path(key);
            if (v.isMissingNode() || "auto".equals(v.asText())) return flag;
            if (!v.isNumber() || v.asDouble() != Math.rint(v.asDouble())) {
                refused.add(key + " " + v + " is not a whole number");
                return flag;
            }
            if (v.asLong() != flag) mismatched.add(key + "=" + v.asLong() + " vs --" + flagName + "=" + flag);
            return v.asLong();
        }

        void matchDouble(JsonNode node, String key, double flag, String flagName) {
            JsonNode v = node.path(key);
            if (v.isMissingNode() || "auto".equals(v.asText())) return;
            if (!v.isNumber()) refused.add(key + " " + v + " is not a number");
            else if (v.asDouble() != flag) mismatched.add(key + "=" + v.asDouble() + " vs --" + flagName + "=" + flag);
        }

        /** A precision block's {@code enabled}: "auto" is the flag; an explicit value must equal it. */
        boolean enabled(String block, boolean flag, String flagName) {
            JsonNode e = root.path(block).path("enabled");
            if (e.isMissingNode() || "auto".equals(e.asText())) return flag;
            if (!e.isBoolean()) {
                refused.add(block + ".enabled " + e + " is not true, false or \"auto\"");
                return flag;
            }
            if (e.asBoolean() != flag)
                mismatched.add(block + ".enabled=" + e.asBoolean() + " vs --" + flagName + " " + (flag ? "True" : "False"));
            return e.asBoolean();
        }

        void enabledOff(String block, String why) {
            if (root.has(block) && root.path(block).path("enabled").asBoolean(false)) refused.add(block + ".enabled true: " + why);
        }

        String offload(JsonNode z, String key) {
            JsonNode o = z.path(key);
            if (o.isMissingNode() || o.isNull()) return "none";
            String d = o.path("device").asText("none");
            if (!List.of("none", "cpu").contains(d))
                refused.add("zero_optimization." + key + ".device '" + d + "': only none or cpu (NVMe offload is not implemented)");
            return d;
        }

        /** The optimizer block: AdamW (or Adam in its AdamW mode) with its params matched against the flags. */
        boolean optimizer() {
            JsonNode o = root.path("optimizer");
            if (o.isMissingNode()) return false;
            String type = o.path("type").asText("");
            JsonNode p = o.path("params");
            boolean adamw = type.equalsIgnoreCase("AdamW") || type.equalsIgnoreCase("Adam") && p.path("adam_w_mode").asBoolean(true);
            if (!adamw) {
                refused.add("optimizer '" + type + "': only AdamW (or Adam with adam_w_mode true) is implemented");
                return true;
            }
            for (Iterator<String> it = p.fieldNames(); it.hasNext(); ) {
                String k = it.next();
                if (!List.of("lr", "betas", "eps", "weight_decay", "adam_w_mode", "torch_adam", "fused").contains(k))
                    refused.add("unknown key 'optimizer.params." + k + "'");
            }
            matchDouble(p, "lr", f.learningRate(), "learning_rate");
            matchDouble(p, "eps", f.adamEpsilon(), "adam_epsilon");
            matchDouble(p, "weight_decay", f.weightDecay(), "weight_decay");
            JsonNode b = p.path("betas");
            if (!b.isMissingNode() && !"auto".equals(b.asText())) {
                if (!b.isArray() || b.size() != 2) refused.add("optimizer.params.betas " + b + " is not [beta1, beta2]");
                else if (b.get(0).asDouble() != f.adamBeta1() || b.get(1).asDouble() != f.adamBeta2())
                    mismatched.add("betas=" + b + " vs --adam_beta1 " + f.adamBeta1() + " --adam_beta2 " + f.adamBeta2());
            }
            if (f.projectorOrTowerLr())
                refused.add("optimizer block with --mm_projector_lr / --mm_vision_tower_lr: DeepSpeed's optimizer takes every"
                        + " trainable tensor in one group at one learning rate (LLaVA's per-part rates would be ignored); remove the block");
            return true;
        }
    }

    /** The values the file fixes, by key (for tests and the report). */
    public Map<String, Object> summary() {
        return Map.of("stage", stage, "reduce_bucket_size", reduceBucketSize, "offload_optimizer", offloadOptimizer,
                "offload_param", offloadParam, "gather_16bit_weights_on_model_save", gatherWeightsOnSave);
    }
}
