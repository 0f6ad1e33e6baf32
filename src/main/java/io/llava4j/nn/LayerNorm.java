package io.llava4j.nn;

import org.bytedeco.pytorch.Module;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;

/** LayerNorm over the last dimension with affine {@code weight} and {@code bias}. */
public class LayerNorm extends Module {
    public final Tensor weight; // [h]
    public final Tensor bias;   // [h]
    private final long[] shape;
    private final double eps;

    public LayerNorm(long h, double eps) {
        this.weight = Params.register(this, "weight", torch.ones(h));
        this.bias = Params.register(this, "bias", torch.zeros(h));
        this.shape = new long[]{h};
        this.eps = eps;
    }

    public Tensor forward(Tensor x) {
        return torch.layer_norm(x, shape, new TensorOptional(weight), new TensorOptional(bias), eps, false);
    }
}
