package io.llava4j.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.bench.Bench;
import io.llava4j.io.JsonFiles;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/**
 * {@code llava4j bench}: training-step time (or decoding speed), FLOP rate against this process's GEMM peak, and peak
 * memory on llava_ref.py's benchmark model, with seeded weights (no files). Runs the training step of {@code train}.
 */
@Command(name = "bench", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Time training steps (stage pretrain / finetune) or decoding (generate) on llava_ref.py's bench model "
                + "(CLIP-S/16 224 px + 12-layer 768-wide LLaMA, vocab 32000; seeded weights, no files); JSON out.")
public class BenchCommand implements Callable<Integer> {
    @Option(names = "--stage", required = true, description = "pretrain (projector trains), finetune (projector + LLM) or generate") String stage;
    @Option(names = "--per_device_train_batch_size", defaultValue = "2", description = "samples a step (default: ${DEFAULT-VALUE})") int batch;
    @Option(names = "--steps", defaultValue = "5", description = "timed steps (generate: timed runs) (default: ${DEFAULT-VALUE})") int steps;
    @Option(names = "--warmup", defaultValue = "1", description = "untimed steps first (default: ${DEFAULT-VALUE})") int warmup;
    @Option(names = "--gradient_checkpointing", arity = "1", converter = TrainCommand.Bool.class, defaultValue = "False") boolean gradCkpt;
    @Option(names = "--threads", description = "libtorch intra-op threads and OpenBLAS threads (default: libtorch's, one per core)") Integer threads;
    @Option(names = "--new_tokens", defaultValue = "32", description = "generate: tokens per run (default: ${DEFAULT-VALUE})") int newTokens;
    @Option(names = "--seed", defaultValue = "0") long seed;
    @Option(names = "--packed_weights", arity = "1", converter = TrainCommand.Bool.class, defaultValue = "True",
            description = "generate: the LLM's matrices in oneDNN's blocked layout (as generate/chat/serve hold bf16 weights with native bf16 GEMMs) (default: ${DEFAULT-VALUE})") boolean packedWeights;
    @Option(names = "--llm", defaultValue = "bench",
            description = "generate: the LLM's shape, bench (12x768) or tinyllama-1.1b (22x2048, 4 key/value heads) (default: ${DEFAULT-VALUE})") String llm;
    @Option(names = "--output_json", description = "also write the result here") Path output;
    @picocli.CommandLine.Mixin PrecisionOption precisionOption = new PrecisionOption();

    @Override
    public Integer call() throws Exception {
        if (batch < 1) throw new IllegalArgumentException("--per_device_train_batch_size must be >= 1, got " + batch);
        if (steps < 1) throw new IllegalArgumentException("--steps must be >= 1, got " + steps);
        if (warmup < 0) throw new IllegalArgumentException("--warmup must be >= 0, got " + warmup);
        io.llava4j.engine.Engine.init();
        if (threads != null) io.llava4j.engine.Engine.setThreads(threads, "--threads");
        ObjectNode r = Bench.run(new Bench.Options(stage, precisionOption.precision(), batch, steps, warmup, gradCkpt, seed, newTokens, packedWeights, llm));
        System.out.println(new ObjectMapper().writeValueAsString(r));
        if (output != null) JsonFiles.write(output, r);
        return 0;
    }
}
