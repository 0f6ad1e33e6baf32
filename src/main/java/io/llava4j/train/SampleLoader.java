package io.llava4j.train;

import io.llava4j.data.LlavaDataset.Sample;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.IntFunction;
import java.util.function.Supplier;

/**
 * The samples of each micro-batch, in the order training asks for them, with {@code --dataloader_num_workers N}
 * prepared ahead (tokenized, image decoded and preprocessed) on N worker threads while the step runs, as PyTorch's
 * DataLoader workers do: up to {@code 2·N} micro-batches ahead (its {@code prefetch_factor} 2). The order and the
 * samples are those of N = 0, where each sample is prepared on the training thread when asked for. A sample the
 * source gives as null (its image became unreadable: warned and counted by the source) is left out of its micro-batch.
 */
final class SampleLoader implements AutoCloseable {
    private final IntFunction<Sample> source;            // dataset index -> sample, or null to leave it out
    private final Supplier<MicroBatchOrder.Micro> order; // the next micro-batch; null when there are no more
    private final ExecutorService pool;                  // null: no workers
    private final int depth;
    private final Deque<Pending> ahead = new ArrayDeque<>();

    private record Pending(MicroBatchOrder.Micro micro, List<Future<Sample>> samples) {}
    private boolean exhausted;

    /**
     * @param source  the sample of a dataset index (e.g. {@code i -> dataset.get(i, cache)}), or null to leave it out;
     *                called from the worker threads
     * @param order   each micro-batch in turn (null = no more)
     * @param workers worker threads (0: prepared on the caller's thread when asked for)
     */
    SampleLoader(IntFunction<Sample> source, Supplier<MicroBatchOrder.Micro> order, int workers) {
        if (workers < 0) throw new IllegalArgumentException("--dataloader_num_workers must be >= 0, got " + workers);
        this.source = source;
        this.order = order;
        this.depth = 2 * workers;
        this.pool = workers == 0 ? null : Executors.newFixedThreadPool(workers, r -> {
            Thread t = new Thread(r, "llava4j-data");
            t.setDaemon(true);
            return t;
        });
    }

    /** The next micro-batch and its samples. */
    public TrainStep.MicroBatch next() {
        if (pool == null) {
            MicroBatchOrder.Micro m = order.get();
            if (m == null) throw new NoSuchElementException("no more micro-batches");
            List<Sample> out = new ArrayList<>(m.indices().length);
            for (int i : m.indices()) {
                Sample smp = source.apply(i);
                if (smp != null) out.add(smp);
            }
            return new TrainStep.MicroBatch(m.epoch(), m.index(), out, m.endsStep());
        }
        fill();
        Pending p = ahead.pollFirst();
        if (p == null) throw new NoSuchElementException("no more micro-batches");
        List<Sample> out = new ArrayList<>(p.samples().size());
        for (Future<Sample> f : p.samples()) {
            Sample smp = await(f);
            if (smp != null) out.add(smp);
        }
        fill(); // the worker that just finished starts on the next one while the step runs
        return new TrainStep.MicroBatch(p.micro().epoch(), p.micro().index(), out, p.micro().endsStep());
    }

    private void fill() {
        while (!exhausted && ahead.size() < depth) {
            MicroBatchOrder.Micro m = order.get();
            if (m == null) {
                exhausted = true;
                return;
            }
            List<Future<Sample>> batch = new ArrayList<>(m.indices().length);
            for (int i : m.indices()) batch.add(pool.submit(() -> source.apply(i)));
            ahead.addLast(new Pending(m, batch));
        }
    }

    private static Sample await(Future<Sample> f) {
        try {
            return f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for a sample", e);
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            if (c instanceof RuntimeException r) throw r; // a bad record: the data error itself, as without workers
            if (c instanceof Error err) throw err;
            throw new IllegalStateException(c.getMessage(), c);
        }
    }

    @Override
    public void close() {
        if (pool != null) pool.shutdownNow();
    }
}
