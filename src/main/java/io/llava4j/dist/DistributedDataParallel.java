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
 * in reverse parameter order as DDP fills them.
 *
 * <p>Per micro-batch one 8-byte all-reduce of the supervised-token count gives each rank its loss scale
 * ({@code tokens / global tokens / accumulation}); per step one all-reduce of a flag per trainable tensor (which
 * tensors have a gradient on some rank: one process with the global batch steps exactly those), the gradient
 * buckets (all started, then awaited), and the step's loss. The buckets are all-reduced after the backward, not
 * overlapped with it: the presets expose tensor hooks, but Llava's checkpointed backward runs one backward per decoder
 * layer, and a gradient's readiness is only certain once the whole backward has returned.
 */
public final class DistributedDataParallel implements DataParallel {
    private final Comm comm;
    private final long bucketCap;
    private final List<Bucket> buckets = new ArrayList<>();
    private Tensor flags; // [P] float: 1 where this rank has a gradient
    private long gradBytes, lastGradBytes, lastOtherBytes;
    private int step;

    /** Trainable tensors sharing one flat buffer: names, offsets into it, and numels. */
    private record Bucket(List<String> names, long[] offsets, long[] sizes, Tensor flat) {}

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
        for (List<String> names : groups(trainable, params)) buckets.add(bucket(names, params));
        flags = kept(io.llava4j.engine.Device.place(torch.zeros(Math.max(1, trainable.size()))));
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
        return new Bucket(List.copyOf(names), off, size, flat);
    }

    @Override
    public double lossScale(long tokens, int accumulation) {
        long global = (long) sumExact(tokens, "the all-reduce of step " + (step + 1) + "'s supervised-token count");
        return global == 0 ? 0.0 : (double) tokens / global / accumulation;
    }

    @Override
    public void syncGradients(List<String> trainable, Map<String, Tensor> params) {
        step++;
        String what = "the gradient all-reduce of step " + step;
        try (NoGradGuard g = new NoGradGuard()) {
            float[] mine = new float[(int) flags.numel()];
            for (int i = 0; i < trainable.size(); i++) mine[i] = params.get(trainable.get(i)).grad().defined() ? 1 : 0;
            flags.copy_(io.llava4j.engine.Tensors.floats(mine, mine.length));
            comm.allreduce(flags, what + " (which tensors have gradients)");
            float[] any = io.llava4j.engine.Tensors.toFloats(flags);
            Map<String, Boolean> has = new LinkedHashMap<>();
            for (int i = 0; i < trainable.size(); i++) has.put(trainable.get(i), any[i] > 0);
            List<Work> works = new ArrayList<>();
            gradBytes = 0;
            for (Bucket b : buckets) {
                for (int i = 0; i < b.names.size(); i++) {
                    Tensor slot = b.flat.narrow(0, b.offsets[i], b.sizes[i]);
                    Tensor grad = params.get(b.names.get(i)).grad();
                    if (grad.defined()) slot.copy_(grad.reshape(-1));
                    else slot.zero_();
                }
                gradBytes += b.flat.numel() * b.flat.element_size();
                works.add(comm.allreduceAsync(b.flat, what));
            }
            for (Work w : works) comm.await(w, what);
            for (Bucket b : buckets)
                for (int i = 0; i < b.names.size(); i++) {
                    String n = b.names.get(i);
                    if (!has.get(n)) continue; // no rank has a gradient: the optimizer skips it, as one process would
                    Tensor p = params.get(n);
                    Tensor sum = b.flat.narrow(0, b.offsets[i], b.sizes[i]).view(io.llava4j.engine.Tensors.shape(p));
                    Tensor grad = p.grad();
                    if (grad.defined()) grad.copy_(sum);
                    else p.mutable_grad().put(sum.clone());
                }
        }
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
        return m;
    }

    @Override
    public String describe(List<String> trainable, Map<String, Tensor> params) {
        Map<String, Long> perPart = new LinkedHashMap<>();
        for (String part : ModuleGroups.PARTS) perPart.put(part, 0L);
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
                        + "(%s) in %d bucket(s), never the frozen parts (%s); plus 8 B a micro-batch (token count), "
                        + "4 B per trainable tensor and 8 B (loss) a step. Gloo's ring all-reduce sends 2(W-1)/W = %.2f "
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
