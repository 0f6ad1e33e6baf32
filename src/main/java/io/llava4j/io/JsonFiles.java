package io.llava4j.io;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/** JSON (and text) files written atomically: a temporary sibling, fsync, then a rename over the target and an fsync of its folder. */
public final class JsonFiles {
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private JsonFiles() {}

    public static void write(Path file, Object value) throws IOException {
        atomically(file, tmp -> JSON.writeValue(tmp.toFile(), value));
    }

    /** A text file (JSON lines, Markdown) written the same way: whole or not at all. */
    public static void writeText(Path file, String text) throws IOException {
        atomically(file, tmp -> Files.writeString(tmp, text));
    }

    private interface Writer {
        void to(Path tmp) throws IOException;
    }

    private static void atomically(Path file, Writer writer) throws IOException {
        Path parent = file.toAbsolutePath().getParent();
        if (parent != null) Files.createDirectories(parent);
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        boolean moved = false;
        try {
            writer.to(tmp);
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
                ch.force(true);
            }
            Fsync.move(tmp, file);
            moved = true;
        } finally {
            if (!moved) Files.deleteIfExists(tmp);
        }
    }
}
