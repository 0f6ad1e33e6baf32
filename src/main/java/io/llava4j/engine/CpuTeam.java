package io.llava4j.engine;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * A fixed team of Java threads that splits a loop over its members: the calling thread and {@code size - 1} workers.
 * Built for work that lasts tens of microseconds to a few milliseconds and comes in quick succession (a decoding step's
 * matrix–vector products): a worker spins briefly after each piece of work, so the next one starts without a wake-up,
 * and parks once none came for {@link #SPIN_NANOS}, leaving the core to libtorch's own threads in between.
 *
 * <p>One loop at a time: {@link #run} is synchronized. Workers are daemon threads.
 */
public final class CpuTeam {
    /** How long an idle worker spins before it parks. */
    static final long SPIN_NANOS = 30_000;

    /** A loop body over the half-open range [from, to). */
    @FunctionalInterface
    public interface Body {
        void run(int from, int to);
    }

    private static volatile CpuTeam shared;

    /** The process's team of {@code size} (libtorch's intra-op thread count, as decoding uses it); made on first use. */
    public static CpuTeam of(int size) {
        CpuTeam t = shared;
        if (t != null && t.size == size) return t;
        synchronized (CpuTeam.class) {
            if (shared == null || shared.size != size) {
                if (shared != null) shared.stop();
                shared = new CpuTeam(size);
            }
            return shared;
        }
    }

    private final int size;
    private final Thread[] workers;
    private volatile int posted;     // generation of the loop most recently handed out
    private volatile boolean stopped;
    private volatile Body body;
    private volatile int n, grain;
    private final AtomicInteger pending = new AtomicInteger();
    private final AtomicInteger next = new AtomicInteger(); // the start of the next range to hand out
    private final AtomicInteger[] parked;
    private volatile Throwable failure;

    CpuTeam(int size) {
        if (size < 1) throw new IllegalArgumentException("a team needs at least one thread, got " + size);
        this.size = size;
        this.workers = new Thread[size - 1];
        this.parked = new AtomicInteger[size - 1];
        for (int i = 0; i < workers.length; i++) {
            int member = i + 1;
            parked[i] = new AtomicInteger();
            workers[i] = new Thread(() -> work(member), "llava4j-cpu-team-" + member);
            workers[i].setDaemon(true);
            workers[i].start();
        }
    }

    /**
     * Runs {@code body} over [0, n) in ranges of {@code grain} (the last one takes the rest), each member taking the
     * next range as it finishes one, so a member that starts late (a parked worker waking) takes fewer; returns when
     * every range is done. An exception thrown by any range is rethrown here.
     */
    public synchronized void run(int n, int grain, Body body) {
        if (n <= 0) return;
        if (size == 1 || n <= grain) {
            body.run(0, n);
            return;
        }
        this.body = body;
        this.n = n;
        this.grain = grain;
        this.failure = null;
        next.set(0);
        pending.set(workers.length);
        posted++;
        for (int i = 0; i < workers.length; i++)
            if (parked[i].get() == 1) LockSupport.unpark(workers[i]);
        try {
            take(body);
        } catch (RuntimeException | Error e) {
            failure = e;
        }
        while (pending.get() != 0) Thread.onSpinWait();
        this.body = null;
        Throwable f = failure;
        if (f instanceof RuntimeException r) throw r;
        if (f instanceof Error e) throw e;
    }

    private void take(Body body) {
        int n = this.n, grain = this.grain;
        for (int from = next.getAndAdd(grain); from < n; from = next.getAndAdd(grain))
            body.run(from, Math.min(n, from + grain));
    }

    private void work(int member) {
        int seen = 0; // posted's value when the team was made: a loop may be posted before this thread first runs
        AtomicInteger park = parked[member - 1];
        while (!stopped) {
            long since = System.nanoTime();
            while (posted == seen && !stopped) {
                if (System.nanoTime() - since < SPIN_NANOS) {
                    Thread.onSpinWait();
                    continue;
                }
                park.set(1);
                if (posted == seen && !stopped) LockSupport.park(this);
                park.set(0);
                since = System.nanoTime();
            }
            if (stopped) return;
            seen = posted;
            try {
                take(body);
            } catch (RuntimeException | Error e) {
                failure = e;
            } finally {
                pending.decrementAndGet();
            }
        }
    }

    void stop() {
        stopped = true;
        for (Thread w : workers) LockSupport.unpark(w);
    }
}
