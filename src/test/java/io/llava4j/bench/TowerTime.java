package io.llava4j.bench;

import io.llava4j.model.Checkpoints;
import io.llava4j.model.Llava;
import io.llava4j.nn.Autocast;
import io.llava4j.nn.Precision;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.global.torch;

import java.nio.file.Path;

/**
 * The frozen tower's share of a real-size AnyRes run: {@code TowerTime MODEL_DIR TILES [REPS]} loads the model with
 * --bf16 (as score and train do), then times {@link Llava#towerFeatures} + the projector on TILES random tiles, no
 * gradient, under bf16 autocast, REPS times (the first includes warm-up), wall and process CPU time. Used by bench/onevision-real-size.sh.
 */
public final class TowerTime {
    private TowerTime() {}

    public static void main(String[] args) {
        Path model = Path.of(args[0]);
        int tiles = Integer.parseInt(args[1]), reps = args.length > 2 ? Integer.parseInt(args[2]) : 2;
        Llava m = Checkpoints.load(model, null, null, Precision.BF16).model();
        int side = m.config.vision().imageSize();
        for (int r = 0; r < reps; r++) {
            try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard(); Autocast ac = Autocast.enable(Precision.BF16)) {
                var pixels = torch.randn(tiles, 3, side, side);
                var os = (com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean();
                long t0 = System.nanoTime(), c0 = os.getProcessCpuTime();
                var f = m.projector.forward(m.towerFeatures(pixels)); // [tiles, 729, llm_h]
                f.sum().item_double();
                System.out.printf("tower + projector, %d tiles of %d px: %.1f s wall, %.1f s CPU (%s)%n", tiles, side,
                        (System.nanoTime() - t0) / 1e9, (os.getProcessCpuTime() - c0) / 1e9,
                        java.util.Arrays.toString(io.llava4j.engine.Tensors.shape(f)));
            }
        }
    }
}
