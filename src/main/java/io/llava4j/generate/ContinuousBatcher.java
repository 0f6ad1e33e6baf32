package io.llava4j.generate;

import io.llava4j.engine.Tensors;
import io.llava4j.model.BatchKvCache;
import io.llava4j.model.KvCache;
import io.llava4j.model.Llama;
import io.llava4j.model.Llava;
import io.llava4j.nn.Autocast;
import io.llava4j.nn.Precision;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CancellationException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.IntConsumer;
import java.util.function.Supplier;

/**
 * Continuous batching over one model: requests join and leave a running decode batch at token boundaries, so
 * concurrent requests share each step's GEMMs. One thread owns the model. Each turn it admits waiting requests while
 * the batch has fewer than {@code maxBatch} rows — each admitted request's prompt is run alone (prefill) into its own
 * {@link KvCache}, sized to that request as {@link Generator} sizes it, and its first token picked — then runs one
 * decoding step for all rows at once ({@link Llama#forwardDecode}: one forward with M = rows, each row attending to its
 * own cache). Every row picks its token with its own {@link TokenPicker} (temperature, top-p, seed, penalties) and
 * stops on its own: a stop token, its max new tokens, or its client saying stop (within one step). A greedy request
 * gets the tokens {@link Generator#generate} gives it alone, up to float rounding of batched GEMMs.
 */
public final class ContinuousBatcher implements AutoCloseable {

    /** What the batch tells a request. Called on the batch thread; must not block. */
    public interface Client {
        /** As the request leaves the queue, before its prefill; an exception refuses it (then {@link #failed}). */
        void start() throws Exception;

        /** Each new token as soon as it is picked; false = stop now ("cancelled"). */
        boolean onToken(int token);

        /** The request ended (stop token, length or cancelled); its cache is freed. */
        void finished(Generator.Result result);

        /** The request failed (refused by {@link #start}, a model error, or the batcher closed). */
        void failed(Throwable error);
    }

    /** A queued request; {@code stops}: the ids that end it. */
    private record Request(int[] stops, Supplier<Tensor> pixels, int[][] imageSizes, int[] prompt, Sampling sampling, Client client) {}

    /** A request in the batch: its cache, picker and tokens so far. */
    private static final class Row {
        final Request req;
        final KvCache cache;
        final TokenPicker picker;
        final long admitted, promptLength;
        final List<Integer> tokens = new ArrayList<>();
        long firstToken;
        String reason;

        Row(Request req, KvCache cache, long admitted, long promptLength) {
            this.req = req;
            this.cache = cache;
            this.picker = new TokenPicker(req.sampling);
            this.admitted = admitted;
            this.promptLength = promptLength;
        }

        /** Takes the picked token; true when the request ends with it (its reason set). */
        boolean accept(int token) {
            if (tokens.isEmpty()) firstToken = System.nanoTime();
            tokens.add(token);
            if (!req.client.onToken(token)) reason = "cancelled";
            else if (isStop(req.stops, token)) reason = "stop";
            else if (tokens.size() >= req.sampling.maxNewTokens()) reason = "length";
            return reason != null;
        }

        Generator.Result result() {
            long now = System.nanoTime();
            return new Generator.Result(tokens.stream().mapToInt(Integer::intValue).toArray(), reason, promptLength,
                    firstToken - admitted, now - firstToken, cache.bytes());
        }
    }

    private final Llava model;
    private final Precision precision;
    private final int maxBatch;
    private final IntConsumer onStep;
    private final BlockingQueue<Request> waiting = new LinkedBlockingQueue<>();
    private final List<Row> rows = new ArrayList<>(); // the batch thread's only
    private volatile int batchSize;
    private volatile boolean closed;
    private final Thread thread;

    /**
     * Starts the batch thread.
     *
     * @param maxBatch rows of the decode batch at most; more requests wait in arrival order
     * @param onStep   told the rows of each decoding step (for a batch-size histogram); null = none
     */
    public ContinuousBatcher(Llava model, Precision precision, int maxBatch, IntConsumer onStep) {
        if (maxBatch < 1) throw new IllegalArgumentException("max_batch must be >= 1, got " + maxBatch);
        this.model = model;
        this.precision = precision;
        this.maxBatch = maxBatch;
        this.onStep = onStep == null ? n -> {} : onStep;
        thread = new Thread(this::loop, "llava4j-batch");
        thread.setDaemon(true);
        thread.start();
    }

    /**
     * Queues a request; it joins the batch when a row is free.
     *
     * @param generator  a generator of this batch's model: its stop tokens end the request
     * @param pixels     makes the [tiles, C, H, W] image on the batch thread; null for a prompt without an image
     * @param imageSizes the image's original {@code {{height, width}}} for an AnyRes model; null otherwise
     * @param client     told the request's start, tokens and end, on the batch thread
     */
    public void submit(Generator generator, Supplier<Tensor> pixels, int[][] imageSizes, int[] prompt, Sampling sampling, Client client) {
        if (generator.model() != model) throw new IllegalArgumentException("the generator runs another model than this batch");
        if (closed) {
            client.failed(new CancellationException("the batch is closed"));
            return;
        }
        waiting.add(new Request(generator.stopTokens(), pixels, imageSizes, prompt.clone(), sampling, client));
    }

