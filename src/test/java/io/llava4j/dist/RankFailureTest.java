package io.llava4j.dist;

import com.fasterxml.jackson.databind.JsonNode;
import io.llava4j.train.TrainCheckpoint;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A rank killed mid-run (SIGKILL): the other rank stops by itself with a clear message in bounded time, the
 * checkpoints are whole, and one process with the same global batch resumes and continues with the same losses.
 */
class RankFailureTest {

    @Test
    void killedRankStopsTheOtherAndOneProcessResumes(@TempDir Path tmp) throws Exception {
        Path data = DdpRuns.data(tmp, false);
        Path out = tmp.resolve("run");
        int steps = 20;
        List<String> two = DdpRuns.flags(data, out, false, 2, 1, steps);
        two = DdpRuns.with(two, "--save_steps", "1");
        two = DdpRuns.with(two, "--save_total_limit", "3");
        two.addAll(List.of("--nproc_per_node", "2", "--master_port", String.valueOf(DdpRuns.freePort()), "--ddp_timeout", "60"));
        List<String> twoFlags = two;
        CompletableFuture<DdpRuns.Result> run = CompletableFuture.supplyAsync(() -> DdpRuns.cli(twoFlags));

        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(180);
        while (loggedSteps(out) < 4) {
            assertFalse(run.isDone(), () -> "the run ended before the kill: " + run.join().output());
            assertTrue(System.nanoTime() < deadline, "no 4th step within 180 s");
            Thread.sleep(20);
        }
        ProcessHandle rank1 = rank(1).orElseThrow(() -> new AssertionError("no child JVM with RANK=1"));
        long killed = System.nanoTime();
        rank1.destroyForcibly();
        DdpRuns.Result r = run.get(60, TimeUnit.SECONDS);
        double seconds = (System.nanoTime() - killed) / 1e9;
        assertNotEquals(0, r.code());
        assertTrue(seconds < 25, "stopped " + seconds + " s after the kill (the launcher's grace is 30 s)");
        assertTrue(r.output().contains("error: rank 0 of 2: the "), r.output());
        assertTrue(r.output().contains("another rank stopped, hung or is unreachable"), r.output());
        assertTrue(r.output().contains("launcher: rank 1 exited with code"), r.output());

        // whole checkpoints only; resume one process (global batch 4 = 2 ranks × 2) from the newest before the last logged step
        List<JsonNode> before = DdpRuns.log(out);
        int last = before.get(before.size() - 1).get("step").asInt();
        List<Path> cps = TrainCheckpoint.list(out);
        assertFalse(cps.isEmpty());
        for (Path cp : cps)
            for (String f : List.of("trainable.safetensors", "optimizer.safetensors", "trainer_state.json"))
                assertTrue(Files.isRegularFile(cp.resolve(f)), cp + " lacks " + f);
        Path from = null;
        for (Path cp : cps) if (step(cp) < last) from = cp;
        assertNotNull(from, "a checkpoint before step " + last + " in " + cps);
        int start = step(from);

        List<String> one = DdpRuns.flags(data, out, false, 4, 1, steps);
        one = DdpRuns.with(one, "--save_steps", "1000");
        one.addAll(List.of("--resume_from_checkpoint", from.toString()));
        DdpRuns.Result resumed = DdpRuns.cli(one);
        assertEquals(0, resumed.code(), resumed.output());
        List<JsonNode> after = DdpRuns.log(out);
        assertEquals(steps, after.size(), "steps 1.." + steps + " once each");
        for (int s = start + 1; s <= last; s++)
            DdpRuns.assertClose(before.get(s - 1).get("loss").asDouble(), after.get(s - 1).get("loss").asDouble(), 1e-5,
                    "loss of step " + s + " (2 ranks, then 1 process from checkpoint-" + start + ")");
        assertTrue(Files.isRegularFile(out.resolve("mm_projector.safetensors")));
    }

