package io.llava4j.nn;

import org.bytedeco.pytorch.Module;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/** A lookup table, parameter {@code weight} [n, h]. */
public class Embedding extends Module {
    public final Tensor weight; // [n, h]

    public Embedding(long n, long h) {
        this.weight = Params.register(this, "weight", torch.empty(n, h));
    }

    public Tensor forward(Tensor ids) {
        return Autocast.embedding(weight, ids); // fp32 rows whatever the table's storage type
    }
}
