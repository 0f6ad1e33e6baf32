package io.llava4j.dist;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.TestData;
import io.llava4j.io.HostTensor;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Data, flags and comparisons for the data-parallel tests (tiny reference model; a few steps). */
final class DdpRuns {
    static final ObjectMapper JSON = new ObjectMapper();

    private DdpRuns() {}

    /**
     * Seven records over the reference images with answers of different lengths (so ranks hold different numbers of
     * supervised tokens, and the epoch's last global micro-batch is partial); in stage 2, two are text-only.
     */
    static Path data(Path dir, boolean stage2) throws IOException {
        String[] answers = {"a red circle", "a red circle above a blue square on a white background", "two green triangles",
                "two small green triangles side by side", "a blue square", "shapes", "a red circle and two green triangles and a blue square"};
        ArrayNode all = JSON.createArrayNode();
        for (int i = 0; i < answers.length; i++) {
            ObjectNode r = all.addObject();
            r.put("id", "d" + i);
            boolean image = !stage2 || i % 3 != 2;
            if (image) r.put("image", "img" + (i % 2) + ".png");
            ArrayNode c = r.putArray("conversations");
            c.addObject().put("from", "human").put("value", (image ? "<image>\n" : "") + (stage2 ? "What is shown?" : "Describe it."));
            c.addObject().put("from", "gpt").put("value", answers[i]);
        }
        Path p = dir.resolve(stage2 ? "finetune7.json" : "pretrain7.json");
        Files.createDirectories(dir);
        JSON.writerWithDefaultPrettyPrinter().writeValue(p.toFile(), all);
        return p;
    }

    /** Stage-1 or stage-2 flags with per-device batch {@code batch}. */
    static List<String> flags(Path data, Path out, boolean stage2, int batch, int accumulation, int maxSteps) {
        List<String> f = new ArrayList<>(List.of("train", "--model_name_or_path", TestData.tinyLlava().toString(),
                "--image_folder", TestData.tinyData().resolve("images").toString(), "--data_path", data.toString(),
                "--per_device_train_batch_size", String.valueOf(batch), "--gradient_accumulation_steps", String.valueOf(accumulation),
                "--learning_rate", "1e-3", "--lr_scheduler_type", "cosine", "--warmup_steps", "1", "--weight_decay", "0.01",
                "--max_grad_norm", "1.0", "--logging_steps", "1", "--seed", "5", "--max_steps", String.valueOf(maxSteps),
                "--save_steps", "1000", "--output_dir", out.toString()));
        f.addAll(stage2 ? List.of("--version", "v1") : List.of("--version", "plain", "--tune_mm_mlp_adapter", "True"));
        return f;
    }

    static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    /** The CLI in this JVM (the launcher starts the ranks as child JVMs); its exit code and what it printed. */
    record Result(int code, String output) {}

    static Result cli(List<String> args) {
        PrintStream out = System.out, err = System.err;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        PrintStream tee = new PrintStream(new java.io.OutputStream() {
            @Override public void write(int b) {
                buf.write(b);
                err.write(b);
            }

            @Override public void write(byte[] b, int off, int len) {
                buf.write(b, off, len);
                err.write(b, off, len);
            }
        }, true, StandardCharsets.UTF_8);
        System.setOut(tee);
        System.setErr(tee);
        try {
            int code = io.llava4j.cli.Main.run(args.toArray(new String[0]));
            return new Result(code, buf.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(out);
            System.setErr(err);
        }
    }

    static List<JsonNode> log(Path out) throws IOException {
        List<JsonNode> l = new ArrayList<>();
        for (String line : Files.readAllLines(out.resolve("log.jsonl"))) if (!line.isBlank()) l.add(JSON.readTree(line));
        return l;
    }

    static void assertClose(double want, double got, double rel, String what) {
        assertTrue(Math.abs(want - got) <= rel * Math.max(Math.abs(want), 1e-12),
                what + ": " + got + " vs " + want + " (relative " + Math.abs(want - got) / Math.abs(want) + ")");
    }

    static void assertSameLosses(List<JsonNode> want, List<JsonNode> got, double rel) {
        assertEquals(want.size(), got.size(), "logged steps");
        for (int i = 0; i < want.size(); i++)
            assertClose(want.get(i).get("loss").asDouble(), got.get(i).get("loss").asDouble(), rel, "loss of step " + (i + 1));
    }

    /** Each tensor of {@code got} within {@code rel} of {@code want}: ‖got − want‖ ≤ rel·‖want‖. */
    static void assertSameTensors(Map<String, HostTensor> want, Map<String, HostTensor> got, double rel) {
        assertEquals(want.keySet(), got.keySet());
        for (String k : want.keySet()) {
            float[] a = want.get(k).toFloats(), b = got.get(k).toFloats();
            double d = 0, n = 0;
            for (int i = 0; i < a.length; i++) {
                d += (a[i] - b[i]) * (double) (a[i] - b[i]);
                n += a[i] * (double) a[i];
            }
            assertTrue(Math.sqrt(d) <= rel * Math.sqrt(n), k + ": relative difference " + Math.sqrt(d / n));
        }
    }

    /** The trained tensors a run wrote: stage 1's projector file, or stage 2's whole model. */
    static Map<String, HostTensor> written(Path out, boolean stage2) {
        return TestData.tensors(out.resolve(stage2 ? "model.safetensors" : "mm_projector.safetensors"));
    }

    /** A command that runs the CLI in a new JVM like this one (java, JVM flags, class path). */
    static List<String> javaCommand(List<String> args) {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        for (String a : java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
            if (!a.startsWith("-agentlib:jdwp")) cmd.add(a);
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), io.llava4j.cli.Main.class.getName()));
        cmd.addAll(args);
        return cmd;
    }

    /** {@code flags} with {@code flag}'s value replaced. */
    static List<String> with(List<String> flags, String flag, String value) {
        List<String> f = new ArrayList<>(flags);
        int i = f.indexOf(flag);
        if (i < 0) f.addAll(List.of(flag, value));
        else f.set(i + 1, value);
        return f;
    }
}
