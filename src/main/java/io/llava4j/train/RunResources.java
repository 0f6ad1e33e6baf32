package io.llava4j.train;

import io.llava4j.config.LlavaConfig;
import io.llava4j.config.TextConfig;
import io.llava4j.config.VisionConfig;
import io.llava4j.nn.Precision;

import java.io.IOException;
import java.nio.file.FileStore;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Whether a run fits, from sizes known before any weight is read: the parameter count of each part follows from
 * config.json; with the {@link FreezePlan}'s per-part rule and the precision this gives the weights in memory, the
 * trainable tensors' gradients and AdamW state, the bytes of each checkpoint and of the final output. Memory is
 * compared with {@code MemAvailable} of {@code /proc/meminfo} (and a cgroup limit when there is one), disk with the
 * usable space of {@code --output_dir}'s file system. All figures are lower bounds (activations, the JVM and the
 * page cache come on top), so a refusal means the run cannot fit.
 */
public final class RunResources {
    private RunResources() {}

    /** Parameters of one part ({@link ModuleGroups#PARTS}): those in matrices (≥ 2 dims) and the rest (biases, norms). */
    public record Count(long matrices, long vectors) {
        public long total() {
            return matrices + vectors;
        }
    }

    /** Parameter counts per part, computed from the config as {@link io.llava4j.model.Llava} builds its modules. */
    public static Map<String, Count> parameters(LlavaConfig c) {
        return parameters(c, null);
    }

    /**
     * {@link #parameters(LlavaConfig)} with the LoRA adapters {@code lora} adds to the LLM's projections (part
     * {@code llm.lora}, 0 without LoRA): r·(in + out) for each adapted projection of each decoder layer.
     */
    public static Map<String, Count> parameters(LlavaConfig c, LoraSpec lora) {
        Map<String, Count> out = new LinkedHashMap<>();
        VisionConfig v = c.vision();
        long h = v.hiddenSize(), in = v.intermediateSize(), p = v.patchSize();
        boolean siglip = v.isSiglip(); // no class token, no pre layer norm, a biased patch conv
        long vm = h * v.numChannels() * p * p + (v.numPatches() + (siglip ? 0L : 1L)) * h // patch conv, position embedding
                + v.numHiddenLayers() * (4 * h * h + 2 * h * in);                     // q k v out, fc1 fc2
        long vv = (siglip ? h + 2 * h : h + 2 * h + 2 * h)                           // patch bias / class embedding, layer norms
                + v.numHiddenLayers() * (4 * h + in + h + 2 * 2 * h);                 // biases, two layer norms
        out.put("vision", new Count(vm, vv));
        TextConfig t = c.text();
        long th = t.hiddenSize();
        long pm = 0, pv = 0;
        for (int k = 1; k <= c.projectorDepth(); k++) {
            pm += (k == 1 ? h : th) * th;
            pv += th;
        }
        out.put("projector", new Count(pm, pv));
        out.put("image_newline", new Count(0, c.anyres() == null ? 0 : th));
        long heads = t.numAttentionHeads(), kv = t.numKeyValueHeads(), hd = t.headDim(), inter = t.intermediateSize();
        out.put("llm.embed", new Count((long) t.vocabSize() * th, 0));
        out.put("llm.layers", new Count(t.numHiddenLayers() * (th * heads * hd * 2 + 2 * th * kv * hd + 3 * th * inter),
                t.numHiddenLayers() * (2 * th + (t.qkvBias() ? heads * hd + 2 * kv * hd : 0)))); // norms, Qwen2's q/k/v biases
        long adapters = 0;
        if (lora != null) {
            Map<String, long[]> inOut = Map.of("q_proj", new long[]{th, heads * hd}, "k_proj", new long[]{th, kv * hd},
                    "v_proj", new long[]{th, kv * hd}, "o_proj", new long[]{heads * hd, th}, "gate_proj", new long[]{th, inter},
                    "up_proj", new long[]{th, inter}, "down_proj", new long[]{inter, th});
            for (String target : lora.targets()) adapters += lora.r() * (inOut.get(target)[0] + inOut.get(target)[1]);
        }
        out.put("llm.lora", new Count(t.numHiddenLayers() * adapters, 0));
        out.put("llm.norm", new Count(0, th));
        out.put("llm.lm_head", new Count(t.tieWordEmbeddings() ? 0 : (long) t.vocabSize() * th, 0));
        return out;
    }

