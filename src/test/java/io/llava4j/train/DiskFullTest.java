package io.llava4j.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.llava4j.cli.Main;
import io.llava4j.io.Safetensors;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A disk that fills up during a checkpoint or the final write: training writes onto a small tmpfs (mounted by the
 * test; skipped where mounting is not permitted). The run fails with one message naming the folder and the cause, no
 * half-written folder or temporary is left, and the previous checkpoint is intact.
 */
class DiskFullTest {
    @TempDir
    Path tmp;

    /** tiny-llava's full fine-tune (vision frozen): a checkpoint is 148,560 fp32 weights + 2 AdamW moments ≈ 1.8 MB. */
    @Test
    void checkpointOnAFullDiskFailsCleanlyAndKeepsThePreviousOne() throws Exception {
        Path mnt = mount("3m");
        try {
            Path out = mnt.resolve("out");
            List<String> f = ResumeTest.flags(out, 4);
            f.set(f.indexOf("--save_steps") + 1, "1");
            f.set(f.indexOf("--save_total_limit") + 1, "1");
            String[] run = run(f);
            assertEquals("1", run[0], run[1]);
            String err = run[1];
            assertTrue(err.contains("error: " + out.resolve("checkpoint-2") + ": cannot write the checkpoint"), err);
            assertTrue(err.contains("No space left on device") && err.contains("(the disk is full)"), err);
            assertTrue(err.contains("the newest complete checkpoint is " + out.resolve("checkpoint-1")), err);
            assertFalse(err.contains("\tat "), "no stack trace: " + err);

            assertEquals(List.of("checkpoint-1"), TrainCheckpoint.list(out).stream().map(p -> p.getFileName().toString()).toList());
            Path c = out.resolve("checkpoint-1");
            assertEquals(1, new ObjectMapper().readTree(c.resolve("trainer_state.json").toFile()).get("global_step").asInt());
            assertFalse(Safetensors.read(c.resolve("trainable.safetensors")).tensors().isEmpty());
            assertFalse(Safetensors.read(c.resolve("optimizer.safetensors")).tensors().isEmpty());
            assertEquals(List.of(), hidden(out), "no temporary left behind");
            System.out.println("what the user sees:\n" + err.lines().filter(l -> l.startsWith("error:")).findFirst().orElse(err));
        } finally {
            unmount(mnt);
        }
    }

    /** The final model (≈ 700 KB of weights) onto a 500 KB disk. */
    @Test
    void finalOutputOnAFullDiskFailsCleanly() throws Exception {
        Path mnt = mount("500k");
        try {
            Path out = mnt.resolve("out");
            List<String> f = ResumeTest.flags(out, 1);
            f.addAll(List.of("--save_strategy", "no"));
            String[] run = run(f);
            assertEquals("1", run[0], run[1]);
            String err = run[1];
            assertTrue(err.contains("error: " + out + ": cannot write the model") && err.contains("No space left on device")
                    && err.contains("(the disk is full; nothing of the model was written)"), err);
            assertFalse(Files.exists(out.resolve("config.json")), "no model folder");
            assertFalse(Files.exists(out.resolve("model.safetensors")));
            assertEquals(List.of(), hidden(out), "no temporary left behind");
            assertEquals(List.of(), hidden(mnt), "no temporary left behind");
            System.out.println("what the user sees:\n" + err.lines().filter(l -> l.startsWith("error:")).findFirst().orElse(err));
        } finally {
            unmount(mnt);
        }
    }

    /** {exit code, stderr} of {@code llava4j train flags}. */
    private static String[] run(List<String> flags) {
        List<String> argv = new ArrayList<>(List.of("train"));
        argv.addAll(flags);
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream saved = System.err;
        int rc;
        try {
            System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
            rc = Main.run(argv.toArray(new String[0]));
        } finally {
            System.setErr(saved);
        }
        return new String[]{String.valueOf(rc), err.toString(StandardCharsets.UTF_8)};
    }

    private Path mount(String size) throws Exception {
        Path mnt = tmp.resolve("disk");
        Files.createDirectories(mnt);
        Process p = new ProcessBuilder("mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", mnt.toString())
                .redirectErrorStream(true).start();
        String said = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
        Assumptions.assumeTrue(p.waitFor() == 0, "skipped: cannot mount a small tmpfs here (needs root): " + said);
        return mnt;
    }

    private static void unmount(Path mnt) throws Exception {
        // lazy: memory maps of files read by the test may still be open until a GC
        new ProcessBuilder("umount", "-l", mnt.toString()).inheritIO().start().waitFor();
    }

    private static List<String> hidden(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) return List.of();
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).filter(n -> n.startsWith(".")).toList();
        }
    }
}
