package io.llava4j.nn;

import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.util.function.UnaryOperator;

/** HF activation names ({@code ACT2FN}) as functions on tensors. */
public final class Activation {
    private Activation() {}

    public static UnaryOperator<Tensor> of(String name) {
        return switch (name) {
            case "quick_gelu" -> x -> x.mul(torch.sigmoid(x.mul(new Scalar(1.702))));
            case "gelu" -> torch::gelu;
            case "gelu_pytorch_tanh" -> x -> torch.gelu(x, "tanh");
            case "silu" -> torch::silu;
            case "relu" -> torch::relu;
            default -> throw new IllegalArgumentException("unknown activation '" + name + "'");
        };
    }
}
