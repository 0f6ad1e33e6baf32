package io.llava4j.engine;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A JVM whose JavaCPP cache is empty starts libtorch and computes correctly. Without {@link Engine#init()} extracting
 * the platform folder first, the first load from an empty cache dies with SIGSEGV; this runs {@link SelfCheck} in a
 * separate JVM with {@code -Dorg.bytedeco.javacpp.cachedir} pointing at an empty folder.
 */
class FreshCacheTest {

    @TempDir
    Path tmp;

    @Test
    void selfCheckRunsOnAnEmptyJavacppCache() throws IOException, InterruptedException {
        Path cache = Files.createDirectories(tmp.resolve("javacpp-cache"));
        try (Stream<Path> s = Files.list(cache)) {
            assertEquals(0, s.count(), "the cache folder starts empty");
        }
        Path out = tmp.resolve("stdout.txt"), err = tmp.resolve("stderr.txt");
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        ProcessBuilder pb = new ProcessBuilder(List.of(java, "-Xss8m",
                "-Dorg.bytedeco.javacpp.cachedir=" + cache.toAbsolutePath(),
                "-cp", System.getProperty("java.class.path"),
                SelfCheck.class.getName()));
        pb.environment().put("OMP_WAIT_POLICY", "PASSIVE");
        pb.redirectOutput(out.toFile()).redirectError(err.toFile());
        Process p = pb.start();
        if (!p.waitFor(3, TimeUnit.MINUTES)) {
            p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            fail("SelfCheck did not finish within 3 minutes\nstdout:\n" + Files.readString(out) + "\nstderr:\n" + tail(err));
        }
        String stdout = Files.readString(out);
        assertEquals(0, p.exitValue(), "SelfCheck exit code (134/139 = the native crash on a fresh cache)\nstdout:\n"
                + stdout + "\nstderr:\n" + tail(err));
        assertTrue(stdout.lines().anyMatch(l -> l.matches("OK \\d+")), "SelfCheck printed:\n" + stdout);
        try (Stream<Path> s = Files.walk(cache)) {
            assertTrue(s.anyMatch(f -> f.getFileName().toString().equals("libtorch_cpu.so") && Files.isRegularFile(f)),
                    "libtorch_cpu.so was not extracted into " + cache);
        }
    }

    private static String tail(Path file) throws IOException {
        String s = Files.readString(file);
        return s.length() > 4000 ? "..." + s.substring(s.length() - 4000) : s;
    }
}
