package io.llava4j.train;

import io.llava4j.engine.Engine;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * AdamW's update of float32 tensors in one pass over memory: each element's parameter, gradient and two moments are
 * read once and written once, with torch's single-tensor arithmetic (decay, lerp of the first moment, addcmul of the
 * second, sqrt / bias correction + eps, addcdiv) done element by element in float, as ATen's float kernels compute it.
 * The tensor-op path makes eight passes and a temporary the size of the parameter (the largest, the embedding's,
 * 98 MB at vocab 32000 × 768); for a stage-2 LLM that is most of a step's optimizer time. The chunks of all
 * tensors are shared out over as many threads as libtorch's intra-op pool; each element is computed by exactly
 * one thread, so results do not depend on the thread count or schedule.
 */
final class FusedAdamW {
    private static final int CHUNK = 1 << 18;
    private static ExecutorService pool;
    private static int poolThreads;

    /** One tensor's update: its four buffers (contiguous float32, same size) and its step's scalars. */
    record Update(Tensor param, Tensor grad, Tensor expAvg, Tensor expAvgSq, float decay, float beta1Weight,
                  float beta2, float oneMinusBeta2, float bc2Sqrt, float eps, float stepSize) {}

    private FusedAdamW() {}

    /** Whether the one-pass update applies to these tensors: all float32, contiguous, of one size, on the CPU. */
    static boolean applies(Tensor p, Tensor g, Tensor m, Tensor v) {
        for (Tensor t : new Tensor[]{p, g, m, v})
            if (t.scalar_type().intern() != torch.ScalarType.Float || !t.is_contiguous() || !t.is_cpu() || t.numel() != p.numel())
                return false;
        return true;
    }

    static void run(List<Update> updates) {
        List<Runnable> chunks = new ArrayList<>();
        for (Update u : updates) {
            long n = u.param().numel();
            for (long off = 0; off < n; off += CHUNK) {
                int len = (int) Math.min(CHUNK, n - off);
                FloatBuffer p = view(u.param(), off, len), g = view(u.grad(), off, len),
                        m = view(u.expAvg(), off, len), v = view(u.expAvgSq(), off, len);
                chunks.add(() -> update(p, g, m, v, len, u));
            }
        }
        int threads = Math.max(1, Engine.threads());
        if (threads == 1 || chunks.size() == 1) {
            chunks.forEach(Runnable::run);
            return;
        }
        ExecutorService ex = pool(threads);
        List<Future<?>> done = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            int first = t;
            done.add(ex.submit(() -> {
                for (int i = first; i < chunks.size(); i += threads) chunks.get(i).run();
            }));
        }
        try {
            for (Future<?> f : done) f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted during the optimizer step", e);
        } catch (ExecutionException e) {
            throw new IllegalStateException("optimizer step failed", e.getCause());
        }
    }

    /**
     * torch.optim.AdamW's single-tensor step for one element run: p ← p·(1 − lr·wd); m ← lerp(m, g, 1 − β1);
     * v ← v·β2 + (1 − β2)·g·g; p ← p − (lr / bc1) · m / (√v / √bc2 + eps).
     */
    private static void update(FloatBuffer p, FloatBuffer g, FloatBuffer m, FloatBuffer v, int len, Update u) {
        float decay = u.decay(), w = u.beta1Weight(), b2 = u.beta2(), c2 = u.oneMinusBeta2(), bc2 = u.bc2Sqrt(),
                eps = u.eps(), step = u.stepSize();
        for (int i = 0; i < len; i++) {
            float gi = g.get(i), mi = m.get(i), vi = v.get(i);
            mi = Math.fma(w, gi - mi, mi); // ATen's lerp for a weight below 0.5
            vi = vi * b2 + c2 * gi * gi;
            m.put(i, mi);
            v.put(i, vi);
            float denom = (float) Math.sqrt(vi) / bc2 + eps;
            p.put(i, p.get(i) * decay + step * mi / denom);
        }
    }

    private static FloatBuffer view(Tensor t, long off, int len) {
        return t.data_ptr_float().position(off).limit(off + len).asBuffer();
    }

    private static synchronized ExecutorService pool(int threads) {
        if (pool == null || poolThreads != threads) {
            if (pool != null) pool.shutdown();
            pool = Executors.newFixedThreadPool(threads, r -> {
                Thread th = new Thread(r, "llava4j-adamw");
                th.setDaemon(true);
                return th;
            });
            poolThreads = threads;
        }
        return pool;
    }
}
