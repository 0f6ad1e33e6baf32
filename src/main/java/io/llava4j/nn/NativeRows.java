package io.llava4j.nn;

import io.llava4j.engine.Engine;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.pytorch.Tensor;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The rows of a contiguous CPU matrix [rows, cols] read in place from Java: little-endian {@link ByteBuffer}s over
 * consecutive row ranges of its memory, each under 2 GiB (a buffer's indices are ints). What the vector loops
 * ({@link VectorGemv}) read a matrix through. The caller keeps the tensor alive as long as the buffers are used.
 */
public final class NativeRows {
    private final ByteBuffer[] chunks; // rows [c·rowsPerChunk, (c + 1)·rowsPerChunk) each
    private final int rowsPerChunk, rows;
    private final int grain;           // rows a team member takes at a time ({@link #grainRows})

    /** At least this many bytes of the matrix are handed to one team member at a time. */
    private static final long GRAIN_BYTES = 128 << 10;
    /** A matrix is cut into about this many ranges a team member (fewer where a range would fall under {@link #GRAIN_BYTES}). */
    private static final int RANGES_PER_THREAD = 8;

    /** {@code matrix}'s rows of {@code rowBytes} bytes each, at most {@code maxChunkBytes} bytes a buffer. */
    public NativeRows(Tensor matrix, int rows, long rowBytes, long maxChunkBytes) {
        if (!matrix.is_contiguous() || !matrix.device().is_cpu())
            throw new IllegalArgumentException("rows are read in place from a contiguous CPU tensor");
        this.rows = rows;
        this.grain = grainRows(rowBytes, rows);
        this.rowsPerChunk = (int) Math.max(1, Math.min(rows, Math.min(maxChunkBytes, Integer.MAX_VALUE) / rowBytes));
        BytePointer memory = new BytePointer(matrix.data_ptr()).capacity(rows * rowBytes);
        int n = (rows + rowsPerChunk - 1) / rowsPerChunk;
        this.chunks = new ByteBuffer[n];
        for (int c = 0; c < n; c++) {
            long first = (long) c * rowsPerChunk, count = Math.min(rowsPerChunk, rows - first);
            BytePointer at = memory.getPointer(first * rowBytes); // address + offset (a buffer starts at the address)
            at.position(0).capacity(count * rowBytes).limit(count * rowBytes);
            chunks[c] = at.asByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
        }
    }

    /** Whether a matrix of this shape can be read this way: some rows, and a row under 2 GiB. */
    public static boolean holdable(long rows, long rowBytes) {
        return rows > 0 && rowBytes > 0 && rows <= Integer.MAX_VALUE && rowBytes <= Integer.MAX_VALUE;
    }

    /**
     * Rows a team member takes at a time from a matrix of {@code rows} rows of {@code rowBytes}: long contiguous ranges,
     * which the CPU's prefetchers stream faster (TinyLlama's 5,632 × 2,048 bf16 matrices: 46–47 GB/s in ranges of an
     * eighth of a thread's share against 31–40 GB/s in 128 KB pieces, 2 threads, alternated, bench/README.md), still
     * enough of them that a member that starts late takes fewer.
     */
    static int grainRows(long rowBytes, int rows) {
        long bytes = Math.max(GRAIN_BYTES, rowBytes * rows / ((long) Engine.threads() * RANGES_PER_THREAD));
        return (int) Math.max(1, Math.min(rows, bytes / rowBytes));
    }

    /** Rows a team member takes at a time from this matrix ({@link #grainRows}). */
    public int grain() {
        return grain;
    }

    /** Calls {@code body} once per buffer that holds rows of [from, to), with that range relative to the buffer and its first row. */
    public void forEach(int from, int to, Chunk body) {
        for (int c = from / rowsPerChunk; c < chunks.length && (long) c * rowsPerChunk < to; c++) {
            int first = c * rowsPerChunk;
            int a = Math.max(from, first) - first, b = Math.min(to, first + Math.min(rowsPerChunk, rows - first)) - first;
            if (a < b) body.run(chunks[c], a, b, first);
        }
    }

    /** Rows [from, to) of {@code buffer}, whose row 0 is the matrix's row {@code first}. */
    @FunctionalInterface
    public interface Chunk {
        void run(ByteBuffer buffer, int from, int to, int first);
    }
}
