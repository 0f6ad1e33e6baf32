package io.llava4j.io;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

import static org.junit.jupiter.api.Assertions.*;

/** Released pages of a file mapping leave the process's resident set and read back the file's bytes. */
class MappedPagesTest {
    @Test
    void releasedPagesLeaveTheResidentSetAndReadBackTheSameBytes(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("t.bin");
        int n = 64 << 20;
        ByteBuffer content = ByteBuffer.allocateDirect(n);
        for (int i = 0; i < n; i += 8) content.putLong(i, i * 0x9E3779B97F4A7C15L);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            while (content.hasRemaining()) ch.write(content);
        }
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer map = ch.map(FileChannel.MapMode.READ_ONLY, 4096 + 96, n - 8192);
            long sum = 0;
            for (int i = 0; i + 8 <= map.capacity(); i += 4096) sum += map.getLong(i); // fault every page in
            long before = rssKb();
            MappedPages.release(map);
            long after = rssKb();
            assertTrue(before - after > 48 * 1024, "resident set " + before + " kB -> " + after + " kB");
            long again = 0;
            for (int i = 0; i + 8 <= map.capacity(); i += 4096) again += map.getLong(i);
            assertEquals(sum, again, "the mapping reads the file's bytes after the release");
            assertEquals((4096 + 96 + 8L) * 0x9E3779B97F4A7C15L, map.getLong(8));
        }
    }

    @Test
    void buffersThatAreNotMappingsAreLeftAlone() {
        ByteBuffer heap = ByteBuffer.allocate(1 << 16), direct = ByteBuffer.allocateDirect(1 << 16);
        heap.putLong(0, 42);
        direct.putLong(0, 43);
        MappedPages.release(heap);
        MappedPages.release(direct);
        assertEquals(42, heap.getLong(0));
        assertEquals(43, direct.getLong(0));
    }

    private static long rssKb() throws Exception {
        for (String l : Files.readAllLines(Path.of("/proc/self/status")))
            if (l.startsWith("VmRSS:")) return Long.parseLong(l.replaceAll("\\D", ""));
        throw new IllegalStateException("no VmRSS");
    }
}
