package io.llava4j.train;

import io.llava4j.config.LlavaConfig;
import io.llava4j.nn.Precision;

import java.util.Locale;
import java.util.Map;

/**
 * What one rank holds under ZeRO stage 0 (a replica), 1, 2 or 3 with W ranks, from config.json alone (no weight is
 * read; {@link RunResources#parameters} counts each part): the weights (frozen parts at their storage precision,
 * trainable ones as whole fp32 master weights on every rank — stage 3: this rank's 1/W part, plus what is gathered
 * whole at once: the parameters outside the decoder layers and one decoder layer), the gradients, and AdamW's two fp32
 * moments (whole in a replica, 1/W under ZeRO). Gradients: a replica and stage 1 hold autograd's whole fp32 gradients
 * from the end of the backward through the update; stage 2 reducing after the backward holds them whole at its end and
 * frees them bucket by bucket as they are reduce-scattered, so only the 1/W shard lives through the update; stage 2
 * with {@code overlap_comm} never holds them whole: the 1/W shard plus, at most, the flat buffers of the buckets being
 * reduced ({@value #IN_FLIGHT_BUCKETS} running, one filling: counted as the largest trainable tensor's and
 * {@value #IN_FLIGHT_BUCKETS} of {@code reduce_bucket_size}) and autograd's gradient of the largest tensor; stage 3 has
 * whole gradients of the gathered units only, reduce-scattered layer by layer. Activations, the JVM and other buffers
 * come on top.
 *
 * @param trainable  trainable parameters N
 * @param weights    bytes of every weight on one rank (stage 3: with {@code gathered})
 * @param overlapped stage 2 reducing during the backward ({@code overlap_comm})
 * @param gathered   stage 3: bytes of trainable parameters gathered whole at once (0 in the other stages)
 */
public record ZeroMemory(int stage, int world, long trainable, long weights, long gradientsAtBackward, long gradientsAtUpdate,
                         long optimizerState, boolean overlapped, long gathered) {

    /** Reduce-scatters of stage 2 with {@code overlap_comm} running at once during the backward (each holds its bucket's flat buffer). */
    public static final int IN_FLIGHT_BUCKETS = 2;

    /** As {@link #of(LlavaConfig, FreezePlan.Flags, LoraSpec, Precision, int, int, boolean, long)}, reducing after the backward. */
    public static ZeroMemory of(LlavaConfig c, FreezePlan.Flags flags, LoraSpec lora, Precision precision, int stage, int world) {
        return of(c, flags, lora, precision, stage, world, false, 0);
    }

    /**
     * @param overlap        {@code overlap_comm} (stage 2 reduce-scatters during the backward; other stages ignore it)
     * @param bucketElements values per reduce bucket ({@code reduce_bucket_size} as filled)
     */
    public static ZeroMemory of(LlavaConfig c, FreezePlan.Flags flags, LoraSpec lora, Precision precision, int stage, int world,
                                boolean overlap, long bucketElements) {
        long frozen = 0, n = 0, inLayers = 0, largest = 0;
        int half = precision == Precision.FP32 ? 4 : 2;
        long h = c.text().hiddenSize();
        for (Map.Entry<String, RunResources.Count> e : RunResources.parameters(c, lora).entrySet()) {
            RunResources.Count k = e.getValue();
            if (k.total() > 0 && FreezePlan.trainsPart(e.getKey(), flags, lora != null)) {
                n += k.total();
                if (e.getKey().equals("llm.layers") || e.getKey().equals("llm.lora")) inLayers += k.total();
                largest = Math.max(largest, switch (e.getKey()) { // the part's largest tensor (at most the part)
                    case "llm.embed", "llm.lm_head" -> (long) c.text().vocabSize() * h;
                    case "llm.layers" -> (long) c.text().intermediateSize() * h;
                    case "projector" -> k.total();
                    default -> Math.min(k.total(), bucketElements);
                });
            } else {
                frozen += e.getKey().equals("projector") ? 4 * k.total() : (long) half * k.matrices() + 4 * k.vectors();
            }
        }
        long shard = stage == 0 ? n : (n + world - 1) / world; // values whose AdamW state this rank holds
        long gradShard = stage == 0 ? 0 : 4 * shard;           // this rank's reduced gradient part
        if (stage == 3) { // the outer unit whole through a micro-batch, and one decoder layer at a time
            long gathered = 4 * (n - inLayers + inLayers / Math.max(1, c.text().numHiddenLayers()));
            return new ZeroMemory(3, world, n, frozen + 4 * shard + gathered, gathered + gradShard, gradShard, 8 * shard, false, gathered);
        }
        boolean overlapped = stage == 2 && overlap;
        long atBackward = overlapped
                ? gradShard + 4 * Math.min(n, 2 * largest + IN_FLIGHT_BUCKETS * Math.min(bucketElements, n)) // shard + buffers
                : 4 * n + gradShard;
        return new ZeroMemory(stage, world, n, frozen + 4 * n, atBackward, (stage == 2 ? 0 : 4 * n) + gradShard, 8 * shard, overlapped, 0);
    }

    /** The per-rank peak: the weights, the gradients at the backward's peak and AdamW's state. */
    public long peak() {
        return weights + Math.max(gradientsAtBackward, gradientsAtUpdate) + optimizerState;
    }

    /** The report {@code --dry_run True} prints with {@code --deepspeed}. */
    public String render() {
        ZeroMemory replica = new ZeroMemory(0, world, trainable, weights - (stage == 3 ? 4 * ((trainable + world - 1) / world) + gathered : 4 * trainable)
                + 4 * trainable, 4 * trainable, 4 * trainable, 8 * trainable, false, 0);
        String weightsNote = stage == 3
                ? String.format(Locale.ROOT, "%,d trainable parameters: this rank's 1/%d fp32 part, plus %,d B gathered whole at once (the parameters outside the decoder layers and one decoder layer); frozen parts at their storage precision",
                        trainable, world, gathered)
                : String.format(Locale.ROOT, "%,d trainable parameters as whole fp32 master weights on every rank, frozen parts at their storage precision", trainable);
        String gradNote = stage == 0 ? "autograd's whole fp32 gradients"
                : stage == 3 ? "autograd's whole fp32 gradients of the gathered units + this rank's 1/" + world + " reduced part"
                : overlapped ? "this rank's 1/" + world + " reduced part + the buckets being reduced during the backward (overlap_comm)"
                : "autograd's whole fp32 gradients + this rank's 1/" + world + " reduced part";
        return String.format(Locale.ROOT, """
                        ZeRO stage %d, per rank at W = %d (from config.json; activations, the JVM and buffers come on top):
                          weights           %10s  (%s)
                          gradients         %10s  at the backward's peak (%s); %s through the update
                          AdamW state       %10s  (%s)
                          per-rank total    %10s  (params %,d B + gradients %,d B + optimizer state %,d B)
                          one replica (DDP) %10s  (AdamW state %s)
                        """, stage, world, gib(weights), weightsNote, gib(gradientsAtBackward), gradNote, gib(gradientsAtUpdate), gib(optimizerState),
                stage == 0 ? "two fp32 moments of every trainable value" : "two fp32 moments of this rank's 1/" + world + " of the trainable values",
                gib(peak()), weights, Math.max(gradientsAtBackward, gradientsAtUpdate), optimizerState, gib(replica.peak()), gib(replica.optimizerState));
    }

    private static String gib(long b) {
        return String.format(Locale.ROOT, "%.2f GiB", b / (double) (1L << 30));
    }
}
