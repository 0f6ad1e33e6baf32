package io.llava4j.dist;

import io.llava4j.train.AdamW;
import io.llava4j.train.DataParallel;
import io.llava4j.train.ModuleGroups;
import io.llava4j.train.OptimizerShards;
import io.llava4j.train.ShardedOptimizer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.Work;
import org.bytedeco.pytorch.global.torch;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * ZeRO stage 1 and 2 (DeepSpeed's Zero Redundancy Optimizer) over a {@link Comm}, for the trainable tensors only
 * (frozen parts stay replicated and never enter communication, as DeepSpeed leaves parameters without gradients).
 *
 * <p>Partition: the trainable tensors, in reverse order (as gradients become ready), are cut into buckets of at most
 * {@code reduce_bucket_size} values; each bucket's flattened values are padded to a multiple of W and rank r owns part
 * r of every bucket — 1/W of all trainable values. For each tensor overlapping its parts a rank holds AdamW's two
 * fp32 moments of that slice only, and updates the slice in place through a view of the parameter. The parameters
 * themselves stay whole on every rank, in fp32 (they are the master weights the forward reads; with {@code --bf16}
 * the forward casts them, as in one process).
 *
 * <p>A step, after the backward of its last micro-batch: one all-reduce of a flag per trainable tensor (which have a
 * gradient on some rank: one process with the global batch updates exactly those); then bucket by bucket, the
 * gradients are flattened and summed across the ranks — stage 1: an all-reduce, of which the rank keeps its part;
 * stage 2: a reduce-scatter, after which the bucket's {@code .grad} tensors are freed, so only the 1/W gradient
 * shard lives through the update. The reduction runs after the backward (not overlapped with it: autograd's whole
 * gradients exist at the end of the backward on every rank). Clipping uses the global norm (one all-reduce of the
 * shards' squared norms). Each rank updates its slices, then every bucket is all-gathered so every rank has every
 * updated value. The results equal one process's with the global batch up to float rounding (the tests: 1e-5).
 */
public final class ZeroDataParallel implements DataParallel, ShardedOptimizer {
    private final Comm comm;
    private final int stage;
    private final long bucketElements; // 0: from the LLM's hidden size (DeepSpeed's "auto" = hidden²)
    private List<String> trainable;
    private Map<String, Tensor> params;
    private final List<Bucket> buckets = new ArrayList<>();
    private final Map<String, Piece> pieces = new LinkedHashMap<>(); // tensor name -> this rank's slice of it
    private final Map<String, Integer> index = new HashMap<>();       // tensor name -> position in trainable
    private AdamW shard;
    private boolean[] has; // per trainable tensor: a gradient on some rank this step
    private int step;
    private long gradBytes, paramBytes, lastGradBytes, lastParamBytes, lastOtherBytes;

    /** This rank's slice [from, to) of a flattened tensor: at {@code at} in its bucket's part; {@code view} is the parameter's values there. */
    private record Piece(String name, long from, long to, long at, Bucket bucket, Tensor view) {
        long size() {
            return to - from;
        }
    }

    /**
     * Trainable tensors reduced together: offsets into the flattened bucket, part size S = ⌈total / W⌉, and this
     * rank's reduced gradient for its part ({@code grad} [S] fp32).
     */
    private record Bucket(List<String> names, long[] offsets, long[] sizes, long total, long part, Tensor grad) {}

    /**
     * @param stage          1 (optimizer state sharded) or 2 (and gradients)
     * @param bucketElements values per reduce bucket; 0 = the LLM's hidden size squared (DeepSpeed's "auto")
     */
    public ZeroDataParallel(Comm comm, int stage, long bucketElements) {
        if (stage != 1 && stage != 2) throw new IllegalArgumentException("ZeRO stage " + stage + ": 1 or 2");
        this.comm = comm;
        this.stage = stage;
        this.bucketElements = bucketElements;
    }

    @Override
    public int rank() {
        return comm.env().rank();
    }

    @Override
    public int worldSize() {
        return comm.env().worldSize();
    }

    @Override
    public ShardedOptimizer sharded() {
        return this;
    }

    /** Every rank starts from rank 0's trainable weights (as DDP's constructor). */
    @Override
    public void start(List<String> trainable, Map<String, Tensor> params) {
        this.trainable = List.copyOf(trainable);
        this.params = params;
        for (int i = 0; i < trainable.size(); i++) index.put(trainable.get(i), i);
        try (NoGradGuard g = new NoGradGuard()) {
            for (String n : trainable) comm.broadcast(params.get(n), "the broadcast of rank 0's " + n);
        }
        comm.takeBytes();
    }

    /** Cuts the buckets, finds this rank's slices and builds the shard's AdamW with {@code main}'s groups. */
    @Override
    public void optimizer(AdamW main, int llmHiddenSize) {
        if (shard != null) throw new IllegalStateException("the ZeRO shard is built once");
        long cap = bucketElements > 0 ? bucketElements : (long) llmHiddenSize * llmHiddenSize;
        List<String> reversed = new ArrayList<>(trainable);
        java.util.Collections.reverse(reversed);
        List<List<String>> groups = new ArrayList<>();
        List<String> cur = new ArrayList<>();
        long curSize = 0;
        for (String n : reversed) {
            long size = params.get(n).numel();
            if (!cur.isEmpty() && curSize + size > cap) {
                groups.add(cur);
                cur = new ArrayList<>();
                curSize = 0;
            }
            cur.add(n);
            curSize += size;
        }
        if (!cur.isEmpty()) groups.add(cur);
        int w = worldSize(), r = rank();
        try (NoGradGuard g = new NoGradGuard()) {
            for (List<String> names : groups) {
                long[] off = new long[names.size()], size = new long[names.size()];
                long total = 0;
                for (int i = 0; i < names.size(); i++) {
                    off[i] = total;
                    size[i] = params.get(names.get(i)).numel();
                    total += size[i];
                }
                long part = (total + w - 1) / w;
                Tensor grad = kept(params.get(names.get(0)).new_zeros(new long[]{part})); // [S] fp32
                Bucket b = new Bucket(List.copyOf(names), off, size, total, part, grad);
                buckets.add(b);
                long mineFrom = r * part, mineTo = Math.min(total, mineFrom + part);
                for (int i = 0; i < names.size(); i++) {
                    long lo = Math.max(off[i], mineFrom), hi = Math.min(off[i] + size[i], mineTo);
                    if (lo >= hi) continue;
                    Tensor view = kept(params.get(names.get(i)).view(-1).narrow(0, lo - off[i], hi - lo)); // [hi - lo], the parameter's own memory
                    pieces.put(names.get(i), new Piece(names.get(i), lo - off[i], hi - off[i], lo - mineFrom, b, view));
                }
            }
        }
        List<AdamW.Group> shardGroups = new ArrayList<>();
        for (AdamW.Group mg : main.groups()) {
            Map<String, Tensor> mine = new LinkedHashMap<>();
            for (String n : mg.params.keySet()) if (pieces.containsKey(n)) mine.put(n, pieces.get(n).view);
            shardGroups.add(new AdamW.Group(mg.name, mine, mg.baseLr, mg.weightDecay));
        }
        shard = new AdamW(shardGroups, main.beta1(), main.beta2(), main.eps());
    }

    @Override
    public double lossScale(long tokens, int accumulation) {
        long global = (long) comm.sum(tokens, "the all-reduce of step " + (step + 1) + "'s supervised-token count");
        return global == 0 ? 0.0 : (double) tokens / global / accumulation;
    }

    private String what() {
        return "the ZeRO-" + stage + " gradient reduction of step " + (step + 1);
    }

    /**
     * Which tensors have a gradient on some rank, then each bucket's gradients summed into this rank's part (stage 1:
     * all-reduce, keep the part; stage 2: reduce-scatter, then the bucket's {@code .grad} freed). One bucket's
     * collective runs while the next is flattened.
     */
    @Override
    public void syncGradients(List<String> ignored, Map<String, Tensor> alsoIgnored) {
        String what = what();
        gradBytes = 0;
        try (NoGradGuard g = new NoGradGuard()) {
            float[] mine = new float[trainable.size()];
            for (int i = 0; i < mine.length; i++) mine[i] = params.get(trainable.get(i)).grad().defined() ? 1 : 0;
            Tensor flags = io.llava4j.engine.Device.place(io.llava4j.engine.Tensors.floats(mine, mine.length)); // [P] on the backend's device
            comm.allreduce(flags, what + " (which tensors have gradients)");
            float[] any = io.llava4j.engine.Tensors.toFloats(flags);
            has = new boolean[any.length];
            for (int i = 0; i < any.length; i++) has[i] = any[i] > 0;
            for (Bucket b : buckets) {
                try (PointerScope s = new PointerScope()) { // the flattened bucket is freed once reduced
                    Tensor flat = b.grad.new_zeros(new long[]{b.part * worldSize()}); // [W·S] this rank's gradients, flattened
                    for (int i = 0; i < b.names.size(); i++) {
                        Tensor p = params.get(b.names.get(i));
                        if (!p.grad().defined()) continue;
                        flat.narrow(0, b.offsets[i], b.sizes[i]).copy_(p.grad().reshape(-1));
                        if (stage == 2) p.mutable_grad().reset(); // the bucket's values live on in flat, then in this rank's part
                    }
                    comm.await(stage == 2 ? comm.reduceScatterAsync(b.grad, flat, what) : comm.allreduceAsync(flat, what), what);
                    if (stage == 1) b.grad.copy_(flat.narrow(0, rank() * b.part, b.part));
                    gradBytes += flat.numel() * flat.element_size();
                }
            }
        }
    }

    /** The gradient of {@code name}'s slice on this rank (a view into its bucket's part), or null without a gradient this step. */
    private Tensor gradOf(String name) {
        if (!has[index.get(name)]) return null;
        Piece p = pieces.get(name);
        return p.bucket.grad.narrow(0, p.at, p.size());
    }

    @Override
    public double clip(double max) {
        double sq = 0;
        try (PointerScope s = new PointerScope()) {
            for (Piece p : pieces.values()) {
                Tensor gr = gradOf(p.name);
                if (gr == null) continue;
                double n = gr.norm().item_double();
                sq += n * n;
            }
        }
        double norm = Math.sqrt(comm.sum(sq, "the gradient-norm all-reduce of step " + (step + 1)));
        if (max > 0) {
            double coef = max / (norm + 1e-6);
            if (coef < 1) for (Bucket b : buckets) b.grad.mul_(new Scalar(coef));
        }
        return norm;
    }

    /** AdamW on this rank's slices, then each bucket all-gathered into every rank's parameters. */
    @Override
    public void step(AdamW main) {
        shard.followLr(main, n -> n);
        shard.step(this::gradOf);
        String what = "the ZeRO parameter all-gather of step " + (step + 1);
        paramBytes = 0;
        try (NoGradGuard g = new NoGradGuard()) {
            for (Bucket b : buckets) {
                try (PointerScope s = new PointerScope()) { // one bucket's buffers at a time
                    Tensor part = b.grad.new_zeros(new long[]{b.part}); // [S] this rank's updated values
                    for (Piece p : pieces.values()) if (p.bucket == b) part.narrow(0, p.at, p.size()).copy_(p.view);
                    Tensor flat = b.grad.new_zeros(new long[]{b.part * worldSize()}); // [W·S] every rank's
                    comm.await(comm.allgatherAsync(flat, part, what), what);
                    paramBytes += flat.numel() * flat.element_size();
                    for (int i = 0; i < b.names.size(); i++)
                        if (has[index.get(b.names.get(i))])
                            params.get(b.names.get(i)).view(-1).copy_(flat.narrow(0, b.offsets[i], b.sizes[i]));
                }
            }
        }
    }

    @Override
    public void dropGradients() {
        for (Bucket b : buckets) b.grad.zero_();
    }

    @Override
    public long stateBytes() {
        return shard.stateBytes();
    }

    @Override
    public void save(Path dir) throws IOException {
        Map<String, OptimizerShards.Part> parts = new LinkedHashMap<>();
        for (Map.Entry<String, AdamW.State> e : shard.state().entrySet()) {
            Piece p = pieces.get(e.getKey());
            parts.put(e.getKey(), new OptimizerShards.Part(p.from, p.to, e.getValue()));
        }
        OptimizerShards.write(dir, rank(), worldSize(), parts);
        barrier("writing the optimizer shards of " + dir.getFileName());
    }

    @Override
    public void restore(Path dir) throws IOException {
        OptimizerShards.Source src = OptimizerShards.open(dir);
        for (Piece p : pieces.values()) {
            OptimizerShards.Slice s = src.read(p.name, p.from, p.to);
            if (s != null) shard.putState(p.name, s.step(), s.expAvg(), s.expAvgSq());
        }
    }

    @Override
    public void barrier(String what) {
        comm.sum(0, what);
    }

    @Override
    public double sum(double local) {
        double s = comm.sum(local, "the all-reduce of step " + (step + 1) + "'s loss");
        long all = comm.takeBytes();
        lastGradBytes = gradBytes;
        lastParamBytes = paramBytes;
        lastOtherBytes = all - gradBytes - paramBytes; // token counts, flags, the norm, the loss
        gradBytes = paramBytes = 0;
        step++;
        return s;
    }

    /**
     * The last step's payload: gradients handed to the reduction (stage 1 all-reduce, stage 2 reduce-scatter),
     * parameters all-gathered, and the rest (token counts, flags, the norm, the loss). Per rank, a ring reduce-scatter
     * or all-gather sends (W−1)/W of its payload, an all-reduce 2(W−1)/W.
     */
    @Override
    public Map<String, Long> stepFields() {
        Map<String, Long> m = new LinkedHashMap<>();
        m.put(stage == 2 ? "reduce_scatter_grad_bytes" : "allreduce_grad_bytes", lastGradBytes);
        m.put("allgather_param_bytes", lastParamBytes);
        m.put("other_bytes", lastOtherBytes);
        return m;
    }

    @Override
    public String describe(List<String> trainable, Map<String, Tensor> params) {
        long total = 0;
        Map<String, Long> perPart = new LinkedHashMap<>();
        for (String n : trainable) {
            long b = params.get(n).numel() * 4;
            perPart.merge(ModuleGroups.partOf(n), b, Long::sum);
            total += b;
        }
        List<String> parts = new ArrayList<>();
        perPart.forEach((k, v) -> parts.add(k + " " + String.format("%,d B", v)));
        int w = worldSize();
        return String.format("ZeRO stage %d: %d ranks (%s, --ddp_timeout %d s) share AdamW's state and the reduced gradients of "
                        + "the trainable %,d B (%s): about %,d B a rank (two moments and one gradient per 1/%d of the values%s); each step "
                        + "%s %,d B of gradients and all-gathers %,d B of parameters, bucket by bucket after the backward; frozen "
                        + "parts stay whole on every rank and are never sent.%n",
                stage, w, comm.backend(), comm.timeout().toSeconds(), total, String.join(", ", parts), 3 * total / w, w,
                stage == 2 ? "; the whole gradients are freed as they are reduce-scattered" : "; the whole gradients are kept until the update",
                stage == 2 ? "reduce-scatters" : "all-reduces", total, total);
    }

    @Override
    public void close() {
        comm.close();
    }

    private static Tensor kept(Tensor t) {
        t.retainReference();
        return t;
    }
}
