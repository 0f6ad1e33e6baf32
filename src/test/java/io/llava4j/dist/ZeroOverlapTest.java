package io.llava4j.dist;

import io.llava4j.engine.Engine;
import io.llava4j.engine.Tensors;
import io.llava4j.train.AdamW;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * ZeRO-2's overlapped reduce-scatter ({@code overlap_comm}) on one rank of a one-rank Gloo group, against plain AdamW on
 * accumulated {@code .grad}s: two steps of two micro-batches, with a tensor whose gradient comes in two separate
 * backward passes of one micro-batch (the second after its bucket was sent), a tensor with a gradient in the second
 * micro-batch only, and one frozen when the hooks are set, without a gradient in step 1 (flags: not updated) and
 * unfrozen in step 2 (as a plan's later stage). No whole gradient survives a micro-batch.
 */
class ZeroOverlapTest {
    /**
     * The process group, the hooked tensors and their hooks stay reachable for the rest of the test JVM: left to the
     * garbage collector, their native destructors (Gloo's group and store, hooks of live autograd metadata) ran during
     * a later test and corrupted the heap. A training run holds them until its process exits.
     */
    private static final List<Object> KEPT = new ArrayList<>();

    /** Four tensors in the order a model lists them; reversed and cut at 8 values: buckets [v], [w], [u, z]. */
    private static Map<String, Tensor> params(long seed) {
        torch.manual_seed(seed);
        Map<String, Tensor> p = new LinkedHashMap<>();
        p.put("z", torch.randn(4));
        p.put("u", torch.randn(3));
        p.put("w", torch.randn(6, 5));
        p.put("v", torch.randn(5));
        for (Tensor t : p.values()) {
            t.retainReference();
            t.requires_grad_(true);
        }
        p.get("z").requires_grad_(false); // frozen at first, as a plan's later stage unfreezes a part
        return p;
    }

    /** Micro-batch {@code k} of step {@code s}: its backward passes (two in micro-batch 0). */
    private static void microBatch(Map<String, Tensor> p, int s, int k) {
        torch.manual_seed(100 + 10L * s + k);
        Tensor x = torch.randn(2, 6); // [2, 6]
        Tensor y = x.matmul(p.get("w")).tanh().mul(p.get("v")).sum(); // w and v
        if (k == 1) y = y.add(p.get("u").mul(p.get("u")).sum());      // u in the second micro-batch only
        if (s == 1 && k == 1) y = y.add(p.get("z").exp().sum());      // z unfrozen in step 2
        y.mul(new Scalar(0.5)).backward();
        if (k == 0) p.get("v").mul(p.get("v")).sum().mul(new Scalar(0.25)).backward(); // v again, in a second backward
    }

    private static AdamW adamw(Map<String, Tensor> p) {
        return new AdamW(List.of(new AdamW.Group("all", p, 0.05, 0.1)), 0.9, 0.999, 1e-8);
    }

    @Test
    void overlappedReduceScatterWithAccumulationEqualsPlainAdamW() throws Exception {
        Engine.init();
        Map<String, Tensor> ref = params(3), mine = params(3);
        KEPT.addAll(List.of(ref, mine));
        AdamW plain = adamw(ref);
        List<Double> refNorms = new ArrayList<>();
        for (int s = 0; s < 2; s++) {
            if (s == 1) ref.get("z").requires_grad_(true);
            for (int k = 0; k < 2; k++) microBatch(ref, s, k);
            double sq = 0;
            for (Tensor t : ref.values()) if (t.grad().defined()) sq += Math.pow(t.grad().norm().item_double(), 2);
            refNorms.add(Math.sqrt(sq));
            plain.step();
            plain.zeroGrad();
        }

        Comm comm = Comm.connect(new DistEnv(0, 1, 0, 1, "127.0.0.1", DdpRuns.freePort()), "gloo", Duration.ofSeconds(30));
        KEPT.add(comm);
        try (ZeroDataParallel zero = new ZeroDataParallel(comm, 2, 8, true)) {
            KEPT.add(zero);
            List<String> names = List.copyOf(mine.keySet());
            zero.start(names, mine);
            AdamW main = adamw(mine);
            zero.optimizer(main, 2);
            for (int s = 0; s < 2; s++) {
                if (s == 1) mine.get("z").requires_grad_(true);
                for (int k = 0; k < 2; k++) {
                    microBatch(mine, s, k);
                    zero.afterMicroBatch();
                    for (Map.Entry<String, Tensor> e : mine.entrySet())
                        assertFalse(e.getValue().grad().defined(), e.getKey() + " keeps a whole .grad after micro-batch " + k);
                }
                zero.syncGradients(names, mine);
                assertEquals(refNorms.get(s), zero.clip(0), 1e-5 * refNorms.get(s), "gradient norm of step " + (s + 1));
                zero.step(main);
                zero.sum(0);
                // v and w in both micro-batches: their buckets started inside each backward; in step 2 [u, z] too
                assertEquals(s == 0 ? 4L : 5L, zero.stepFields().get("buckets_started_in_backward"));
                if (s == 0) assertEquals(0.0, Tensors.relativeError(mine.get("z"), params(3).get("z")), "z frozen in step 1: untouched");
            }
        }
        for (String n : ref.keySet()) {
            double err = Tensors.relativeError(mine.get(n), ref.get(n));
            assertTrue(err < 1e-6, n + ": relative error " + err);
        }
        assertTrue(Tensors.relativeError(mine.get("z"), params(3).get("z")) > 1e-3, "z unfrozen in step 2: updated");
    }
}
