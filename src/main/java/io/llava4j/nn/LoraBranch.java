package io.llava4j.nn;

import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;

/**
 * PEFT's LoRA branch of a {@link Linear} (peft/tuners/lora/layer.py, {@code Linear.forward} with {@code bias="none"}):
 * {@code lora_B(lora_A(dropout(x))) · alpha / r}, added to the frozen layer's output. {@code lora_A} [r, in] starts as
 * kaiming_uniform(a=√5), i.e. U(±1/√in); {@code lora_B} [out, r] starts at zero, so the adapted layer starts equal to
 * the base. Both are registered on the adapted layer as modules {@code lora_A} / {@code lora_B}, so their parameters
 * are named {@code ….q_proj.lora_A.weight} as PEFT saves them.
 */
public final class LoraBranch {
    public final Linear a;  // lora_A: [r, in]
    public final Linear b;  // lora_B: [out, r]
    public final double scale;   // alpha / r
    public final double dropout; // p on the branch's input
    public final long index;     // the branch's index in the model (its dropout masks)

    LoraBranch(Linear a, Linear b, double scale, double dropout, long index) {
        this.a = a;
        this.b = b;
        this.scale = scale;
        this.dropout = dropout;
        this.index = index;
    }

    /** x [.., in] → [.., out] */
    public Tensor forward(Tensor x) {
        return b.forward(a.forward(LoraDropout.apply(x, dropout, index))).mul(new Scalar(scale));
    }
}
