package io.llava4j.dist;

import io.llava4j.engine.Device;
import io.llava4j.engine.Tensors;
import io.llava4j.model.LayerHooks;
import io.llava4j.train.AdamW;
import io.llava4j.train.DataParallel;
import io.llava4j.train.ModuleGroups;
import io.llava4j.train.OptimizerShards;
import io.llava4j.train.ShardedOptimizer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * ZeRO stage 3 (DeepSpeed's Zero Redundancy Optimizer with partitioned parameters) over a {@link Comm}, for the
 * trainable tensors only: frozen parts stay whole on every rank and are never sent.
 *
 * <p>Partition: the trainable tensors are grouped into gather units — one per LLM decoder layer (its trainable
 * tensors, {@code language_model.model.layers.N.*}) and one for everything else that trains (projector, embed_tokens,
 * the final norm, lm_head, image_newline, a trained tower). A unit's tensors are flattened in order and padded to a
 * multiple of W; rank r persistently holds part r of every unit: the fp32 master values ({@code master} [S]), its
 * reduced gradient ({@code grad} [S]) and AdamW's two moments of that part — 1/W of all trainable state. Between uses
 * a trainable parameter holds no values (an empty tensor).
 *
 * <p>A micro-batch (decoder layers are always recomputed in the backward, {@link io.llava4j.model.Llama#checkpointedBackward}):
 * the outer unit is all-gathered before the forward and stays whole through the micro-batch; each decoder layer is
 * all-gathered before its forward (run without a graph) and freed after it, gathered again before its recompute, and
 * right after its backward its gradients are reduce-scattered into this rank's part and the whole gradients and
 * parameters freed; the outer unit's gradients are reduce-scattered after the backward. Gradient accumulation sums the
 * reduced parts (one reduce-scatter per unit per micro-batch, as DeepSpeed). A rank with no sample in a micro-batch
 * joins the same collectives in the same order. Gathers are not prefetched: each runs when its layer is reached.
 *
 * <p>The step: one all-reduce of a flag per trainable tensor (which have a gradient on some rank), the global gradient
 * norm from the parts (clipping scales the parts), AdamW on this rank's slices of the master values. Nothing is
 * gathered after the update: the next forward gathers each unit. Checkpoints and the saved model gather every unit
 * first ({@link #gatherAll}): the saved model is one consolidated folder. Parameters are gathered in fp32 (with
 * {@code --bf16} the forward casts them, as in one process), so results equal one process's with the global batch up
 * to float rounding.
 */
public final class Zero3DataParallel implements DataParallel, ShardedOptimizer, LayerHooks {
    private static final Pattern LAYER = Pattern.compile("^language_model\\.model\\.layers\\.(\\d+)\\.");

    private final Comm comm;
    private List<String> trainable;
    private Map<String, Tensor> params;
    private final Map<String, Integer> index = new HashMap<>(); // tensor name -> position in trainable
    private Unit outer;                                          // null when only decoder layers train
    private final TreeMap<Integer, Unit> layers = new TreeMap<>();   // decoder layer -> its unit (layers that train)
    private final List<Unit> units = new ArrayList<>();
    private final Map<String, Piece> pieces = new LinkedHashMap<>(); // tensor name -> this rank's slice of it
    private AdamW shard;
    private boolean[] local; // per trainable tensor: a gradient on this rank this step
    private boolean[] has;   // per trainable tensor: a gradient on some rank this step
    private int step;
    private long gatherBytes, reduceBytes, lastGatherBytes, lastReduceBytes, lastOtherBytes, lastResident;

    /**
     * Trainable tensors gathered and reduced together: their offsets and sizes in the flattened unit, part size
     * S = ⌈total / W⌉, this rank's fp32 master values of its part and their reduced gradient.
     */
    private static final class Unit {
        final String label;
        final List<String> names;
        final long[] offsets, sizes;
        final long[][] shapes;
        final long total, part;
        final Tensor master; // [S] fp32: this rank's values of the flattened unit
        final Tensor grad;   // [S] fp32: their gradient, summed over the ranks and the step's micro-batches
        boolean gathered;

        Unit(String label, List<String> names, long[] offsets, long[] sizes, long[][] shapes, long total, long part, Tensor master, Tensor grad) {
            this.label = label;
            this.names = names;
            this.offsets = offsets;
            this.sizes = sizes;
            this.shapes = shapes;
            this.total = total;
            this.part = part;
            this.master = master;
            this.grad = grad;
        }
    }

    /** This rank's slice [from, to) of a flattened tensor, at {@code at} in its unit's part; {@code view} is the master values there. */
    private record Piece(String name, long from, long to, long at, Unit unit, Tensor view) {
        long size() {
            return to - from;
        }
    }

    public Zero3DataParallel(Comm comm) {
        this.comm = comm;
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

    @Override
    public LayerHooks layerHooks() {
        return this;
    }

    /**
     * Every rank starts from rank 0's trainable weights (as DDP's constructor); then each keeps its part of every unit
     * as fp32 master values and the parameters are freed.
     */
    @Override
    public void start(List<String> trainable, Map<String, Tensor> params) {
        this.trainable = List.copyOf(trainable);
        this.params = params;
        for (int i = 0; i < trainable.size(); i++) index.put(trainable.get(i), i);
        local = new boolean[trainable.size()];
        Map<Integer, List<String>> byLayer = new TreeMap<>();
        List<String> rest = new ArrayList<>();
        for (String n : trainable) {
            Matcher m = LAYER.matcher(n);
            if (m.find()) byLayer.computeIfAbsent(Integer.parseInt(m.group(1)), k -> new ArrayList<>()).add(n);
            else rest.add(n);
        }
        int w = worldSize(), r = rank();
        try (NoGradGuard g = new NoGradGuard()) {
            for (String n : trainable) comm.broadcast(params.get(n), "the broadcast of rank 0's " + n);
            if (!rest.isEmpty()) outer = unit("the parameters outside the decoder layers", rest, w, r);
            byLayer.forEach((layer, names) -> layers.put(layer, unit("decoder layer " + layer, names, w, r)));
        }
        comm.takeBytes();
        releaseAll();
    }

    /** Cuts one unit: this rank's part of its flattened values copied into a master tensor of its own. */
    private Unit unit(String label, List<String> names, int w, int r) {
        long[] off = new long[names.size()], size = new long[names.size()];
        long[][] shapes = new long[names.size()][];
        long total = 0;
        for (int i = 0; i < names.size(); i++) {
            Tensor p = params.get(names.get(i));
            if (p.scalar_type().intern() != torch.ScalarType.Float)
                throw new IllegalStateException(names.get(i) + ": ZeRO-3 partitions fp32 master weights, this one is " + p.scalar_type().intern());
            off[i] = total;
            size[i] = p.numel();
            shapes[i] = Tensors.shape(p);
            total += size[i];
        }
        long part = (total + w - 1) / w;
        Tensor first = params.get(names.get(0));
        Tensor master = kept(first.new_zeros(new long[]{part})); // [S] fp32
        Tensor grad = kept(first.new_zeros(new long[]{part}));   // [S] fp32
        Unit u = new Unit(label, List.copyOf(names), off, size, shapes, total, part, master, grad);
        units.add(u);
        long mineFrom = r * part, mineTo = Math.min(total, mineFrom + part);
        for (int i = 0; i < names.size(); i++) {
            long lo = Math.max(off[i], mineFrom), hi = Math.min(off[i] + size[i], mineTo);
            if (lo >= hi) continue;
            Tensor view = kept(master.narrow(0, lo - mineFrom, hi - lo)); // [hi - lo], the master part's own memory
            try (PointerScope s = new PointerScope()) {
                view.copy_(params.get(names.get(i)).reshape(-1).narrow(0, lo - off[i], hi - lo));
            }
            pieces.put(names.get(i), new Piece(names.get(i), lo - off[i], hi - off[i], lo - mineFrom, u, view));
        }
        u.gathered = true; // the parameters are still whole: releaseAll frees them
        return u;
    }

    /** The shard's AdamW over this rank's slices of the master values, with {@code main}'s groups. */
    @Override
    public void optimizer(AdamW main, int llmHiddenSize) {
        if (shard != null) throw new IllegalStateException("the ZeRO-3 shard is built once");
        List<AdamW.Group> shardGroups = new ArrayList<>();
        for (AdamW.Group mg : main.groups()) {
            Map<String, Tensor> mine = new LinkedHashMap<>();
            for (String n : mg.params.keySet()) if (pieces.containsKey(n)) mine.put(n, pieces.get(n).view);
            shardGroups.add(new AdamW.Group(mg.name, mine, mg.baseLr, mg.weightDecay));
        }
        shard = new AdamW(shardGroups, main.beta1(), main.beta2(), main.eps());
    }

    /** All-gathers a unit's parts into whole parameters (their values become views of one flat [W·S] buffer). */
    private void gather(Unit u) {
        if (u == null || u.gathered) return;
        String what = "the ZeRO-3 all-gather of " + u.label + " (step " + (step + 1) + ")";
        try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            Tensor flat = u.master.new_empty(new long[]{u.part * worldSize()}); // [W·S] every rank's part
            comm.await(comm.allgatherAsync(flat, u.master, what), what);
            gatherBytes += flat.numel() * flat.element_size();
            for (int i = 0; i < u.names.size(); i++)
                params.get(u.names.get(i)).__dispatch_set_data(flat.narrow(0, u.offsets[i], u.sizes[i]).view(u.shapes[i]));
        }
        u.gathered = true;
    }

    /** Frees a unit's whole parameters: each holds an empty tensor until the next gather. */
    private void release(Unit u) {
        if (u == null || !u.gathered) return;
        try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            for (String n : u.names) {
                Tensor p = params.get(n);
                p.__dispatch_set_data(p.new_empty(new long[]{0}));
            }
        }
        u.gathered = false;
    }

    /** Reduce-scatters a unit's gradients of this micro-batch into this rank's part (added to it) and frees them. */
    private void reduce(Unit u) {
        if (u == null) return;
        String what = "the ZeRO-3 gradient reduce-scatter of " + u.label + " (step " + (step + 1) + ")";
        try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            Tensor flat = u.grad.new_zeros(new long[]{u.part * worldSize()}); // [W·S] this rank's gradients, flattened
            for (int i = 0; i < u.names.size(); i++) {
                Tensor p = params.get(u.names.get(i));
                if (!p.grad().defined()) continue;
                local[index.get(u.names.get(i))] = true;
                flat.narrow(0, u.offsets[i], u.sizes[i]).copy_(p.grad().reshape(-1));
                p.mutable_grad().reset(); // the whole gradient lives on only in flat, then in this rank's part
            }
            Tensor part = u.grad.new_empty(new long[]{u.part}); // [S]
            comm.await(comm.reduceScatterAsync(part, flat, what), what);
            u.grad.add_(part);
            reduceBytes += flat.numel() * flat.element_size();
        }
    }

    @Override
    public void gather(int layer) {
        gather(layers.get(layer));
    }

    @Override
    public void release(int layer) {
        release(layers.get(layer));
    }

    @Override
    public void backwardDone(int layer) {
        Unit u = layers.get(layer);
        reduce(u);
        release(u);
    }

    @Override
    public void beforeMicroBatch() {
        gather(outer);
    }

    @Override
    public void afterMicroBatch() {
        reduce(outer);
        release(outer);
    }

    /** The collectives of a micro-batch, in {@link io.llava4j.model.Llama#checkpointedBackward}'s order, with no sample here. */
    @Override
    public void idleMicroBatch(int accumulation) {
        beforeMicroBatch();
        lossScale(0, accumulation);
        for (int layer : layers.keySet()) {
            gather(layer);
            release(layer);
        }
        for (int layer : layers.descendingKeySet()) {
            gather(layer);
            backwardDone(layer);
        }
        afterMicroBatch();
    }

    @Override
    public double lossScale(long tokens, int accumulation) {
        long global = (long) comm.sum(tokens, "the all-reduce of step " + (step + 1) + "'s supervised-token count");
        return global == 0 ? 0.0 : (double) tokens / global / accumulation;
    }

    /** The gradients are reduced already, unit by unit during the backward: only which tensors have one on some rank. */
    @Override
    public void syncGradients(List<String> ignored, Map<String, Tensor> alsoIgnored) {
        float[] mine = new float[trainable.size()];
        for (int i = 0; i < mine.length; i++) mine[i] = local[i] ? 1 : 0;
        try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            Tensor flags = Device.place(Tensors.floats(mine, mine.length)); // [P] on the backend's device
            comm.allreduce(flags, "the ZeRO-3 step " + (step + 1) + " (which tensors have gradients)");
            float[] any = Tensors.toFloats(flags);
            has = new boolean[any.length];
            for (int i = 0; i < any.length; i++) has[i] = any[i] > 0;
        }
        java.util.Arrays.fill(local, false);
    }

    /** The gradient of {@code name}'s slice on this rank (a view into its unit's part), or null without a gradient this step. */
    private Tensor gradOf(String name) {
        if (!has[index.get(name)]) return null;
        Piece p = pieces.get(name);
        return p.unit.grad.narrow(0, p.at, p.size());
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
            if (coef < 1) for (Unit u : units) u.grad.mul_(new Scalar(coef));
        }
        return norm;
    }

    /** AdamW on this rank's slices of the master values; the next forward gathers the updated units. */
    @Override
    public void step(AdamW main) {
        shard.followLr(main, n -> n);
        shard.step(this::gradOf);
        dropGradients();
    }

    @Override
    public void dropGradients() {
        for (Unit u : units) u.grad.zero_();
    }

    @Override
    public void gatherAll() {
        for (Unit u : units) gather(u);
    }

    @Override
    public void releaseAll() {
        for (Unit u : units) release(u);
    }

    @Override
    public long stateBytes() {
        return shard.stateBytes();
    }

    /**
     * Bytes this rank holds for the trainable tensors between steps: its parts' master values and reduced gradients,
     * AdamW's moments of them, and whatever the parameters themselves still hold (nothing once every unit is released).
     */
    private long residentBytes() {
        long b = 0;
        for (Unit u : units) b += (u.master.numel() + u.grad.numel()) * 4;
        for (String n : trainable) {
            Tensor p = params.get(n);
            b += p.numel() * p.element_size() + (p.grad().defined() ? p.grad().numel() * p.grad().element_size() : 0);
        }
        return b + shard.stateBytes();
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
        lastGatherBytes = gatherBytes;
        lastReduceBytes = reduceBytes;
        lastOtherBytes = all - gatherBytes - reduceBytes; // token counts, flags, the norm, the loss
        gatherBytes = reduceBytes = 0;
        lastResident = residentBytes();
        step++;
        return s;
    }

    /**
     * The last step's payload: gradients reduce-scattered and parameters all-gathered (per micro-batch: every decoder
     * layer twice, the outer unit once), and the rest (token counts, flags, the norm, the loss); and what rank 0 holds
     * for the trainable tensors after the step ({@link #residentBytes}: 16 B per value of its parts).
     */
    @Override
    public Map<String, Long> stepFields() {
        Map<String, Long> m = new LinkedHashMap<>();
        m.put("reduce_scatter_grad_bytes", lastReduceBytes);
        m.put("allgather_param_bytes", lastGatherBytes);
        m.put("other_bytes", lastOtherBytes);
        m.put("resident_trainable_bytes", lastResident);
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
        return String.format("ZeRO stage 3: %d ranks (%s, --ddp_timeout %d s) partition the trainable %,d B (%s): each rank keeps "
                        + "1/%d of the fp32 values, their reduced gradients and AdamW's two moments, about %,d B a rank; each decoder layer "
                        + "is all-gathered before its forward and again before its recompute in the backward (decoder layers are "
                        + "recomputed), its gradients reduce-scattered right after its backward; the parameters outside the decoder "
                        + "layers are gathered for the whole micro-batch; frozen parts stay whole on every rank and are never sent.%n",
                w, comm.backend(), comm.timeout().toSeconds(), total, String.join(", ", parts), w, 4 * ((total + w - 1) / w));
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
