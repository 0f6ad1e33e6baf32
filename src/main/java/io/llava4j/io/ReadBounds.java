package io.llava4j.io;

import java.nio.file.Path;

/**
 * The one gate for buffers whose length comes from a file we read (a safetensors header length, a zip entry's
 * declared size): the length is checked against a bound computed from the file's actual size before anything is
 * allocated, so a lying length is an error naming the file instead of an OutOfMemoryError. Deflated zip entries are
 * bounded by {@link #DEFLATE_MAX_RATIO} times their compressed bytes (deflate cannot expand more); everything else by
 * the bytes actually in the file. Tests read {@link #largest()} to check that no mutated file made a reader allocate
 * more than its bound.
 */
public final class ReadBounds {
    /** Deflate's largest expansion: 258 bytes from about 2 bits, so at most 1032 output bytes per input byte. */
    public static final long DEFLATE_MAX_RATIO = 1032;

    private static final ThreadLocal<long[]> LARGEST = ThreadLocal.withInitial(() -> new long[2]);

    private ReadBounds() {}

    /**
     * Checks {@code bytes} (a length read from {@code file}) against {@code bound} and returns it as an int buffer size.
     *
     * @param what what the bytes are, for the message ("zip entry 'x/data.pkl'")
     */
    public static int check(Path file, String what, long bytes, long bound) throws TensorFileException {
        if (bytes < 0)
            throw new TensorFileException(file, what + ": negative length " + bytes + " (corrupt file)");
        if (bytes > bound)
            throw new TensorFileException(file, what + ": claims " + bytes + " bytes, more than the " + bound
                    + " bytes the file can hold (truncated or corrupt)");
        if (bytes > Integer.MAX_VALUE - 8)
            throw new TensorFileException(file, what + ": " + bytes + " bytes is more than one Java buffer can hold (2 GiB)");
        long[] l = LARGEST.get();
        if (bytes > l[0]) {
            l[0] = bytes;
            l[1] = bound;
        }
        return (int) bytes;
    }

    /** This thread's largest checked length since the last {@link #reset()}: {bytes, its bound}. */
    public static long[] largest() {
        return LARGEST.get().clone();
    }

    public static void reset() {
        LARGEST.get()[0] = 0;
        LARGEST.get()[1] = 0;
    }
}