    /** Rows in the decode batch now. */
    public int batchSize() {
        return batchSize;
    }

    public int maxBatch() {
        return maxBatch;
    }

    private void loop() {
        try (NoGradGuard ng = new NoGradGuard(); Autocast ac = Autocast.enable(precision)) {
            while (!closed) {
                admit();
                if (!rows.isEmpty()) step();
            }
        } catch (InterruptedException e) {
            // closed
        } finally {
            CancellationException gone = new CancellationException("the batch was closed");
            for (Row r : rows) end(r, gone);
            rows.clear();
            batchSize = 0;
            for (Request q; (q = waiting.poll()) != null; ) q.client.failed(gone);
        }
    }

    /** Prefills waiting requests (one prompt at a time) while rows are free; waits for one when the batch is empty. */
    private void admit() throws InterruptedException {
        while (rows.size() < maxBatch && !closed) {
            Request q = rows.isEmpty() ? waiting.poll(100, TimeUnit.MILLISECONDS) : waiting.poll();
            if (q == null) return;
            Row row = prefill(q);
            if (row != null && row.reason == null) rows.add(row);
            else if (row != null) end(row, null);
            batchSize = rows.size();
        }
    }

    /**
     * The request's prompt alone into a new cache (prompt + max new tokens), as {@link Generator#generate} runs it, and
     * its first token; null when it failed (its client told).
     */
    private Row prefill(Request q) {
        long t0 = System.nanoTime();
        KvCache cache = null;
        try {
            q.client.start();
            float[] logits;
            Tensor embeds = new Tensor(); // made outside any scope, as the cache: both outlive the scopes below
            try {
                try (PointerScope s = new PointerScope()) {
                    embeds.put(model.embedPrompt(q.pixels == null ? null : q.pixels.get(), q.imageSizes, longs(q.prompt))); // [1, L, h]
                }
                cache = new KvCache(model.config.text(), 1, embeds.size(1) + q.sampling.maxNewTokens());
                try (PointerScope s = new PointerScope()) {
                    Tensor hidden = model.languageModel.forwardCached(embeds, null, null, cache); // [1, L, h]
                    logits = Tensors.toFloats(model.languageModel.head(hidden.narrow(1, hidden.size(1) - 1, 1))); // [V]
                }
            } finally {
                embeds.close();
            }
            Row row = new Row(q, cache, t0, cache.length());
            row.accept(row.picker.pick(logits));
            return row;
        } catch (Throwable e) {
            if (cache != null) cache.close();
            q.client.failed(e);
            return null;
        }
    }

    /** One decoding step of every row: one forward with M = rows; each row picks and may end. */
    private void step() {
        int m = rows.size();
        long[] last = new long[m]; // each row's latest token, the input of this step
        List<KvCache> caches = new ArrayList<>(m);
        for (Row row : rows) {
            last[caches.size()] = row.tokens.get(row.tokens.size() - 1);
            caches.add(row.cache);
        }
        float[] logits; // [M, V] row-major
        try (PointerScope s = new PointerScope()) {
            Llama lm = model.languageModel;
            Tensor e = lm.model.embedTokens.forward(Tensors.longs(last, m, 1)); // [M, 1, h]
            logits = Tensors.toFloats(lm.head(lm.forwardDecode(e, new BatchKvCache(caches)))); // [M, 1, V]
        } catch (Throwable t) {
            for (Row row : rows) end(row, t);
            rows.clear();
            batchSize = 0;
            return;
        }
        onStep.accept(m);
        int v = logits.length / m;
        List<Row> staying = new ArrayList<>(m);
        for (int r = 0; r < m; r++) {
            Row row = rows.get(r);
            try {
                if (row.accept(row.picker.pick(Arrays.copyOfRange(logits, r * v, (r + 1) * v)))) end(row, null);
                else staying.add(row);
            } catch (RuntimeException e) { // a client's callback failed: that request ends, the batch goes on
                end(row, e);
            }
        }
        rows.clear();
        rows.addAll(staying);
        batchSize = rows.size();
    }

    /** Frees the row's cache and tells its client: finished, or failed with {@code error}. */
    private static void end(Row row, Throwable error) {
        Generator.Result result = error == null ? row.result() : null;
        row.cache.close();
        if (error == null) row.req.client.finished(result);
        else row.req.client.failed(error);
    }

    /** Stops the batch: running and waiting requests fail with a {@link CancellationException}. */
    @Override
    public void close() {
        closed = true;
        thread.interrupt();
        try {
            thread.join(TimeUnit.SECONDS.toMillis(30));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static boolean isStop(int[] stops, int token) {
        for (int s : stops) if (s == token) return true;
        return false;
    }

    private static long[] longs(int[] ids) {
        long[] l = new long[ids.length];
        for (int i = 0; i < ids.length; i++) l[i] = ids[i];
        return l;
    }
}
