package io.llava4j.engine;

import org.bytedeco.javacpp.Loader;

/**
 * The one entry point to libtorch. {@link #init()} must run before any {@code org.bytedeco.pytorch} class is touched.
 *
 * <p>Why: on an empty JavaCPP cache, loading the presets' {@code libjnitorch} makes JavaCPP extract and dlopen
 * {@code libtorch.so} before {@code libtorch_cpu.so} is in the cache, and the process dies with SIGSEGV. Extracting the
 * whole platform folder first ({@link Loader#cacheResources}) puts every library in place before the first dlopen.
 */
public final class Engine {
    private static volatile boolean ready;

    static {
        // JavaCPP's defaults cap native memory at twice the Java heap and, to enforce it, read the process's resident
        // size from /proc on every tensor handle it allocates: a tenth of a decoding step's time went there. Tensors
        // here are freed by scopes, not by the collector, so the caps are off unless set explicitly (as the launcher
        // does for the CLI: the same for tests and benchmarks run without it).
        for (String p : new String[]{"org.bytedeco.javacpp.maxPhysicalBytes", "org.bytedeco.javacpp.maxBytes"})
            if (System.getProperty(p) == null && System.getProperty(p.toLowerCase(java.util.Locale.ROOT)) == null) System.setProperty(p, "0");
    }

    private Engine() {}

    public static synchronized void init() {
        if (ready) return;
        try {
            String platform = Loader.getPlatform();
            Loader.cacheResources("/org/bytedeco/openblas/" + platform + "/");
            Loader.cacheResources("/org/bytedeco/pytorch/" + platform + "/");
        } catch (java.io.IOException e) {
            throw new IllegalStateException("could not extract libtorch's native libraries into the JavaCPP cache ("
                    + System.getProperty("org.bytedeco.javacpp.cachedir", System.getProperty("user.home") + "/.javacpp/cache")
                    + "): " + e.getMessage(), e);
        }
        Loader.load(org.bytedeco.pytorch.global.torch.class);
        ready = true;
    }

    /** Threads used by libtorch's intra-op pool. */
    public static int threads() {
        init();
        return org.bytedeco.pytorch.global.torch.get_num_threads();
    }

    /**
     * Sets libtorch's intra-op threads and OpenBLAS's own pool (where it can be asked) to {@code n}: libtorch's count
     * alone leaves OpenBLAS's fp32 GEMMs on all cores.
     *
     * @param flag the option that gave {@code n}, for the error message
     */
    public static void setThreads(int n, String flag) {
        if (n < 1) throw new IllegalArgumentException(flag + " must be >= 1, got " + n);
        init();
        org.bytedeco.pytorch.global.torch.set_num_threads(n);
        if (BlasThreads.available()) BlasThreads.set(n);
    }
}
