package io.llava4j.train;

import io.llava4j.data.LlavaDataset;
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
import java.util.function.Supplier;

/**
 * The samples of each micro-batch, in the order training asks for them, with {@code --dataloader_num_workers N}
 * prepared ahead (tokenized, image decoded and preprocessed) on N worker threads while the step runs, as PyTorch's
 * DataLoader workers do: up to {@code 2·N} micro-batches ahead (its {@code prefetch_factor} 2). The order and the
 * samples are those of N = 0, where each sample is prepared on the training thread when asked for.
 */
public final class SampleLoader implements AutoCloseable {
    private final LlavaDataset dataset;
    private final LlavaDataset.ImageKeys keys; // null: no feature cache
    private final Supplier<int[]> order;       // the next micro-batch's dataset indices; null when there are no more
    private final ExecutorService pool;        // null: no workers
    private final int depth;
    private final Deque<List<Future<Sample>>> ahead = new ArrayDeque<>();
    private boolean exhausted;

    /**
     * @param order   the dataset indices of each micro-batch in turn (null = no more)
     * @param workers worker threads (0: prepared on the caller's thread when asked for)
     * @param keys    a feature cache: images it holds are not decoded (null = none)
     */
    public SampleLoader(LlavaDataset dataset, Supplier<int[]> order, int workers, LlavaDataset.ImageKeys keys) {
        if (workers < 0) throw new IllegalArgumentException("--dataloader_num_workers must be >= 0, got " + workers);
        this.dataset = dataset;
        this.order = order;
        this.keys = keys;
        this.depth = 2 * workers;
        this.pool = workers == 0 ? null : Executors.newFixedThreadPool(workers, r -> {
            Thread t = new Thread(r, "llava4j-data");
            t.setDaemon(true);
            return t;
        });
    }

    /** The next micro-batch's samples. */
    public List<Sample> next() {
        if (pool == null) {
            int[] idx = order.get();
            if (idx == null) throw new NoSuchElementException("no more micro-batches");
            List<Sample> out = new ArrayList<>(idx.length);
            for (int i : idx) out.add(dataset.get(i, keys));
            return out;
        }
        fill();
        List<Future<Sample>> batch = ahead.pollFirst();
        if (batch == null) throw new NoSuchElementException("no more micro-batches");
        List<Sample> out = new ArrayList<>(batch.size());
        for (Future<Sample> f : batch) out.add(await(f));
        fill(); // the worker that just finished starts on the next one while the step runs
        return out;
    }

    private void fill() {
        while (!exhausted && ahead.size() < depth) {
            int[] idx = order.get();
            if (idx == null) {
                exhausted = true;
                return;
            }
            List<Future<Sample>> batch = new ArrayList<>(idx.length);
            for (int i : idx) batch.add(pool.submit(() -> dataset.get(i, keys)));
            ahead.addLast(batch);
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
