package io.llava4j.nn.quant;

/**
 * The storage formats of quantized weights, as bitsandbytes defines them: {@link #NF4} and {@link #FP4} are 4-bit block
 * formats (64 values a block, each block scaled by its absolute maximum, two codes a byte); {@link #INT8} is one int8
 * value per weight with one absolute maximum per output row (LLM.int8's weight storage, without its fp16 outlier
 * columns: every column is quantized). {@link #INT4} is for decoding only (its kernel has no derivative).
 */
public enum QuantType {
    NF4(4), FP4(4), INT8(8),
    /** Asymmetric 4-bit groups of 64 in libtorch's int4 kernel layout ({@link GroupwiseInt4}): generate/chat/serve's {@code --load_4bit}. */
    INT4(4);

    public final int bits;

    QuantType(int bits) {
        this.bits = bits;
    }

    /** "nf4" / "fp4" / "int8", as the flags spell them. */
    public String flag() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
