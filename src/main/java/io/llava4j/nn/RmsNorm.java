package io.llava4j.nn;

import org.bytedeco.pytorch.Module;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/** LLaMA's RMSNorm: w · x · rsqrt(mean(x²) + eps), computed in fp32, parameter {@code weight}. */
public class RmsNorm extends Module {
    public final Tensor weight; // [h]
    private final Scalar eps;

    public RmsNorm(long h, double eps) {
        this.weight = Params.register(this, "weight", torch.ones(h));
        this.eps = new Scalar(eps);
    }

    public double eps() {
        return eps.toDouble();
    }

    public Tensor forward(Tensor x) {
        Tensor x32 = x.to(ScalarType.Float);
        Tensor ms = x32.pow(new Scalar(2.0)).mean(new long[]{-1}, true, null); // [.., 1]
        return weight.mul(x32.mul(torch.rsqrt(ms.add(eps)))).to(x.scalar_type());
    }
}
