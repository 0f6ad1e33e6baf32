package io.llava4j;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/** The layers' arrows: only cli/ knows the command line, so nothing outside it imports io.llava4j.cli. */
class LayersTest {
    @Test
    void nothingBelowCliImportsCli() throws IOException {
        Path root = Path.of("src/main/java/io/llava4j");
        assertTrue(Files.isDirectory(root.resolve("cli")), "run from the project folder");
        List<String> offenders;
        try (Stream<Path> files = Files.walk(root)) {
            offenders = files.filter(p -> p.toString().endsWith(".java") && !p.startsWith(root.resolve("cli")))
                    .filter(p -> {
                        try {
                            return Files.readString(p).contains("io.llava4j.cli.");
                        } catch (IOException e) {
                            throw new java.io.UncheckedIOException(e);
                        }
                    })
                    .map(Path::toString).toList();
        }
        assertEquals(List.of(), offenders);
    }
}
