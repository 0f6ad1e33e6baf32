package io.llava4j.nn.quant;

/**
 * How the frozen LLM's linear weights are held: LLaVA's {@code --bits 8|4}, {@code --quant_type nf4|fp4} and
 * {@code --double_quant True} (train.py's BitsAndBytesConfig). {@code doubleQuant}: the 4-bit formats' per-block
 * absolute maxima are themselves quantized to 8 bits (bitsandbytes' {@code compress_statistics}).
 */
public record QuantSpec(QuantType type, boolean doubleQuant) {
    public QuantSpec {
        if (type == null) throw new IllegalArgumentException("a quantization type is required");
        if (doubleQuant && type == QuantType.INT8)
            throw new IllegalArgumentException("--double_quant True applies to --bits 4 only (the 4-bit blocks' scales); --bits 8 has one scale per row");
        if (doubleQuant && type == QuantType.INT4)
            throw new IllegalArgumentException("int4 groups keep a bf16 scale and zero each; they are not double-quantized");
    }

    /**
     * The spec LLaVA's flags ask for: {@code bits} 16 (LLaVA's default) is none (null); 8 is per-row int8; 4 the 4-bit
     * {@code quantType} ({@code nf4}, LLaVA's default, or {@code fp4}).
     */
    public static QuantSpec of(int bits, String quantType, boolean doubleQuant) {
        switch (bits) {
            case 16, 32 -> {
                if (doubleQuant) throw new IllegalArgumentException("--double_quant True needs --bits 4");
                return null;
            }
            case 8 -> {
                return new QuantSpec(QuantType.INT8, doubleQuant);
            }
            case 4 -> {
                return switch (quantType == null ? "nf4" : quantType) {
                    case "nf4" -> new QuantSpec(QuantType.NF4, doubleQuant);
                    case "fp4" -> new QuantSpec(QuantType.FP4, doubleQuant);
                    default -> throw new IllegalArgumentException("--quant_type " + quantType + " is not nf4 or fp4");
                };
            }
            default -> throw new IllegalArgumentException("--bits " + bits + " is not 4, 8 or 16");
        }
    }

    /** "4 bits (nf4, double-quantized scales)" and the like, for reports. */
    public String describe() {
        return type.bits + " bits (" + switch (type) {
            case INT8 -> "int8, one scale per row";
            case INT4 -> "int4, groups of " + GroupwiseInt4.GROUP + " with a bf16 scale and zero each";
            default -> type.flag() + ", blocks of " + Blockwise4Bit.BLOCK + (doubleQuant ? ", scales double-quantized" : "");
        } + ")";
    }

    /** {@code w} [out, in] (any floating type) held in this format. */
    public QuantizedWeight quantize(org.bytedeco.pytorch.Tensor w) {
        return switch (type) {
            case INT8 -> RowwiseInt8.quantize(w);
            case INT4 -> GroupwiseInt4.quantize(w);
            default -> Blockwise4Bit.quantize(w, type, doubleQuant);
        };
    }
}
