package io.llava4j.engine;

import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * Where tensors live: the CPU (default) or a CUDA GPU ({@code --device cuda}), chosen once at the command line.
 * Parameters move with the model after loading; the places that create tensors from Java data
 * ({@link Tensors#longs}, {@link Tensors#floats}, {@link Tensors#fromHost}, position ranges, padding, the KV cache)
 * {@link #place} them. CUDA needs the GPU build of the presets ({@code mvn -Pgpu package}); the CPU build refuses it.
 * The CUDA path is not exercised by the tests (no GPU in CI).
 */
public final class Device {
    private static volatile org.bytedeco.pytorch.Device current; // null = CPU

    private Device() {}

    /** {@code cpu}, {@code cuda} or {@code cuda:N}; refuses CUDA when the presets on the class path have none. */
    public static void use(String name) {
        Engine.init();
        String n = name == null ? "cpu" : name.trim().toLowerCase(java.util.Locale.ROOT);
        if (n.equals("cpu")) {
            current = null;
            return;
        }
        if (!n.equals("cuda") && !n.matches("cuda:\\d+"))
            throw new IllegalArgumentException("--device " + name + ": use cpu, cuda or cuda:N");
        if (!torch.cuda_is_available())
            throw new IllegalArgumentException("--device " + name + ": no CUDA here — this build carries libtorch's CPU "
                    + "presets; build with `mvn -Pgpu -DskipTests package` (libtorch's CUDA presets) on a machine with an "
                    + "NVIDIA driver, or use --device cpu");
        current = new org.bytedeco.pytorch.Device(n);
    }

    public static boolean isCpu() {
        return current == null;
    }

    /** The chosen device; null for the CPU. */
    public static org.bytedeco.pytorch.Device current() {
        return current;
    }

    /** {@code t} on the chosen device (itself on the CPU). */
    public static Tensor place(Tensor t) {
        org.bytedeco.pytorch.Device d = current;
        return d == null ? t : t.to(d, t.scalar_type().intern());
    }

    /** Moves a loaded module's parameters to the chosen device (in place: Java handles stay valid). */
    public static void move(org.bytedeco.pytorch.Module m) {
        org.bytedeco.pytorch.Device d = current;
        if (d != null) m.to(d, false);
    }
}
