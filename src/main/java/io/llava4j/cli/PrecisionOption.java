package io.llava4j.cli;

import io.llava4j.nn.Precision;
import picocli.CommandLine.Option;

/** {@code --bf16 True|False} / {@code --fp16 True|False}, shared by the commands that run a model without training it. */
public final class PrecisionOption {
    @Option(names = "--bf16", arity = "1", converter = TrainCommand.Bool.class,
            description = "frozen weights in bf16, GEMMs as autocast runs them (fp32 up-casts on CPUs without AVX-512 BF16)")
    boolean bf16;
    @Option(names = "--fp16", arity = "1", converter = TrainCommand.Bool.class,
            description = "weights in fp16, GEMMs in fp32 on CPU")
    boolean fp16;

    Precision precision() {
        return Precision.of(bf16, fp16);
    }
}
