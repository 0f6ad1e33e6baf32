package io.llava4j.cli;

import io.llava4j.nn.quant.QuantSpec;
import io.llava4j.nn.quant.QuantType;
import picocli.CommandLine.Option;

/**
 * LLaVA's serving flags {@code --load_8bit True} / {@code --load_4bit True} (builder.py's BitsAndBytesConfig): the
 * LLM's decoder-layer linear weights held in int8 (one scale per row), or in NF4 with double-quantized scales, as
 * LLaVA's {@code load_4bit} asks bitsandbytes for. Shared by generate, chat and serve.
 */
public final class LoadQuantOption {
    @Option(names = "--load_8bit", arity = "1", converter = TrainCommand.Bool.class,
            description = "the LLM's linear weights in int8 (decoding runs libtorch's weight-only int8 kernel)")
    boolean load8bit;
    @Option(names = "--load_4bit", arity = "1", converter = TrainCommand.Bool.class,
            description = "the LLM's linear weights in NF4 with double-quantized scales (dequantized a layer at a time)")
    boolean load4bit;

    /** The spec, or null for neither flag. */
    QuantSpec spec() {
        if (load8bit && load4bit) throw new IllegalArgumentException("--load_8bit True and --load_4bit True together: choose one");
        return load8bit ? new QuantSpec(QuantType.INT8, false) : load4bit ? new QuantSpec(QuantType.NF4, true) : null;
    }
}
