package io.llava4j.cli;

import io.llava4j.train.LoraMerge;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/** {@code llava4j merge}: LLaVA's scripts/merge_lora_weights.py — a LoRA run's output merged into its base model. */
@Command(name = "merge", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Merge a LoRA output folder (adapter_config.json, adapter_model.safetensors, non_lora_trainables.bin) into its base model.")
public class MergeCommand implements Callable<Integer> {
    @Option(names = {"--lora_path", "--model-path"}, required = true, description = "the LoRA run's output folder") Path lora;
    @Option(names = {"--model_name_or_path", "--model-base"}, required = true, description = "the base model the run started from") Path base;
    @Option(names = {"--output_dir", "--save-model-path"}, required = true, description = "where the merged model is written") Path out;

    @Override
    public Integer call() throws Exception {
        LoraMerge.merge(lora, base, out);
        return 0;
    }
}
