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
            keys[i] = io.llava4j.engine.Device.place(torch.zeros(batch, c.numKeyValueHeads(), capacity, c.headDim()));
            values[i] = io.llava4j.engine.Device.place(torch.zeros(batch, c.numKeyValueHeads(), capacity, c.headDim()));
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

    private java.nio.ByteBuffer[] keyBuffers, valueBuffers; // the tensors' memory, made on first use
    private Boolean javaReadable; // the tensors never change: checked once

    /** Whether {@link #keyBuffer} can read every layer (contiguous fp32 tensors under 2 GiB on the CPU). */
    boolean javaReadable() {
        if (javaReadable == null) {
            boolean ok = true;
            for (int i = 0; i < keys.length && ok; i++) ok = readable(keys[i]) && readable(values[i]);
            javaReadable = ok;
        }
        return javaReadable;
    }

    /** Layer {@code i}'s keys [B, nkv, capacity, hd] as a little-endian buffer over the tensor's memory ({@link #javaReadable} first). */
    java.nio.ByteBuffer keyBuffer(int i) {
        buffers();
        return keyBuffers[i];
    }

    /** As {@link #keyBuffer} for the values. */
    java.nio.ByteBuffer valueBuffer(int i) {
        buffers();
        return valueBuffers[i];
    }

    private static boolean readable(Tensor t) {
        return t.scalar_type().intern() == torch.ScalarType.Float && t.is_contiguous() && t.device().is_cpu() && t.nbytes() <= Integer.MAX_VALUE;
    }

    private void buffers() {
        if (keyBuffers != null) return;
        if (!javaReadable())
            throw new IllegalStateException("the KV cache is read from Java only as contiguous fp32 tensors under 2 GiB on the CPU");
        keyBuffers = new java.nio.ByteBuffer[keys.length];
        valueBuffers = new java.nio.ByteBuffer[keys.length];
        for (int i = 0; i < keys.length; i++) {
            keyBuffers[i] = buffer(keys[i]);
            valueBuffers[i] = buffer(values[i]);
        }
    }

    private static java.nio.ByteBuffer buffer(Tensor t) {
        return new org.bytedeco.javacpp.BytePointer(t.data_ptr()).capacity(t.nbytes()).asByteBuffer().order(java.nio.ByteOrder.LITTLE_ENDIAN);
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