    /**
     * What a run needs, in bytes.
     *
     * @param weights       the model in memory at the run's precision (trainable tensors as fp32 master weights)
     * @param trainingState gradients and AdamW's two moments of the trainable tensors (fp32)
     * @param checkpoint    one checkpoint-N folder (trainable tensors and AdamW state, fp32)
     * @param checkpoints   how many exist at once at the worst moment (kept ones plus the one being written)
     * @param output        the stage's output (the projector, or the model with its trained parts in fp32)
     */
    public record Needs(long weights, long trainingState, long trainableParams, long checkpoint, int checkpoints, long output) {
        public long memory() {
            return weights + trainingState;
        }

        public long disk() {
            return checkpoint * checkpoints + output;
        }
    }

    /** The needs of a run of {@code totalSteps} steps with these flags and LoRA adapters ({@code lora}, null = none). */
    public static Needs needs(LlavaConfig c, FreezePlan.Flags flags, LoraSpec lora, Precision precision, int totalSteps, int saveSteps,
                              Integer saveTotalLimit) {
        return needs(c, flags, lora, precision, totalSteps, saveSteps, saveTotalLimit, null);
    }

    /**
     * As above, with the frozen LLM's decoder-layer matrices held quantized ({@code quant}, null = none): 1 byte a value
     * for 8 bits, half a byte plus the block scales for 4 bits (the written model keeps the file's type).
     */
    public static Needs needs(LlavaConfig c, FreezePlan.Flags flags, LoraSpec lora, Precision precision, int totalSteps, int saveSteps,
                              Integer saveTotalLimit, io.llava4j.nn.quant.QuantSpec quant) {
        long weights = 0, trainable = 0, output = 0;
        int half = precision == Precision.FP32 ? 4 : 2;
        boolean onlyProjector = true;
        Map<String, Count> parts = parameters(c, lora);
        for (Map.Entry<String, Count> e : parts.entrySet()) {
            String part = e.getKey();
            Count n = e.getValue();
            boolean trains = n.total() > 0 && FreezePlan.trainsPart(part, flags, lora != null);
            if (trains) {
                trainable += n.total();
                weights += 4 * n.total();
                output += 4 * n.total();
                if (!part.equals("projector")) onlyProjector = false;
            } else {
                long b = part.equals("projector") ? 4 * n.total() : (long) half * n.matrices() + 4 * n.vectors();
                weights += quant != null && part.equals("llm.layers") ? quantizedBytes(quant, n.matrices()) + 4 * n.vectors() : b;
                if (!part.equals("vision")) output += b; // a frozen tower is not written again
            }
        }
        if (onlyProjector) output = 4 * parts.get("projector").total();
        else if (lora != null) output = 4 * trainable; // the adapters and the other trainables (PEFT's files), not the base
        int saves = saveSteps > 0 ? Math.max(0, (totalSteps - 1) / saveSteps) : 0; // the last step writes the output instead
        int kept = saveTotalLimit == null ? saves : Math.min(saves, saveTotalLimit);
        int atOnce = saves == 0 ? 0 : Math.min(saves, kept + 1);
        return new Needs(weights, 12 * trainable, trainable, 12 * trainable, atOnce, output);
    }

    /** Bytes {@code values} weights take quantized as {@code q} (codes and per-block scales; per-row scales left out). */
    static long quantizedBytes(io.llava4j.nn.quant.QuantSpec q, long values) {
        if (q.type() == io.llava4j.nn.quant.QuantType.INT8) return values;
        long blocks = values / io.llava4j.nn.quant.Blockwise4Bit.BLOCK; // int4's groups are as long, with a bf16 scale and zero
        return values / 2 + (q.doubleQuant() ? blocks : 4 * blocks);
    }