    /**
     * ZeRO-2 with {@code overlap_comm} (stage 2 of LLaVA: projector and LLM train, gradient accumulation 2): rank 1
     * killed mid-run stops rank 0 with a clear error; every published checkpoint holds both ranks' optimizer shards;
     * the same two ranks resume from a checkpoint two steps before the last logged one (so the second compared step
     * depends on the AdamW shards read back) and log identical losses.
     */
    @Test
    void killedZero2RankStopsTheOtherAndTheRunResumes(@TempDir Path tmp) throws Exception {
        Path data = DdpRuns.data(tmp, true);
        Path out = tmp.resolve("run");
        int steps = 8;
        Path ds = ZeroTrainingTest.config(tmp, 2, 30_000, true);
        List<String> flags = DdpRuns.with(DdpRuns.with(DdpRuns.flags(data, out, true, 1, 2, steps), "--save_steps", "1"),
                "--save_total_limit", "3");
        List<String> first = ZeroTrainingTest.ranks(flags, 2, ds);
        CompletableFuture<DdpRuns.Result> run = CompletableFuture.supplyAsync(() -> DdpRuns.cli(first));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(180);
        while (loggedSteps(out) < 3) {
            assertFalse(run.isDone(), () -> "the run ended before the kill: " + run.join().output());
            assertTrue(System.nanoTime() < deadline, "no 3rd step within 180 s");
            Thread.sleep(20);
        }
        ProcessHandle rank1 = rank(1).orElseThrow(() -> new AssertionError("no child JVM with RANK=1"));
        long killed = System.nanoTime();
        rank1.destroyForcibly();
        DdpRuns.Result r = run.get(60, TimeUnit.SECONDS);
        double seconds = (System.nanoTime() - killed) / 1e9;
        assertNotEquals(0, r.code());
        assertTrue(seconds < 25, "stopped " + seconds + " s after the kill (the launcher's grace is 30 s)");
        assertTrue(r.output().contains("error: rank 0 of 2: "), r.output()); // a collective, or the barrier after writing a shard
        assertTrue(r.output().contains("another rank stopped, hung or is unreachable"), r.output());
        assertTrue(r.output().contains("launcher: rank 1 exited with code"), r.output());

        List<JsonNode> before = DdpRuns.log(out);
        int last = before.get(before.size() - 1).get("step").asInt();
        assertTrue(last < steps, "the kill came after the last step");
        List<Path> cps = TrainCheckpoint.list(out);
        Path from = null;
        for (Path cp : cps) {
            for (String f : List.of("trainer_state.json", "optimizer_shards/rank-00000-of-00002.safetensors",
                    "optimizer_shards/rank-00001-of-00002.safetensors"))
                assertTrue(Files.isRegularFile(cp.resolve(f)), cp + " lacks " + f);
            if (step(cp) <= last - 2) from = cp;
        }
        assertNotNull(from, "a checkpoint two steps before step " + last + " in " + cps);
        int start = step(from);

        DdpRuns.Result resumed = DdpRuns.cli(ZeroTrainingTest.ranks(DdpRuns.with(DdpRuns.with(flags, "--save_steps", "1000"),
                "--resume_from_checkpoint", from.toString()), 2, ds));
        assertEquals(0, resumed.code(), resumed.output());
        List<JsonNode> after = DdpRuns.log(out);
        assertEquals(steps, after.size(), "steps 1.." + steps + " once each");
        for (int s = start + 1; s <= last; s++)
            assertEquals(before.get(s - 1).get("loss").asDouble(), after.get(s - 1).get("loss").asDouble(), 0.0,
                    "loss of step " + s + " (resumed from checkpoint-" + start + " on the same 2 ranks)");
        assertTrue(Files.isRegularFile(out.resolve("model.safetensors")));
    }

    @Test
    void hungRankStopsTheOtherAfterTheTimeout(@TempDir Path tmp) throws Exception {
        Path data = DdpRuns.data(tmp, false);
        Path out = tmp.resolve("run");
        List<String> two = DdpRuns.flags(data, out, false, 2, 1, 200);
        two.addAll(List.of("--nproc_per_node", "2", "--master_port", String.valueOf(DdpRuns.freePort()), "--ddp_timeout", "5"));
        List<String> twoFlags = two;
        CompletableFuture<DdpRuns.Result> run = CompletableFuture.supplyAsync(() -> DdpRuns.cli(twoFlags));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(180);
        while (loggedSteps(out) < 2) {
            assertFalse(run.isDone(), () -> "the run ended early: " + run.join().output());
            assertTrue(System.nanoTime() < deadline, "no 2nd step within 180 s");
            Thread.sleep(20);
        }
        ProcessHandle rank1 = rank(1).orElseThrow(() -> new AssertionError("no child JVM with RANK=1"));
        long stopped = System.nanoTime();
        assertEquals(0, new ProcessBuilder("kill", "-STOP", String.valueOf(rank1.pid())).start().waitFor()); // alive, silent
        try {
            while (!run.isDone() && rank(0).isPresent()) Thread.sleep(50); // rank 0 gives up by itself
            double seconds = (System.nanoTime() - stopped) / 1e9;
            assertTrue(seconds < 5 + 15, "rank 0 stopped " + seconds + " s after rank 1 hung (--ddp_timeout 5)");
        } finally {
            rank1.destroyForcibly(); // SIGKILL ends a stopped process too
        }
        DdpRuns.Result r = run.get(60, TimeUnit.SECONDS);
        assertNotEquals(0, r.code());
        assertTrue(r.output().contains("error: rank 0 of 2: the "), r.output());
    }

    private static int step(Path checkpoint) {
        return Integer.parseInt(checkpoint.getFileName().toString().substring("checkpoint-".length()));
    }

    private static int loggedSteps(Path out) throws IOException {
        Path log = out.resolve("log.jsonl");
        if (!Files.exists(log)) return 0;
        return (int) Files.readAllLines(log).stream().filter(l -> l.endsWith("}")).count();
    }

    /** This JVM's child JVM with {@code RANK=rank} in its environment (started by the launcher). */
    private static Optional<ProcessHandle> rank(int rank) {
        String mine = Launcher.PID_VARIABLE + "=" + ProcessHandle.current().pid();
        return ProcessHandle.current().descendants().filter(p -> {
            try {
                List<String> env = List.of(new String(Files.readAllBytes(Path.of("/proc", String.valueOf(p.pid()), "environ")),
                        StandardCharsets.UTF_8).split("\0"));
                return env.contains(mine) && env.contains("RANK=" + rank);
            } catch (IOException e) {
                return false;
            }
        }).findFirst();
    }
}
