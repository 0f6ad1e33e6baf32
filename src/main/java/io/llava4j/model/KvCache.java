package io.llava4j.model;

import io.llava4j.config.TextConfig;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * The keys and values of the positions a LLaMA has seen, per layer, for {@link Llama#forwardCached}. Sized once for a
 * request (prompt + new tokens) and freed by {@link #close()}: nothing outlives the request. Keys are stored after the
 * rotary embedding, with the model's key/value head count (GQA: fewer than the query heads).
 */
public final class KvCache implements AutoCloseable {
    final Tensor[] keys;   // per layer [B, nkv, capacity, hd]
    final Tensor[] values; // per layer [B, nkv, capacity, hd]
    private final long capacity;
    private long length;

    public KvCache(TextConfig c, long batch, long capacity) {
        if (batch < 1 || capacity < 1) throw new IllegalArgumentException("KV cache of batch " + batch + " and " + capacity + " positions");
        this.capacity = capacity;
        int n = c.numHiddenLayers();
        keys = new Tensor[n];
        values = new Tensor[n];
        for (int i = 0; i < n; i++) {
            keys[i] = torch.zeros(batch, c.numKeyValueHeads(), capacity, c.headDim());
            values[i] = torch.zeros(batch, c.numKeyValueHeads(), capacity, c.headDim());
        }
    }

    /** Positions stored so far. */
    public long length() {
        return length;
    }

    public long capacity() {
        return capacity;
    }

    void advance(long t) {
        length += t;
    }

    /** Bytes held by the cache's tensors. */
    public long bytes() {
        long b = 0;
        for (int i = 0; i < keys.length; i++) b += (keys[i].numel() + values[i].numel()) * keys[i].element_size();
        return b;
    }

    /** Releases the tensors now (instead of at the next GC or when an enclosing PointerScope closes). */
    @Override
    public void close() {
        for (int i = 0; i < keys.length; i++) {
            keys[i].close();
            values[i].close();
        }
    }
}
