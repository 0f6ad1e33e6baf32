package io.llava4j.nn;

import org.bytedeco.pytorch.Module;
import org.bytedeco.pytorch.Tensor;

/** Parameter registration that is safe from Java. */
public final class Params {
    private Params() {}

    /**
     * Registers {@code t} as parameter {@code name} of {@code m} and returns an owning handle to it.
     *
     * <p>{@code register_parameter} returns a C++ reference into the module's parameter dictionary; registering the next
     * parameter may reallocate that dictionary and leave the reference dangling (a SIGSEGV later). A new
     * {@link Tensor} handle shares the same TensorImpl and stays valid.
     */
    public static Tensor register(Module m, String name, Tensor t) {
        return new Tensor(m.register_parameter(name, t));
    }
}