    /**
     * Problems of a run that will not fit (empty when it fits): {@code memory} bytes available (negative: unknown,
     * not checked), {@code outputDir}'s usable disk space. {@code hostHoldsTraining}: the training state lives in host
     * memory (CPU); on a GPU only the loading peak (the weights) is checked against host memory.
     */
    public static List<String> problems(Needs n, long memory, Path outputDir, long diskFree, Precision precision, boolean hostHoldsTraining) {
        List<String> out = new ArrayList<>();
        long mem = hostHoldsTraining ? n.memory() : n.weights();
        if (memory >= 0 && mem > memory)
            out.add(String.format(Locale.ROOT, "not enough memory: the model at %s needs at least %s (weights %s%s), but %s is available%s",
                    precision.name().toLowerCase(Locale.ROOT), gib(mem), gib(n.weights()),
                    hostHoldsTraining ? " + gradients and AdamW state of " + String.format(Locale.ROOT, "%,d", n.trainableParams())
                            + " trainable parameters " + gib(n.trainingState()) : "", gib(memory),
                    precision == Precision.FP32 ? "; --bf16 True stores frozen weights in half the memory" : ""));
        if (diskFree >= 0 && n.disk() > diskFree)
            out.add(String.format(Locale.ROOT, "not enough disk space in %s: %d checkpoint(s) of %s at once%s and the output of %s need %s,"
                            + " but %s is free; lower --save_total_limit, raise --save_steps, or free space",
                    outputDir, n.checkpoints(), gib(n.checkpoint()), n.checkpoints() > 0 ? " (--save_total_limit, plus the one being written)" : "",
                    gib(n.output()), gib(n.disk()), gib(diskFree)));
        return out;
    }

    /** Checks a training run; a run that will not fit is an {@link IllegalArgumentException} saying why. */
    public static void check(LlavaConfig c, TrainArgs a, int totalSteps) {
        Needs n = needs(c, a.freezeFlags(), a.lora(), a.precision(), totalSteps, a.saveSteps(), a.saveTotalLimit(), a.quant());
        List<String> p = problems(n, availableMemory(), a.outputDir(), usableSpace(a.outputDir()), a.precision(),
                io.llava4j.engine.Device.isCpu());
        if (!p.isEmpty())
            throw new IllegalArgumentException("this run will not fit: " + String.join("; ", p) + " (--check_resources False skips this check)");
    }

    /** {@code MemAvailable} of /proc/meminfo, lowered to what a cgroup (v2) limit leaves; -1 when unknown. */
    public static long availableMemory() {
        long avail = -1;
        try {
            for (String line : Files.readAllLines(Path.of("/proc/meminfo")))
                if (line.startsWith("MemAvailable:")) avail = Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
        } catch (IOException | RuntimeException e) {
            return -1;
        }
        try {
            Path max = Path.of("/sys/fs/cgroup/memory.max"), cur = Path.of("/sys/fs/cgroup/memory.current");
            if (avail >= 0 && Files.isReadable(max) && Files.isReadable(cur)) {
                String m = Files.readString(max).trim();
                if (!m.equals("max")) avail = Math.min(avail, Long.parseLong(m) - Long.parseLong(Files.readString(cur).trim()));
            }
        } catch (IOException | RuntimeException e) {
            // no cgroup limit to read: MemAvailable stands
        }
        return avail;
    }

    /** Usable bytes of the file system {@code dir} is (or will be) on; -1 when unknown. */
    public static long usableSpace(Path dir) {
        Path p = dir.toAbsolutePath();
        while (p != null && !Files.exists(p)) p = p.getParent();
        if (p == null) return -1;
        try {
            FileStore fs = Files.getFileStore(p);
            return fs.getUsableSpace();
        } catch (IOException e) {
            return -1;
        }
    }

    static String gib(long bytes) {
        return bytes >= 1L << 30 ? String.format(Locale.ROOT, "%.1f GiB", bytes / (double) (1L << 30))
                : String.format(Locale.ROOT, "%.1f MiB", bytes / (double) (1L << 20));
    }
}
