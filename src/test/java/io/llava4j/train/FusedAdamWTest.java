package io.llava4j.train;

import io.llava4j.engine.Engine;
import io.llava4j.engine.Tensors;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The one-pass float32 AdamW update against libtorch's tensor ops (the arithmetic of torch.optim.AdamW's
 * single-tensor path): the same parameters and moments to float rounding over several steps with weight decay, a
 * per-tensor lr factor and tensors spanning several chunks; and the same bits whatever the thread count.
 */
class FusedAdamWTest {

    private static Map<String, Tensor> params(long seed) {
        Engine.init();
        torch.manual_seed(seed);
        Map<String, Tensor> ps = new LinkedHashMap<>();
        ps.put("big", torch.randn(700, 1000).requires_grad_(true)); // 700 000 elements: three chunks
        ps.put("small", torch.randn(37).requires_grad_(true));
        return ps;
    }

    private static AdamW run(boolean fused, int threads, int steps) {
        int before = torch.get_num_threads();
        torch.set_num_threads(threads);
        try {
            Map<String, Tensor> ps = params(7);
            Map<String, Tensor> decay = new LinkedHashMap<>(), noDecay = new LinkedHashMap<>();
            decay.put("big", ps.get("big"));
            noDecay.put("small", ps.get("small"));
            AdamW opt = new AdamW(List.of(new AdamW.Group("decay", decay, 3e-3, 0.1), new AdamW.Group("no_decay", noDecay, 3e-3, 0.0)),
                    0.9, 0.999, 1e-8).fused(fused);
            opt.scaleParamLr("small", 0.5);
            torch.manual_seed(11);
            for (int s = 0; s < steps; s++) {
                for (Tensor p : ps.values()) p.mul(torch.randn_like(p)).square().sum().backward();
                opt.step();
                opt.zeroGrad();
            }
            opt.groups().forEach(g -> g.params.values().forEach(p -> p.retainReference()));
            return opt;
        } finally {
            torch.set_num_threads(before);
        }
    }

    private static float[] values(AdamW opt, String name) {
        for (AdamW.Group g : opt.groups()) if (g.params.containsKey(name)) return Tensors.toFloats(g.params.get(name).detach());
        throw new AssertionError(name);
    }

    @Test
    void matchesTensorOpsAndDoesNotDependOnThreads() {
        AdamW ops = run(false, 2, 4), fused = run(true, 2, 4), fusedOne = run(true, 1, 4);
        for (String n : List.of("big", "small")) {
            float[] a = values(ops, n), b = values(fused, n), c = values(fusedOne, n);
            double maxRel = 0;
            for (int i = 0; i < a.length; i++) maxRel = Math.max(maxRel, Math.abs(a[i] - b[i]) / Math.max(1e-3, Math.abs(a[i])));
            assertTrue(maxRel < 1e-5, n + ": fused vs tensor ops, max relative difference " + maxRel);
            assertArrayEquals(b, c, n + ": the fused update must not depend on the thread count");
            float[] ma = Tensors.toFloats(ops.state().get(n).expAvgSq), mb = Tensors.toFloats(fused.state().get(n).expAvgSq);
            for (int i = 0; i < ma.length; i++) assertEquals(ma[i], mb[i], 1e-6 * Math.abs(ma[i]) + 1e-12, n + " exp_avg_sq");
            assertEquals(4, fused.state().get(n).step);
        }
        // the update did move the parameters (a fused path that skipped them would match nothing above, but say it)
        float[] start = Tensors.toFloats(params(7).get("big").detach()), after = values(fused, "big");
        int moved = 0;
        for (int i = 0; i < start.length; i++) if (start[i] != after[i]) moved++;
        assertTrue(moved > start.length * 0.99, "parameters moved: " + moved);
    }
}
