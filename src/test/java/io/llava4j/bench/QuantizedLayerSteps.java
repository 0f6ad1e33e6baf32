package io.llava4j.bench;

import io.llava4j.engine.MemoryMonitor;
import io.llava4j.model.Checkpoints;
import io.llava4j.model.Llama;
import io.llava4j.model.Llava;
import io.llava4j.nn.Autocast;
import io.llava4j.nn.Precision;
import io.llava4j.nn.quant.QuantSpec;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * The parts of a quantized stage-1 step on a real-sized checkpoint that a loaded 2-core machine can measure in minutes:
 * the load (every LLM projection quantized from the mapped file as it is read), then the LLM's part of the step —
 * forward without a graph and the per-layer recompute + backward, with the layers' weights dequantized one layer at a
 * time — over the first N decoder layers, on T positions of random input embeddings needing a gradient (as the
 * projector's output does in stage 1). Prints one JSON line: times, and peak anonymous RSS after the load and after
 * the layers.
 *
 * <p>{@code java … io.llava4j.bench.QuantizedLayerSteps MODEL_DIR BITS QUANT_TYPE DOUBLE_QUANT LAYERS POSITIONS}
 */
public final class QuantizedLayerSteps {
    private QuantizedLayerSteps() {}

    public static void main(String[] args) {
        Path dir = Path.of(args[0]);
        QuantSpec spec = QuantSpec.of(Integer.parseInt(args[1]), args[2], Boolean.parseBoolean(args[3]));
        int layers = Integer.parseInt(args[4]), positions = Integer.parseInt(args[5]);
        try (MemoryMonitor mon = new MemoryMonitor()) {
            long t0 = System.nanoTime();
            Llava m = Checkpoints.load(dir, null, null, Precision.BF16, spec).model();
            double loadS = (System.nanoTime() - t0) / 1e9;
            long loadPeak = mon.peakAnonBytes();
            long afterLoad = MemoryMonitor.read()[0];
            Llama llm = m.languageModel;
            int total = llm.model.layers.size();
            List<Llama.DecoderLayer> kept = List.copyOf(llm.model.layers.subList(0, layers));
            llm.model.layers.clear(); // the step over the first N layers only
            llm.model.layers.addAll(kept);
            long h = m.config.text().hiddenSize();
            double stepS;
            try (PointerScope s = new PointerScope(); Autocast ac = Autocast.enable(Precision.BF16)) {
                torch.manual_seed(0);
                Tensor embeds = torch.randn(1, positions, h).mul(new Scalar(0.02)).requires_grad_(true); // [1, T, h]
                long t1 = System.nanoTime();
                double loss = llm.checkpointedBackward(embeds, x -> x.pow(new Scalar(2)).mean(), 1.0);
                stepS = (System.nanoTime() - t1) / 1e9;
                if (!Double.isFinite(loss) || !embeds.grad().defined()) throw new IllegalStateException("no loss or no gradient");
            }
            System.out.printf(Locale.ROOT, "{\"model\": \"%s\", \"quant\": \"%s\", \"quantized_weights_gib\": %.3f, \"load_s\": %.1f,"
                            + " \"peak_rss_anon_after_load_mb\": %.0f, \"rss_anon_after_load_mb\": %.0f, \"layers\": %d, \"of_layers\": %d,"
                            + " \"positions\": %d, \"layers_fwd_recompute_bwd_s\": %.1f, \"per_layer_s\": %.2f, \"peak_rss_anon_mb\": %.0f,"
                            + " \"dequant_buffer_mb\": %.0f}%n",
                    dir.getFileName(), spec.describe(), m.quantized.bytes() / 1073741824.0, loadS, loadPeak / 1048576.0, afterLoad / 1048576.0,
                    layers, total, positions, stepS, stepS / layers, mon.peakAnonBytes() / 1048576.0, m.quantized.buffer().bytes() / 1048576.0);
        }
    }
}
