package io.llava4j.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.llava4j.TestData;
import io.llava4j.bench.SparseCheckpoints;
import io.llava4j.cli.Main;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Loading costs the weights once. A model of the benchmark's shape (CLIP-S/16 at 224 px + a 12-layer 768-wide LLaMA,
 * vocab 32000: 170 M parameters) is written as a sparse F16 checkpoint and loaded in a fresh JVM ({@code inspect}),
 * once in fp32 and once with --bf16; the peak anonymous resident memory (not counting the clean page cache of the
 * memory-mapped file) minus that of loading the 29-position tiny model must stay within 1.15 × the weights' bytes.
 */
class LoadingMemoryTest {
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    /** Runs {@code llava4j args} in a new JVM and returns its memory report. */
    private JsonNode run(String name, String... args) throws IOException, InterruptedException {
        Path report = tmp.resolve(name + ".json"), log = tmp.resolve(name + ".log");
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> cmd = new java.util.ArrayList<>(List.of(java, "-Xss8m", "-Dorg.bytedeco.javacpp.maxPhysicalBytes=0",
                "-Dorg.bytedeco.javacpp.maxBytes=0", "-cp", System.getProperty("java.class.path"), Main.class.getName()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().put("OMP_WAIT_POLICY", "PASSIVE");
        pb.environment().put("LLAVA4J_MEMORY_REPORT", report.toString());
        Process p = pb.start();
        if (!p.waitFor(4, TimeUnit.MINUTES)) {
            p.destroyForcibly();
            fail(name + " did not finish:\n" + Files.readString(log));
        }
        assertEquals(0, p.exitValue(), name + ":\n" + Files.readString(log));
        return JSON.readTree(report.toFile());
    }

    @Test
    void loadingCostsTheWeightsOnce() throws Exception {
        Path model = SparseCheckpoints.benchShaped(TestData.tinyLlava(), tmp.resolve("bench-model"));
        double base = run("tiny", "inspect", "--model_name_or_path", TestData.tinyLlava().toString()).get("peak_rss_anon_mb").asDouble();
        long params = 0;
        io.llava4j.io.Safetensors.SafetensorsFile f = io.llava4j.io.Safetensors.read(model.resolve("model.safetensors"));
        long bf16Bytes = 0, fp32Bytes = 0;
        for (var e : f.tensors().entrySet()) {
            long n = e.getValue().numel();
            params += n;
            fp32Bytes += 4 * n;
            boolean half = e.getValue().shape().length >= 2 && !e.getKey().startsWith("multi_modal_projector.");
            bf16Bytes += (half ? 2 : 4) * n;
        }
        assertTrue(params > 150_000_000L, params + " parameters");
        for (boolean bf16 : new boolean[]{false, true}) {
            JsonNode r = run(bf16 ? "bf16" : "fp32", "inspect", "--model_name_or_path", model.toString(), "--bf16", bf16 ? "True" : "False");
            double used = r.get("peak_rss_anon_mb").asDouble() - base;
            double weights = (bf16 ? bf16Bytes : fp32Bytes) / 1048576.0;
            System.out.printf("load %s: peak anonymous RSS %.0f MB above the tiny model's %.0f MB, weights %.0f MB (%.2fx)%n",
                    bf16 ? "bf16" : "fp32", used, base, weights, used / weights);
            assertTrue(used <= 1.15 * weights, String.format("%s load used %.0f MB for %.0f MB of weights", bf16 ? "bf16" : "fp32", used, weights));
        }
    }
}
