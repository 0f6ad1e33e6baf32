package io.llava4j.nn;

import org.bytedeco.pytorch.Module;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/** y = x·Wᵀ + b, parameters {@code weight} and (optionally) {@code bias}, as torch.nn.Linear. */
public class Linear extends Module {
    public final Tensor weight; // [out, in]
    public final Tensor bias;   // [out] or null

    public Linear(long in, long out, boolean bias) {
        this.weight = Params.register(this, "weight", torch.empty(out, in));
        this.bias = bias ? Params.register(this, "bias", torch.empty(out)) : null;
    }

    public Tensor forward(Tensor x) {
        return Autocast.linear(x, weight, bias);
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
