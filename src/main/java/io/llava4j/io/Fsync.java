package io.llava4j.io;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;

/**
 * Durable renames: what every atomic write in llava4j ends with. A rename is only durable once the folder that holds
 * the new name is fsynced (POSIX); without it a power loss can bring back the old name or none.
 */
public final class Fsync {
    /**
     * Test hook: {@code -Dllava4j.test.renameDelayMs=N} waits N ms before each rename, so that a test which kills the
     * process lands inside checkpoint and output writes often (their temporary files complete, not yet published).
     */
    private static final long RENAME_DELAY_MS = Long.getLong("llava4j.test.renameDelayMs", 0);

    private Fsync() {}

    private static void pause() {
        try {
            Thread.sleep(RENAME_DELAY_MS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Fsyncs a folder's entries (Linux; a no-op where folders cannot be opened for sync). */
    public static void directory(Path dir) throws IOException {
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);
        } catch (UnsupportedOperationException | java.nio.file.AccessDeniedException ignored) {
            // a platform without directory fsync: the data itself is already fsynced
        } catch (IOException e) {
            if (Files.isDirectory(dir) && System.getProperty("os.name", "").startsWith("Windows")) return;
            throw e;
        }
    }

    /** Fsyncs one file's data. */
    public static void file(Path file) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.force(true);
        }
    }

    /**
     * Renames {@code from} (a finished, fsynced file or folder) to {@code to} atomically, replacing a file there, then
     * fsyncs the folder that holds {@code to} (and the one {@code from} left, when different).
     */
    public static void move(Path from, Path to) throws IOException {
        if (RENAME_DELAY_MS > 0) pause();
        try {
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(from, to, StandardCopyOption.REPLACE_EXISTING);
        }
        Path toDir = to.toAbsolutePath().getParent(), fromDir = from.toAbsolutePath().getParent();
        directory(toDir);
        if (!fromDir.equals(toDir)) directory(fromDir);
    }
}
