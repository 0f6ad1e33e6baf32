package io.llava4j.model;

import java.util.List;

/**
 * The KV caches of the rows of one batched decoding step ({@link Llama#forwardDecode}): row r is one request's own
 * {@link KvCache} (batch 1, sized to that request), so rows hold different lengths and attend each to their own cache
 * only. Requests join and leave between steps by being in the list or not; the caches belong to the requests.
 */
public final class BatchKvCache {
    private final List<KvCache> rows;

    /** {@code rows}: one cache of batch 1 per row of the step, in row order. */
    public BatchKvCache(List<KvCache> rows) {
        if (rows.isEmpty()) throw new IllegalArgumentException("a decoding step needs at least one row");
        for (KvCache c : rows) {
            if (c.keys[0].size(0) != 1) throw new IllegalArgumentException("a row's KV cache must hold one sequence, got " + c.keys[0].size(0));
            if (c.length() + 1 > c.capacity())
                throw new IllegalStateException("KV cache holds " + c.capacity() + " positions; " + c.length() + " used, 1 more asked");
        }
        this.rows = List.copyOf(rows);
    }

    public int rows() {
        return rows.size();
    }

    KvCache row(int r) {
        return rows.get(r);
    }

    /** Positions each row has stored: the position of its next token. */
    long[] lengths() {
        long[] l = new long[rows.size()];
        for (int r = 0; r < l.length; r++) l[r] = rows.get(r).length();
        return l;
    }

    void advance() {
        for (KvCache c : rows) c.advance(1);
    }
}
