package io.llava4j.engine;

import com.sun.jna.Function;
import com.sun.jna.Pointer;
import org.bytedeco.javacpp.Loader;

/**
 * The thread count of the OpenBLAS that libtorch's fp32 GEMMs run on ({@code openblas_set_num_threads}, which the
 * JavaCPP preset does not bind; called through JNA at the address JavaCPP resolves). OpenBLAS's threads are its own
 * pool, apart from libtorch's OpenMP threads: threads that each run their own GEMMs at the same time want it at 1.
 */
public final class BlasThreads {
    private static final Function SET = lookup("openblas_set_num_threads");
    private static final Function GET = lookup("openblas_get_num_threads");
    private static final Function CORE = lookup("openblas_get_corename");

    private BlasThreads() {}

    /** True when this process's OpenBLAS can be asked (the symbols are loaded). */
    public static boolean available() {
        return SET != null && GET != null;
    }

    /**
     * The kernel set OpenBLAS chose at load ("Cooperlake", "SkylakeX", "Haswell", ...): its own CPU detection unless
     * the environment's {@code OPENBLAS_CORETYPE} named one; null where OpenBLAS cannot be asked.
     */
    public static String coreName() {
        return CORE == null ? null : CORE.invokeString(new Object[0], false);
    }

    public static int get() {
        return GET.invokeInt(new Object[0]);
    }

    public static void set(int threads) {
        SET.invokeVoid(new Object[]{threads});
    }

    private static final Object LOCK = new Object();
    private static int depth, saved; // guarded by LOCK: calls inside single() now, the count to restore after the last

    /**
     * Runs {@code body} with OpenBLAS at one thread and restores its count afterwards (after the last of several
     * overlapping calls from different threads). For kernels that call OpenBLAS for many small GEMMs from their own
     * parallel loop, such as libtorch's fused CPU attention: with OpenBLAS's pool at 2 threads each small GEMM was
     * split across a second thread that then spun waiting for the next, and one SigLIP layer's attention cost 2-3x
     * the CPU time (bench/README.md, OneVision).
     */
    public static <T> T single(java.util.function.Supplier<T> body) {
        if (!available()) return body.get();
        synchronized (LOCK) {
            if (depth++ == 0) {
                saved = get();
                if (saved != 1) set(1);
            }
        }
        try {
            return body.get();
        } finally {
            synchronized (LOCK) {
                if (--depth == 0 && saved != 1) set(saved);
            }
        }
    }

    private static Function lookup(String symbol) {
        try {
            Engine.init();
            org.bytedeco.javacpp.Pointer p = Loader.addressof(symbol);
            return p == null || p.isNull() ? null : Function.getFunction(new Pointer(p.address()));
        } catch (RuntimeException | LinkageError e) {
            return null;
        }
    }
}
