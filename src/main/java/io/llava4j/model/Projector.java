package io.llava4j.model;

import io.llava4j.nn.Activation;
import io.llava4j.nn.Linear;
import org.bytedeco.pytorch.Module;
import org.bytedeco.pytorch.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.function.UnaryOperator;

/**
 * The multimodal projector ({@code multi_modal_projector}): {@code linear_1}, then for mlp{N}x: [act, linear_k] for
 * k = 2..N; depth 0 is LLaVA's {@code identity}. HF's two-layer LlavaMultiModalProjector is depth 2.
 */
public class Projector extends Module {
    public final List<Linear> linears = new ArrayList<>(); // linear_1: [text, vision]; linear_k: [text, text]
    private final UnaryOperator<Tensor> act;

    public Projector(int depth, long visionHidden, long textHidden, String act) {
        for (int k = 1; k <= depth; k++)
            linears.add(register_module("linear_" + k, new Linear(k == 1 ? visionHidden : textHidden, textHidden, true)));
        this.act = Activation.of(act);
    }

    /** [.., vision] → [.., text] */
    public Tensor forward(Tensor x) {
        for (int k = 0; k < linears.size(); k++) x = linears.get(k).forward(k == 0 ? x : act.apply(x));
        return x;
    }

    /** A fresh projector, as LLaVA's stage 1 starts: PyTorch's default Linear init. */
    public void resetParameters() {
        for (Linear l : linears) l.resetParameters();
    }
}
