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
 * <p>Stage 2 with {@code overlap_comm} (LLaVA's zero2.json): the reduction runs during the backward of every
 * micro-batch. A tensor hook copies each gradient into its bucket's flat buffer as autograd produces it; a bucket whose
 * tensors are all there starts its reduce-scatter at once (buckets strictly in order, so every rank issues the same
 * collectives); at most {@value #IN_FLIGHT} run at a time, and each finished one is added into the rank's fp32
 * gradient shard and its flat buffer freed. The whole {@code .grad} a tensor gets from autograd is released as soon as
 * the next gradient arrives, so no whole gradient of the model ever exists: with gradient accumulation each
 * micro-batch is reduced as it goes and summed into the shard. After each micro-batch the buckets its backward did not
 * fill are sent (zeros for tensors without a gradient) and every reduction is awaited. A tensor whose gradient comes
 * again after its bucket was sent (a tensor used by two separate backward passes, e.g. tied embeddings under layer
 * recomputation) keeps that late part aside; if any rank has one, every rank reduce-scatters the late parts once more
 * before the update.
 *
 * <p>Otherwise (stage 1, or {@code overlap_comm} false) the reduction runs after the backward of the step's last
 * micro-batch, bucket by bucket from the accumulated {@code .grad}: stage 1 all-reduces and keeps its part, stage 2
 * reduce-scatters and frees each bucket's {@code .grad} as it goes. On Gloo a stage-2 "reduce-scatter" is an
 * all-reduce of the flat bucket in place of which the rank keeps its part ({@link #scatterInPlace}: Gloo's own
 * reduce-scatter is that plus a full-size copy); with NCCL it is c10d's reduce-scatter.
 *
 * <p>Every step: one all-reduce of a flag per trainable tensor (which have a gradient on some rank: one process with
 * the global batch updates exactly those); clipping uses the global norm (one all-reduce of the shards' squared
 * norms). Each rank updates its slices, then every bucket is all-gathered so every rank has every updated value. The
 * results equal one process's with the global batch up to float rounding (the tests: 1e-5).
 */
public final class ZeroDataParallel implements DataParallel, ShardedOptimizer {
    /** Reduce-scatters of one micro-batch running at once during the backward (their flat buffers alive). */
    static final int IN_FLIGHT = io.llava4j.train.ZeroMemory.IN_FLIGHT_BUCKETS;
    private final Comm comm;
    private final int stage;
    private final long bucketElements; // 0: from the LLM's hidden size (DeepSpeed's "auto" = hidden²)
    private final boolean overlap;     // stage 2 with overlap_comm: reduce-scatter during each micro-batch's backward
    // the overlapped path's state within a micro-batch (guarded by this)
    private final List<org.bytedeco.pytorch.VoidTensorHook> hooks = new ArrayList<>(); // referenced: native code calls them
    private Tensor[] filling;          // per bucket: its flat [W·S] buffer while gradients arrive, else null
    private boolean[][] arrived;       // per bucket and tensor in it: a gradient this micro-batch
    private int launched;              // buckets sent this micro-batch (in order)
    private final java.util.ArrayDeque<InFlight> inFlight = new java.util.ArrayDeque<>();
    private final List<Tensor> consumed = new ArrayList<>(); // parameters whose .grad is already in a flat buffer: released at the next gradient
    private final Map<Integer, Tensor> late = new LinkedHashMap<>(); // trainable index -> gradient that came after its bucket was sent [numel]
    private boolean[] got;             // per trainable tensor: a gradient on this rank this step
    private RuntimeException failure;  // a collective that failed inside a hook, thrown after the backward
    private int overlapped, lastOverlapped; // buckets started inside the backward this step
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

    /** A running reduction of bucket {@code bucket}: its input {@code flat} [W·S] and output {@code part} [S] (null: all-reduced in place). */
    private record InFlight(int bucket, Tensor flat, Tensor part, Work work) {}

    /**
     * @param stage          1 (optimizer state sharded) or 2 (and gradients)
     * @param bucketElements values per reduce bucket; 0 = the LLM's hidden size squared (DeepSpeed's "auto")
     * @param overlapComm    {@code overlap_comm}: stage 2 reduce-scatters during each micro-batch's backward (stage 1
     *                       always reduces after the backward)
     */
    public ZeroDataParallel(Comm comm, int stage, long bucketElements, boolean overlapComm) {
        if (stage != 1 && stage != 2) throw new IllegalArgumentException("ZeRO stage " + stage + ": 1 or 2");
        this.comm = comm;
        this.stage = stage;
        this.bucketElements = bucketElements;
        this.overlap = overlapComm && stage == 2;
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
        if (overlap) hook();
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

    /** One hook per trainable tensor: its gradient of each backward goes into its bucket's flat buffer. */
    private void hook() {
        filling = new Tensor[buckets.size()];
        arrived = new boolean[buckets.size()][];
        got = new boolean[trainable.size()];
        for (int k = 0; k < buckets.size(); k++) {
            Bucket b = buckets.get(k);
            arrived[k] = new boolean[b.names.size()];
            for (int i = 0; i < b.names.size(); i++) {
                int bucket = k, slot = i;
                org.bytedeco.pytorch.VoidTensorHook h = new org.bytedeco.pytorch.VoidTensorHook() {
                    @Override
                    public void call(org.bytedeco.pytorch.TensorBase grad) {
                        ready(bucket, slot, grad);
                    }
                };
                hooks.add(h);
                Tensor p = params.get(b.names.get(i));
                boolean on = p.requires_grad(); // a tensor a plan unfreezes later: libtorch hooks only a tensor that requires grad
                if (!on) p.requires_grad_(true);
                p.register_hook(h);
                if (!on) p.requires_grad_(false);
            }
        }
    }

    /**
     * Tensor {@code i} of bucket {@code k} has gradient {@code g} from this backward (autograd adds it to {@code .grad}
     * right after): it is added into the bucket's flat buffer (or set aside when the bucket was sent already), the
     * {@code .grad} of the tensors before it released, and every bucket now complete starts, in order. A failing
     * collective is kept and thrown after the backward (not through autograd's native frames).
     */
    private synchronized void ready(int k, int i, org.bytedeco.pytorch.TensorBase g) {
        if (failure != null || !g.defined()) return;
        try (PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            releaseConsumed();
            Bucket b = buckets.get(k);
            String name = b.names.get(i);
            Tensor param = params.get(name);
            Tensor grad = new Tensor(g).reshape(-1); // [numel], this backward's gradient
            int t = index.get(name);
            got[t] = true;
            consumed.add(param);
            if (launched > k) { // its bucket is on its way: keep this part for a second reduction before the update
                Tensor held = late.get(t);
                if (held == null) late.put(t, kept(grad.clone()));
                else held.add_(grad);
                return;
            }
            if (filling[k] == null) filling[k] = kept(b.grad.new_zeros(new long[]{b.part * worldSize()})); // [W·S]
            Tensor slot = filling[k].narrow(0, b.offsets[i], b.sizes[i]);
            if (arrived[k][i]) slot.add_(grad); // a second backward in the same micro-batch (layer recomputation)
            else slot.copy_(grad);
            arrived[k][i] = true;
            while (launched < buckets.size() && complete(launched)) {
                launch(launched++);
                overlapped++;
            }
        } catch (RuntimeException e) {
            failure = e;
        }
    }

    private boolean complete(int k) {
        for (boolean a : arrived[k]) if (!a) return false;
        return true;
    }

    /** Autograd has added these gradients to {@code .grad} by now, and they are in a flat buffer: the whole ones go. */
    private void releaseConsumed() {
        for (Tensor p : consumed) p.mutable_grad().reset();
        consumed.clear();
    }

    /** Starts bucket {@code k}'s reduce-scatter; beyond {@value #IN_FLIGHT} running, the oldest is finished first. */
    private void launch(int k) {
        Bucket b = buckets.get(k);
        Tensor flat = filling[k] != null ? filling[k] : kept(b.grad.new_zeros(new long[]{b.part * worldSize()})); // [W·S]
        filling[k] = null;
        gradBytes += flat.numel() * flat.element_size();
        if (scatterInPlace()) {
            inFlight.add(new InFlight(k, flat, null, comm.allreduceAsync(flat, what())));
        } else {
            Tensor part = kept(b.grad.new_empty(new long[]{b.part})); // [S] this micro-batch's sum of this rank's part
            inFlight.add(new InFlight(k, flat, part, comm.reduceScatterAsync(part, flat, what())));
        }
        while (inFlight.size() > IN_FLIGHT) finish(inFlight.poll());
    }

    /**
     * Whether stage 2's reductions are all-reduces of the flat bucket in place, of which the rank keeps its part: on
     * Gloo, whose reduce-scatter (libtorch's {@code ProcessGroupGloo::reduce_scatter_tensor_coalesced}) clones the
     * whole input and all-reduces the clone, this sends the same bytes without the full-size copy. NCCL reduce-scatters.
     */
    private boolean scatterInPlace() {
        return comm.backend().equals("gloo");
    }

    /** Waits for a reduction, adds this rank's part into its gradient shard and frees the buffers. */
    private void finish(InFlight f) {
        try {
            comm.await(f.work, what());
            Bucket b = buckets.get(f.bucket);
            b.grad.add_(f.part != null ? f.part : f.flat.narrow(0, rank() * b.part, b.part));
        } finally {
            f.flat.releaseReference();
            if (f.part != null) f.part.releaseReference();
        }
    }

    /**
     * Overlapped stage 2: the buckets this micro-batch's backward did not complete are sent (zeros for tensors without
     * a gradient on this rank), and every reduction is added into the shard before the next micro-batch.
     */
    @Override
    public synchronized void afterMicroBatch() {
        if (!overlap) return;
        try (NoGradGuard ng = new NoGradGuard()) {
            releaseConsumed();
            if (failure != null) throw failure;
            while (launched < buckets.size()) launch(launched++);
            while (!inFlight.isEmpty()) finish(inFlight.poll());
        } finally {
            launched = 0;
            for (boolean[] a : arrived) java.util.Arrays.fill(a, false);
        }
    }

    /**
     * Which tensors have a gradient on some rank, then (unless the backward reduced them already) each bucket's
     * gradients summed into this rank's part (stage 1: all-reduce, keep the part; stage 2: reduce-scatter, then the
     * bucket's {@code .grad} freed). One bucket's collective runs while the next is flattened.
     */
    @Override
    public void syncGradients(List<String> ignored, Map<String, Tensor> alsoIgnored) {
        if (overlap) {
            syncOverlapped();
            return;
        }
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
                    boolean scatter = stage == 2 && !scatterInPlace();
                    comm.await(scatter ? comm.reduceScatterAsync(b.grad, flat, what) : comm.allreduceAsync(flat, what), what);
                    if (!scatter) b.grad.copy_(flat.narrow(0, rank() * b.part, b.part));
                    gradBytes += flat.numel() * flat.element_size();
                }
            }
        }
    }

    /**
     * Overlapped stage 2 after the step's micro-batches: the shards hold the reduced gradients already. One all-reduce
     * of the per-tensor flags and of "a late part" (the last flag); if any rank set it, every rank reduce-scatters every
     * bucket once more from its late parts (zeros elsewhere) into the shard.
     */
    private synchronized void syncOverlapped() {
        String what = what();
        try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            float[] mine = new float[trainable.size() + 1];
            for (int i = 0; i < trainable.size(); i++) mine[i] = got[i] ? 1 : 0;
            mine[trainable.size()] = late.isEmpty() ? 0 : 1;
            Tensor flags = io.llava4j.engine.Device.place(io.llava4j.engine.Tensors.floats(mine, mine.length)); // [P + 1]
            comm.allreduce(flags, what + " (which tensors have gradients)");
            float[] any = io.llava4j.engine.Tensors.toFloats(flags);
            has = new boolean[trainable.size()];
            for (int i = 0; i < has.length; i++) has[i] = any[i] > 0;
            if (any[trainable.size()] > 0) {
                for (int k = 0; k < buckets.size(); k++) {
                    Bucket b = buckets.get(k);
                    Tensor flat = kept(b.grad.new_zeros(new long[]{b.part * worldSize()})); // [W·S]
                    for (int i = 0; i < b.names.size(); i++) {
                        Tensor held = late.get(index.get(b.names.get(i)));
                        if (held != null) flat.narrow(0, b.offsets[i], b.sizes[i]).copy_(held);
                    }
                    filling[k] = flat;
                    launch(k);
                }
                while (!inFlight.isEmpty()) finish(inFlight.poll());
            }
        } finally {
            for (Tensor t : late.values()) t.releaseReference();
            late.clear();
            java.util.Arrays.fill(got, false);
            lastOverlapped = overlapped;
            overlapped = 0;
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
                b.grad.zero_(); // the overlapped path sums the next step's micro-batches into it
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
        OptimizerShards.writeSlices(dir, rank(), worldSize(), shard, slices());
        barrier("writing the optimizer shards of " + dir.getFileName());
    }

    @Override
    public void restore(Path dir) throws IOException {
        OptimizerShards.readSlices(dir, shard, slices());
    }

    /** Each tensor's [from, to) of its flattened values that this rank owns. */
    private Map<String, long[]> slices() {
        Map<String, long[]> m = new LinkedHashMap<>();
        pieces.forEach((name, p) -> m.put(name, new long[]{p.from, p.to}));
        return m;
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
     * or all-gather sends (W−1)/W of its payload, an all-reduce 2(W−1)/W (on Gloo stage 2's reductions are all-reduces).
     */
    @Override
    public Map<String, Long> stepFields() {
        Map<String, Long> m = new LinkedHashMap<>();
        m.put(stage == 2 ? "reduce_scatter_grad_bytes" : "allreduce_grad_bytes", lastGradBytes);
        m.put("allgather_param_bytes", lastParamBytes);
        m.put("other_bytes", lastOtherBytes);
        if (overlap) m.put("buckets_started_in_backward", (long) lastOverlapped);
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
                        + "%s %,d B of gradients %s and all-gathers %,d B of updated parameters; frozen "
                        + "parts stay whole on every rank and are never sent.%n",
                stage, w, comm.backend(), comm.timeout().toSeconds(), total, String.join(", ", parts), 3 * total / w, w,
                overlap ? "; no whole gradient is kept: each is freed once in its bucket"
                        : stage == 2 ? "; the whole gradients are freed as they are reduce-scattered" : "; the whole gradients are kept until the update",
                stage == 2 ? (scatterInPlace() ? "reduce-scatters (on Gloo: all-reduces in place, keeping its part)" : "reduce-scatters") : "all-reduces", total,
                overlap ? "per micro-batch, bucket by bucket during the backward (overlap_comm)" : "bucket by bucket after the backward", total);
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
