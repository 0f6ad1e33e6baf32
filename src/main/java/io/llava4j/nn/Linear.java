package io.llava4j.nn;

import org.bytedeco.pytorch.Module;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * y = x·Wᵀ + b, parameters {@code weight} and (optionally) {@code bias}, as torch.nn.Linear; with a LoRA adapter
 * ({@link #attachLora}) y + {@link LoraBranch#forward}(x), as PEFT's {@code lora.Linear}.
 */
public class Linear extends Module {
    public final Tensor weight; // [out, in]
    public final Tensor bias;   // [out] or null

    public Linear(long in, long out, boolean bias) {
        this.weight = Params.register(this, "weight", torch.empty(out, in));
        this.bias = bias ? Params.register(this, "bias", torch.empty(out)) : null;
    }

    private LoraBranch lora; // null: no adapter
    private InferenceMatrix packed; // null: the plain weight computes
    private io.llava4j.nn.quant.QuantizedLinear quantized; // null: the weight is held in {@code weight}
    private boolean fused; // the weight lives in a FusedProjection

    public Tensor forward(Tensor x) {
        if (fused) throw new IllegalStateException("this layer's weight is packed into a fused projection and computes there");
        Tensor y = packed != null ? packed.linear(x, bias)
                : quantized != null ? quantized.forward(x, bias) : Autocast.linear(x, weight, bias);
        return lora == null ? y : y.add(lora.forward(x));
    }

    /**
     * Holds the (frozen) weight quantized from now on: {@code weight} keeps its name, shape and requires_grad false but
     * no memory of its own (a zero-stride view of one value), and {@link #forward} dequantizes {@code q} instead.
     */
    public void quantize(io.llava4j.nn.quant.QuantizedLinear q) {
        if (!java.util.Arrays.equals(q.weight.shape, weight.sizes().vec().get()))
            throw new IllegalArgumentException("quantized weight of shape " + java.util.Arrays.toString(q.weight.shape)
                    + " for a weight of shape " + java.util.Arrays.toString(weight.sizes().vec().get()));
        try (var g = new org.bytedeco.pytorch.NoGradGuard()) {
            weight.requires_grad_(false);
            weight.__dispatch_set_data(torch.zeros(new long[]{1, 1}, new org.bytedeco.pytorch.TensorOptions(weight.scalar_type().intern()))
                    .expand(weight.size(0), weight.size(1)));
        }
        quantized = q;
    }

    /** The quantized weight, or null. */
    public io.llava4j.nn.quant.QuantizedLinear quantized() {
        return quantized;
    }

    /**
     * Adds a LoRA branch of rank {@code r} (modules {@code lora_A}, {@code lora_B}) initialised as PEFT does: A
     * kaiming-uniform(a=√5) from torch's global generator, B zero. The new parameters are fp32, on the current device.
     */
    public LoraBranch attachLora(int r, double alpha, double dropout, long index) {
        if (lora != null) throw new IllegalStateException("this layer already has a LoRA adapter");
        Linear a = register_module("lora_A", new Linear(weight.size(1), r, false));
        Linear b = register_module("lora_B", new Linear(r, weight.size(0), false));
        a.resetParameters(); // U(±1/√in) = kaiming_uniform_(a=√5)
        try (var g = new org.bytedeco.pytorch.NoGradGuard()) {
            b.weight.zero_();
        }
        io.llava4j.engine.Device.move(a);
        io.llava4j.engine.Device.move(b);
        lora = new LoraBranch(a, b, alpha / r, dropout, index);
        return lora;
    }

    /**
     * Inference only: keeps the weight in {@code type} in the layout chosen for decoding ({@link InferenceMatrix#of}: a
     * row-major copy for Java's vector products, else oneDNN's blocked layout) and releases the plain parameter's memory
     * (it keeps its name and shape; the layer can no longer be trained, saved or merged). Layers with a LoRA adapter,
     * quantized layers, and matrices the layout would not hold exactly ({@link PackedWeight#of}), are left as they are.
     *
     * @return bytes now held by the copy (0 where nothing was packed)
     */
    public long packForInference(org.bytedeco.pytorch.global.torch.ScalarType type) {
        if (lora != null || packed != null || fused || quantized != null) return 0;
        packed = InferenceMatrix.of(weight, type);
        if (packed == null) return 0;
        release();
        return packed.bytes();
    }

    /** {@link FusedProjection#pack}: the weight is held there from now on; this layer no longer computes. */
    void fuseInto() {
        fused = true;
        release();
    }

    /** Same name and shape, no memory: the weight becomes a zero-stride view of one value. */
    private void release() {
        try (var g = new org.bytedeco.pytorch.NoGradGuard()) {
            weight.requires_grad_(false);
            weight.__dispatch_set_data(torch.zeros(new long[]{1, 1}, new org.bytedeco.pytorch.TensorOptions(weight.scalar_type().intern()))
                    .expand(weight.size(0), weight.size(1)));
        }
    }

    /** The matrix {@link #packForInference} made, or null. */
    public InferenceMatrix inferenceMatrix() {
        return packed;
    }

    /** True after {@link #packForInference}, or once packed into a {@link FusedProjection}. */
    public boolean isPacked() {
        return packed != null || fused;
    }

    /** The LoRA branch, or null. */
    public LoraBranch lora() {
        return lora;
    }

    /** PyTorch's default init: kaiming_uniform(a=√5) for the weight and U(±1/√fan_in) for the bias, both U(±1/√in). */
    public void resetParameters() {
        double bound = 1.0 / Math.sqrt(weight.size(1));
        try (var g = new org.bytedeco.pytorch.NoGradGuard()) {
            weight.uniform_(-bound, bound, null);
            if (bias != null) bias.uniform_(-bound, bound, null);
        }
    }
}
