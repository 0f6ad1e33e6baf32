package io.llava4j.io;

import com.sun.jna.Function;
import com.sun.jna.Native;
import com.sun.jna.NativeLibrary;
import com.sun.jna.Pointer;

import java.nio.ByteBuffer;
import java.nio.MappedByteBuffer;

/**
 * Gives back the resident pages of a read-only file mapping once its bytes have been copied: {@code madvise(DONTNEED)}
 * on the pages it spans. The mapping stays valid; a later read (saving an unchanged tensor) faults the pages in again
 * from the file. Without it every weight file that was read stays resident beside the copies made from it until the
 * mapping is collected, and a loaded model's peak resident memory counted its weights twice.
 */
public final class MappedPages {
    private static final int MADV_DONTNEED = 4; // Linux
    private static final long PAGE = 4096;
    private static final Function MADVISE = lookup();

    private MappedPages() {}

    /** Releases {@code data}'s resident pages if it is a file mapping (other buffers are left alone). */
    public static void release(ByteBuffer data) {
        if (MADVISE == null || !(data instanceof MappedByteBuffer) || !data.isDirect() || data.capacity() == 0) return;
        long start = Pointer.nativeValue(Native.getDirectBufferPointer(data));
        long end = start + data.capacity();
        // the pages wholly inside this tensor's bytes: a page it shares with a neighbour is left resident
        long first = (start + PAGE - 1) / PAGE * PAGE, last = end / PAGE * PAGE;
        if (last <= first) return;
        MADVISE.invokeInt(new Object[]{new Pointer(first), last - first, MADV_DONTNEED});
    }

    private static Function lookup() {
        try {
            if (!System.getProperty("os.name", "").toLowerCase(java.util.Locale.ROOT).contains("linux")) return null;
            return NativeLibrary.getInstance("c").getFunction("madvise");
        } catch (RuntimeException | LinkageError e) {
            return null;
        }
    }
}
