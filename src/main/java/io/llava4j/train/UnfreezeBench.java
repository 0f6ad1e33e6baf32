package io.llava4j.train;

import io.llava4j.engine.Engine;
import io.llava4j.engine.Tensors;
import io.llava4j.model.Checkpoints;
import io.llava4j.model.Llava;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * What progressive unfreezing costs per schedule step (run by {@code bench/progressive.sh}): for the LLM unfrozen
 * top-down {@code --add} layers at a time, the time of a forward + backward (and, for scale, of a no-grad forward with
 * full logits) on one fixed
 * micro-batch (BOS, one image, {@code --text} supervised ids), with the projector frozen (the backward stops at the
 * lowest trainable layer) and, for comparison, with the projector trained (the backward must reach the embeddings
 * through every layer, as in LLaVA's stage 2). Medians of {@code --runs} after one warm-up. Gradients are computed but
 * no optimizer step is taken, so every row sees the same weights.
 *
 * <p>Arguments: {@code MODEL_DIR [--threads N] [--add K] [--runs N] [--text N]}. Prints one JSON line per row.
 */
public final class UnfreezeBench {
    private UnfreezeBench() {}

    public static void main(String[] args) {
        Path dir = Path.of(args[0]);
        int add = 3, runs = 3, text = 64;
        for (int i = 1; i < args.length; i++) {
            switch (args[i]) {
                case "--add" -> add = Integer.parseInt(args[++i]);
                case "--runs" -> runs = Integer.parseInt(args[++i]);
                case "--text" -> text = Integer.parseInt(args[++i]);
                case "--threads" -> {
                    Engine.init();
                    org.bytedeco.pytorch.global.torch.set_num_threads(Integer.parseInt(args[++i]));
                }
                default -> throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        Engine.init();
        Llava m = Checkpoints.load(dir, null, null, io.llava4j.nn.Precision.FP32).model();
        int layers = m.config.text().numHiddenLayers();
        long itok = m.config.imageTokenIndex();
        int size = m.config.vision().imageSize();
        long[] ids = new long[2 + text], labels = new long[2 + text];
        ids[0] = 1;
        ids[1] = itok;
        labels[0] = labels[1] = Llava.IGNORE_INDEX;
        for (int i = 0; i < text; i++) ids[2 + i] = labels[2 + i] = (i * 7919L) % (Math.min(itok, m.config.text().vocabSize()) - 3) + 3;
        float[] px = new float[3 * size * size];
        for (int i = 0; i < px.length; i++) px[i] = (float) Math.sin(0.001 * i);
        Tensor pixels = Tensors.floats(px, 1, 3, size, size);
        for (Trainability.Module projector : List.of(Trainability.Module.FROZEN, Trainability.Module.FULL)) {
            Trainability t = new Trainability(Trainability.Module.FROZEN, projector, Trainability.Module.layers(layers - add, Trainability.TOP),
                    new Trainability.Unfreeze("llm", 1, add, 0, 0));
            FreezeSchedule s = FreezeSchedule.of(m, t);
            for (int step : s.changeSteps()) {
                FreezePlan p = s.at(step);
                p.apply(m);
                int lowest = layers;
                for (String n : p.trainable()) {
                    int i = FreezeSchedule.layerIndex(n, "llm");
                    if (i >= 0) lowest = Math.min(lowest, i);
                }
                List<Long> fwd = new ArrayList<>(), both = new ArrayList<>();
                for (int r = 0; r <= runs; r++) {
                    long t0 = System.nanoTime();
                    try (PointerScope sc = new PointerScope(); org.bytedeco.pytorch.NoGradGuard g = new org.bytedeco.pytorch.NoGradGuard()) {
                        Llava.Output o = m.forward(pixels, new long[][]{ids}, new long[][]{labels});
                        Llava.loss(o).item_double();
                    }
                    long t1 = System.nanoTime();
                    try (PointerScope sc = new PointerScope()) {
                        m.forwardBackward(pixels, new long[][]{ids}, new long[][]{labels}, null, 0, 1.0, false);
                    }
                    long t2 = System.nanoTime();
                    zeroGrads(m);
                    if (r == 0) continue; // warm-up
                    fwd.add(t1 - t0);
                    both.add(t2 - t1);
                }
                Collections.sort(fwd);
                Collections.sort(both);
                TrainReport.Bytes b = TrainReport.bytes(m, p);
                System.out.printf(java.util.Locale.ROOT, "{\"projector\": \"%s\", \"step\": %d, \"trainable_llm_layers\": %d, \"lowest_trainable_layer\": %d, "
                                + "\"llm_layers\": %d, \"forward_nograd_ms\": %.1f, \"forward_backward_ms\": %.1f, "
                                + "\"gradient_mb\": %.1f, \"threads\": %d}%n",
                        projector, step, layers - lowest, lowest, layers, fwd.get(fwd.size() / 2) / 1e6, both.get(both.size() / 2) / 1e6, b.gradients() / 1048576.0, Engine.threads());
            }
        }
    }

    private static void zeroGrads(Llava m) {
        for (Map.Entry<String, Tensor> e : Tensors.namedParameters(m).entrySet()) {
            Tensor g = e.getValue().grad();
            if (g.defined()) e.getValue().grad().zero_();
        }
    }
}
