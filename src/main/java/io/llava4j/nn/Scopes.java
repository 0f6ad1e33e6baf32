package io.llava4j.nn;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;

import java.util.function.Supplier;

/**
 * Frees a computation's temporaries as soon as it is done. Every tensor handle created from Java lives until its
 * {@link PointerScope} closes; a forward pass that ran in one scope would keep every layer's intermediates (and
 * up-cast weights) until the end of the step. {@link #keep} runs a block in its own scope and hands back only its
 * result; what autograd saved for the backward stays alive through autograd's own references.
 */
public final class Scopes {
    private Scopes() {}

    public static Tensor keep(Supplier<Tensor> body) {
        Tensor out = new Tensor(); // owned by the caller's scope
        try (PointerScope s = new PointerScope()) {
            out.put(body.get());
        }
        return out;
    }
}
