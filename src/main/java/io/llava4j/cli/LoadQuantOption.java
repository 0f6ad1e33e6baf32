package io.llava4j.cli;

import io.llava4j.nn.quant.QuantSpec;
import io.llava4j.nn.quant.QuantType;
import picocli.CommandLine.Option;

/**
 * LLaVA's serving flags {@code --load_8bit True} / {@code --load_4bit True} (builder.py's BitsAndBytesConfig): the
 * LLM's decoder-layer linear weights held in int8 (one scale per row), or in 4 bits: by default libtorch's int4 groups,
 * which its int4 kernel decodes; {@code --load_4bit_format nf4} holds NF4 with double-quantized scales, as LLaVA's
 * {@code load_4bit} asks bitsandbytes for, which has no CPU kernel here. Shared by generate, chat and serve.
 */
public final class LoadQuantOption {
    @Option(names = "--load_8bit", arity = "1", converter = TrainCommand.Bool.class,
            description = "the LLM's linear weights in int8 (decoding multiplies the codes in place: Java's vector loops, or libtorch's int8 kernel)")
    boolean load8bit;
    @Option(names = "--load_4bit", arity = "1", converter = TrainCommand.Bool.class,
            description = "the LLM's linear weights in 4 bits (--load_4bit_format)")
    boolean load4bit;
    @Option(names = "--load_4bit_format", paramLabel = "int4|nf4", defaultValue = "int4",
            description = "int4: groups of 64 with a scale and zero, decoded by libtorch's int4 kernel; nf4: bitsandbytes' NF4"
                    + " with double-quantized scales, as LLaVA's --load_4bit asks bitsandbytes for (no kernel here: dequantized"
                    + " a layer at a time, far slower) (default: ${DEFAULT-VALUE})")
    String load4bitFormat;

    /** The spec, or null for neither flag. */
    QuantSpec spec() {
        if (load8bit && load4bit) throw new IllegalArgumentException("--load_8bit True and --load_4bit True together: choose one");
        if (load8bit) return new QuantSpec(QuantType.INT8, false);
        if (!load4bit) return null;
        return switch (load4bitFormat) {
            case "int4" -> new QuantSpec(QuantType.INT4, false);
            case "nf4" -> new QuantSpec(QuantType.NF4, true);
            default -> throw new IllegalArgumentException("--load_4bit_format " + load4bitFormat + " is not int4 or nf4");
        };
    }
}
