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

    @Option(names = "--bits", defaultValue = "16", description = "4 or 8: the adapters were trained on the base held quantized (train --bits, QLoRA): they are merged into the dequantized base weights, written in the base's dtype") int bits;
    @Option(names = "--quant_type", defaultValue = "nf4", description = "with --bits 4: the run's --quant_type") String quantType;
    @Option(names = "--double_quant", defaultValue = "False", arity = "1", converter = TrainCommand.Bool.class, description = "with --bits 4: the run's --double_quant") boolean doubleQuant;

    @Override
    public Integer call() throws Exception {
        LoraMerge.merge(lora, base, out, io.llava4j.nn.quant.QuantSpec.of(bits, quantType, doubleQuant));
        return 0;
    }
}
