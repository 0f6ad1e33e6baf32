package io.llava4j.dist;

import io.llava4j.train.DataParallel;
import io.llava4j.train.ModuleGroups;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.Work;
import org.bytedeco.pytorch.global.torch;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Data-parallel training over a {@link Comm}: PyTorch DDP's gradient all-reduce for the trainable tensors only
 * (frozen ones never enter communication), in buckets of at most {@code --ddp_bucket_cap_mb} (DDP's 25 MB default),
 * in reverse parameter order as DDP fills them, overlapped with the backward of each step's last micro-batch: a tensor
 * hook puts each gradient into its bucket as autograd produces it, and buckets start, strictly in order, once complete.
 *
 * <p>Per micro-batch one 8-byte all-reduce of the supervised-token count gives each rank its loss scale
 * ({@code tokens / global tokens / accumulation}); per step the gradient buckets, then one all-reduce of a flag per
 * trainable tensor (which tensors have a gradient on some rank: one process with the global batch steps exactly
 * those) plus a flag for a stale overlapped bucket, then the step's loss. Every rank issues the same collectives in
 * the same order, whichever parameters its micro-batches touched.
 */
public final class DistributedDataParallel implements DataParallel {
    private final Comm comm;
    private final long bucketCap;
    private final List<Bucket> buckets = new ArrayList<>();
    private Tensor flags; // [P + 1] float: 1 where this rank has a gradient; last: 1 if an overlapped bucket went stale
    private final Map<String, int[]> slots = new LinkedHashMap<>(); // name -> {bucket, index in it}
    private final List<org.bytedeco.pytorch.VoidTensorHook> hooks = new ArrayList<>(); // referenced: native code calls them
    private final List<Work> works = new ArrayList<>();
    private boolean armed, stale;
    private int launched, overlapped, lastOverlapped; // buckets started this step; of them during the backward
    private long gradBytes, lastGradBytes, lastOtherBytes;
    private int step;

    /** Trainable tensors sharing one flat buffer: names, their tensors, offsets into it, numels, and readiness this step. */
    private record Bucket(List<String> names, List<Tensor> params, long[] offsets, long[] sizes, Tensor flat, boolean[] ready) {}

    public DistributedDataParallel(Comm comm, long bucketCapBytes) {
        if (bucketCapBytes < 1) throw new IllegalArgumentException("--ddp_bucket_cap_mb must be positive");
        this.comm = comm;
        this.bucketCap = bucketCapBytes;
    }

    @Override
    public int rank() {
        return comm.env().rank();
    }

    @Override
    public int worldSize() {
        return comm.env().worldSize();
    }

    /** Buckets the trainable tensors and starts every rank from rank 0's trainable weights (as DDP's constructor). */
    @Override
    public void start(List<String> trainable, Map<String, Tensor> params) {
        buckets.clear();
        slots.clear();
        for (List<String> names : groups(trainable, params)) {
            int k = buckets.size();
            buckets.add(bucket(names, params));
            for (int i = 0; i < names.size(); i++) {
                slots.put(names.get(i), new int[]{k, i});
                int index = i;
                org.bytedeco.pytorch.VoidTensorHook h = new org.bytedeco.pytorch.VoidTensorHook() {
                    @Override
                    public void call(org.bytedeco.pytorch.TensorBase grad) {
                        ready(k, index, grad);
                    }
                };
                hooks.add(h);
                params.get(names.get(i)).register_hook(h);
            }
        }
        flags = kept(io.llava4j.engine.Device.place(torch.zeros(trainable.size() + 1)));
        try (NoGradGuard g = new NoGradGuard()) {
            for (String n : trainable) comm.broadcast(params.get(n), "the broadcast of rank 0's " + n);
        }
        comm.takeBytes();
    }

    /** The trainable tensors in reverse order, cut into buckets of at most the cap (one dtype each). */
    private List<List<String>> groups(List<String> trainable, Map<String, Tensor> params) {
        List<String> reversed = new ArrayList<>(trainable);
        java.util.Collections.reverse(reversed);
        List<List<String>> out = new ArrayList<>();
        List<String> cur = new ArrayList<>();
        long curBytes = 0;
        for (String n : reversed) {
            Tensor p = params.get(n);
            long b = p.numel() * p.element_size();
            if (!cur.isEmpty() && (curBytes + b > bucketCap || p.scalar_type().intern() != params.get(cur.get(0)).scalar_type().intern())) {
                out.add(cur);
                cur = new ArrayList<>();
                curBytes = 0;
            }
            cur.add(n);
            curBytes += b;
        }
        if (!cur.isEmpty()) out.add(cur);
        return out;
    }

    private static Bucket bucket(List<String> names, Map<String, Tensor> params) {
        long[] off = new long[names.size()], size = new long[names.size()];
        long total = 0;
        for (int i = 0; i < names.size(); i++) {
            off[i] = total;
            size[i] = params.get(names.get(i)).numel();
            total += size[i];
        }
        Tensor first = params.get(names.get(0));
        Tensor flat = kept(first.new_zeros(new long[]{total}));
        List<Tensor> ps = new ArrayList<>();
        for (String n : names) ps.add(params.get(n));
        return new Bucket(List.copyOf(names), List.copyOf(ps), off, size, flat, new boolean[names.size()]);
    }

    @Override
    public double lossScale(long tokens, int accumulation) {
        long global = (long) sumExact(tokens, "the all-reduce of step " + (step + 1) + "'s supervised-token count");
        return global == 0 ? 0.0 : (double) tokens / global / accumulation;
    }

    /** From the step's last micro-batch on, gradients that are ready start their bucket's all-reduce during the backward. */
    @Override
    public synchronized void beforeLastBackward() {
        armed = true;
    }

    /**
     * A trainable tensor's gradient {@code g} for this backward, before autograd adds it to {@code .grad}: its slot
     * becomes the accumulated gradient, and every bucket whose tensors are all ready starts, in bucket order.
     */
    private synchronized void ready(int bucket, int index, org.bytedeco.pytorch.TensorBase g) {
        if (!armed) return;
        Bucket b = buckets.get(bucket);
        if (launched > bucket || b.ready[index]) { // a second gradient for a tensor already sent (a tensor used twice)
            stale = true;
            return;
        }
        try (NoGradGuard ng = new NoGradGuard()) {
            Tensor slot = b.flat.narrow(0, b.offsets[index], b.sizes[index]);
            Tensor grad = b.params.get(index).grad();
            slot.copy_(new Tensor(g).reshape(-1));
            if (grad.defined()) slot.add_(grad.reshape(-1));
        }
        b.ready[index] = true;
        while (launched < buckets.size() && allReady(buckets.get(launched))) {
            works.add(comm.allreduceAsync(buckets.get(launched).flat, what()));
            launched++;
            overlapped++;
        }
    }

    private static boolean allReady(Bucket b) {
        for (boolean r : b.ready) if (!r) return false;
        return true;
    }

    private String what() {
        return "the gradient all-reduce of step " + (step + 1);
    }

    /**
     * Starts the buckets the backward did not (tensors without a gradient on this rank send their accumulated gradient
     * or zeros), waits for all, then one all-reduce says which tensors have a gradient on some rank and whether any
     * rank saw a tensor's gradient twice (then every rank sends all buckets again from {@code .grad}). Every rank
     * issues the same collectives in the same order: buckets 0..B-1, the flags, maybe the buckets again.
     */
    @Override
    public synchronized void syncGradients(List<String> trainable, Map<String, Tensor> params) {
        String what = what();
        try (NoGradGuard g = new NoGradGuard()) {
            gradBytes = 0;
            for (int k = launched; k < buckets.size(); k++) {
                Bucket b = buckets.get(k);
                for (int i = 0; i < b.names.size(); i++) if (!b.ready[i]) fill(b, i);
                works.add(comm.allreduceAsync(b.flat, what));
            }
            launched = buckets.size();
            for (Bucket b : buckets) gradBytes += b.flat.numel() * b.flat.element_size();
            for (Work w : works) comm.await(w, what);
            works.clear();
            float[] mine = new float[(int) flags.numel()];
            for (int i = 0; i < trainable.size(); i++) mine[i] = params.get(trainable.get(i)).grad().defined() ? 1 : 0;
            mine[mine.length - 1] = stale ? 1 : 0;
            flags.copy_(io.llava4j.engine.Tensors.floats(mine, mine.length));
            comm.allreduce(flags, what + " (which tensors have gradients)");
            float[] any = io.llava4j.engine.Tensors.toFloats(flags);
            if (any[any.length - 1] > 0) { // some rank's overlapped buckets are stale: send them again, whole
                for (Bucket b : buckets) {
                    for (int i = 0; i < b.names.size(); i++) fill(b, i);
                    works.add(comm.allreduceAsync(b.flat, what));
                    gradBytes += b.flat.numel() * b.flat.element_size();
                }
                for (Work w : works) comm.await(w, what);
                works.clear();
            }
            for (int k = 0; k < trainable.size(); k++) {
                if (any[k] == 0) continue; // no rank has a gradient: the optimizer skips it, as one process would
                Tensor p = params.get(trainable.get(k));
                int[] at = slots.get(trainable.get(k));
                Bucket b = buckets.get(at[0]);
                Tensor sum = b.flat.narrow(0, b.offsets[at[1]], b.sizes[at[1]]).view(io.llava4j.engine.Tensors.shape(p));
                Tensor grad = p.grad();
                if (grad.defined()) grad.copy_(sum);
                else p.mutable_grad().put(sum.clone());
            }
        } finally {
            step++;
            lastOverlapped = overlapped;
            overlapped = 0;
            armed = false;
            stale = false;
            launched = 0;
            for (Bucket b : buckets) java.util.Arrays.fill(b.ready, false);
        }
    }

    /** Slot {@code i} of {@code b} from its tensor's {@code .grad}, or zeros without one. */
    private static void fill(Bucket b, int i) {
        Tensor slot = b.flat.narrow(0, b.offsets[i], b.sizes[i]);
        Tensor grad = b.params.get(i).grad();
        if (grad.defined()) slot.copy_(grad.reshape(-1));
        else slot.zero_();
    }

    @Override
    public double sum(double local) {
        double s = sumExact(local, "the all-reduce of step " + step + "'s loss");
        long all = comm.takeBytes();
        lastGradBytes = gradBytes;
        lastOtherBytes = all - gradBytes;
        gradBytes = 0;
        return s;
    }

    private double sumExact(double v, String what) {
        try (org.bytedeco.javacpp.PointerScope scope = new org.bytedeco.javacpp.PointerScope()) {
            Tensor t = torch.empty(new long[]{1}, new org.bytedeco.pytorch.TensorOptions(torch.ScalarType.Double), null); // [1] float64
            t.data_ptr_double().put(v);
            t = io.llava4j.engine.Device.place(t);
            comm.allreduce(t, what);
            return t.item_double();
        }
    }

    /** The last step's payload handed to all-reduce: trainable gradients, and the rest (token counts, flags, loss). */
    @Override
    public Map<String, Long> stepFields() {
        Map<String, Long> m = new LinkedHashMap<>();
        m.put("allreduce_grad_bytes", lastGradBytes);
        m.put("allreduce_other_bytes", lastOtherBytes);
        m.put("buckets_started_in_backward", (long) lastOverlapped);
        return m;
    }

    @Override
    public String describe(List<String> trainable, Map<String, Tensor> params) {
        Map<String, Long> perPart = new LinkedHashMap<>();
        java.util.Set<String> present = new java.util.HashSet<>(); // parts this model has (no llm.lora without adapters)
        for (String n : params.keySet()) present.add(ModuleGroups.partOf(n));
        for (String part : ModuleGroups.PARTS) if (present.contains(part)) perPart.put(part, 0L);
        long total = 0;
        for (String n : trainable) {
            Tensor p = params.get(n);
            long b = p.numel() * 4; // fp32 master weights: gradients are fp32
            perPart.merge(ModuleGroups.partOf(n), b, Long::sum);
            total += b;
        }
        List<String> parts = new ArrayList<>(), frozen = new ArrayList<>();
        perPart.forEach((k, v) -> (v > 0 ? parts : frozen).add(v > 0 ? k + " " + String.format("%,d B", v) : k));
        int w = worldSize();
        return String.format("data parallel: %d ranks (%s, --ddp_timeout %d s); each step all-reduces %,d B of gradients "
                        + "(%s) in %d bucket(s), started during the backward as their gradients are ready, never the frozen parts (%s); "
                        + "plus 8 B a micro-batch (token count), 4 B per trainable tensor + 4 B (flags) and 8 B (loss) a step. Gloo's ring all-reduce sends 2(W-1)/W = %.2f "
                        + "times the payload per rank.%n",
                w, comm.backend(), comm.timeout().toSeconds(), total, String.join(", ", parts), groups(trainable, params).size(),
                frozen.isEmpty() ? "none" : String.join(", ", frozen), 2.0 * (w - 1) / w);
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
