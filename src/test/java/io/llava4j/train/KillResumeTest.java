package io.llava4j.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.llava4j.io.HostTensor;
import io.llava4j.io.Safetensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Real crashes: {@code llava4j train} runs in a child JVM that is killed with SIGKILL (Process.destroyForcibly) at
 * seeded random moments — one while a checkpoint is being written, one at a random time, one while the final model
 * is being written — and resumed with {@code --resume_from_checkpoint True} each time. After every kill each
 * {@code checkpoint-N} folder is complete (all three files readable, global_step N) and the output is either absent
 * (no config.json) or complete; at the end the per-step losses of log.jsonl equal an uninterrupted run's exactly and
 * so do the written weights. Each of the three runs must be killed (exit 137), not finish. Renames are slowed
 * ({@code llava4j.test.renameDelayMs}) so kills land inside writes.
 */
class KillResumeTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    static final long SEED = Long.getLong("llava4j.kill.seed", 11L);
    static final int STEPS = 6;

    @TempDir
    Path tmp;

    enum Moment { RANDOM, DURING_CHECKPOINT, DURING_FINAL_WRITE }

    static List<String> flags(Path out) {
        List<String> f = new ArrayList<>(ResumeTest.flags(out, STEPS));
        int i = f.indexOf("--save_steps");
        f.set(i + 1, "1"); // a checkpoint after every step: many writes to be killed in
        i = f.indexOf("--save_total_limit");
        f.set(i + 1, "2");
        return f;
    }

    @Test
    void killedRunsResumeToTheUninterruptedResult() throws Exception {
        Path ref = tmp.resolve("reference");
        TrainRuns.run(flags(ref));
        Map<Integer, Double> refLosses = losses(ref);
        assertEquals(STEPS, refLosses.size());

        Path out = tmp.resolve("out");
        Random rnd = new Random(SEED);
        List<Moment> plan = List.of(Moment.DURING_CHECKPOINT, Moment.RANDOM, Moment.DURING_FINAL_WRITE);
        List<String> log = new ArrayList<>();
        for (Moment m : plan) {
            String what = runAndKill(out, m, rnd);
            log.add(m + ": " + what);
            checkNothingHalfWritten(out, log);
        }
        int rc = start(out, tmp.resolve("last.log")).waitFor();
        assertEquals(0, rc, log + "\n" + Files.readString(tmp.resolve("last.log")));
        System.out.println("kills: " + log);

        checkNothingHalfWritten(out, log);
        assertEquals(refLosses, losses(out), "per-step losses after " + log);
        Map<String, HostTensor> a = Safetensors.readModel(ref), b = Safetensors.readModel(out);
        assertEquals(a.keySet(), b.keySet());
        for (String n : a.keySet()) assertEquals(a.get(n).data(), b.get(n).data(), n + " differs from the uninterrupted run");
        try (Stream<Path> s = Files.list(out)) {
            assertEquals(List.of(), s.map(p -> p.getFileName().toString()).filter(n -> n.startsWith(".")).toList(),
                    "no temporary left behind");
        }
    }

    /** Starts a run and kills it at the moment asked for; fails when the run ends before it is killed. */
    private String runAndKill(Path out, Moment m, Random rnd) throws Exception {
        Path console = tmp.resolve("run.log");
        Process p = start(out, console);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        Predicate<Path> trigger = switch (m) {
            case RANDOM -> dir -> contains(console, "trainable:");
            case DURING_CHECKPOINT -> dir -> anyName(dir, n -> n.startsWith(".tmp-checkpoint-"));
            case DURING_FINAL_WRITE -> dir -> anyName(dir.getParent(), n -> n.startsWith("." + dir.getFileName() + ".tmp-"));
        };
        while (p.isAlive() && !trigger.test(out)) {
            if (System.nanoTime() > deadline) {
                p.destroyForcibly().waitFor();
                fail(m + ": never reached; console:\n" + Files.readString(console));
            }
            Thread.sleep(2);
        }
        if (!p.isAlive()) fail(m + ": the run ended (rc " + p.exitValue() + ") before the moment to kill it; console:\n" + Files.readString(console));
        // the delay stays inside the write the trigger saw: each rename waits 40 ms, the final write renames several times
        long delay = switch (m) {
            case RANDOM -> rnd.nextInt(1000);
            case DURING_CHECKPOINT -> rnd.nextInt(120);
            case DURING_FINAL_WRITE -> rnd.nextInt(30);
        };
        Thread.sleep(delay);
        p.destroyForcibly().waitFor(); // SIGKILL
        // 137 = 128 + SIGKILL: the run was killed, not finished; a run that ended in the meantime exits 0
        assertEquals(137, p.exitValue(), m + ": the run ended by itself " + delay + " ms after the trigger instead of being killed");
        return "killed " + delay + " ms after the trigger, checkpoints " + names(out);
    }

    private Process start(Path out, Path console) throws IOException {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xmx384m", "-Xss8m", "-XX:TieredStopAtLevel=1", "-Dllava4j.test.renameDelayMs=40",
                "-cp", System.getProperty("java.class.path"), "io.llava4j.cli.Main", "train"));
        cmd.addAll(flags(out));
        if (!TrainCheckpoint.list(out).isEmpty()) cmd.addAll(List.of("--resume_from_checkpoint", "True"));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(console.toFile());
        pb.environment().put("OMP_WAIT_POLICY", "PASSIVE");
        pb.environment().put("OMP_NUM_THREADS", "1");
        return pb.start();
    }

    /** Every checkpoint folder complete; the output complete or absent. */
    private static void checkNothingHalfWritten(Path out, List<String> log) throws IOException {
        for (Path c : TrainCheckpoint.list(out)) {
            int step = TrainCheckpoint.stepOf(c);
            JsonNode st = JSON.readTree(c.resolve("trainer_state.json").toFile());
            assertEquals(step, st.get("global_step").asInt(), c + " after " + log);
            assertFalse(Safetensors.read(c.resolve("trainable.safetensors")).tensors().isEmpty(), c + " after " + log);
            assertFalse(Safetensors.read(c.resolve("optimizer.safetensors")).tensors().isEmpty(), c + " after " + log);
        }
        if (Files.exists(out.resolve("config.json"))) {
            JSON.readTree(out.resolve("config.json").toFile());
            assertFalse(Safetensors.readModel(out).isEmpty(), "a model folder with config.json has its weights, after " + log);
            assertTrue(Files.isRegularFile(out.resolve("tokenizer.json")), "and its tokenizer, after " + log);
        }
    }

    private static Map<Integer, Double> losses(Path out) throws IOException {
        Map<Integer, Double> m = new TreeMap<>();
        for (String line : Files.readAllLines(out.resolve("log.jsonl"))) {
            JsonNode n = JSON.readTree(line);
            assertNull(m.put(n.get("step").asInt(), n.get("loss").asDouble()), "step logged twice: " + line);
        }
        return m;
    }

    private static boolean contains(Path file, String text) {
        try {
            return Files.exists(file) && Files.readString(file).contains(text);
        } catch (IOException e) {
            return false;
        }
    }

    private static boolean anyName(Path dir, Predicate<String> p) {
        if (!Files.isDirectory(dir)) return false;
        try (Stream<Path> s = Files.list(dir)) {
            return s.anyMatch(f -> p.test(f.getFileName().toString()));
        } catch (IOException e) {
            return false; // listed while a file was renamed
        }
    }

    private static List<String> names(Path out) throws IOException {
        return TrainCheckpoint.list(out).stream().map(p -> p.getFileName().toString()).toList();
    }
}
