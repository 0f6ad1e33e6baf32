package io.llava4j.engine;

import org.bytedeco.pytorch.Dispatcher;
import org.bytedeco.pytorch.OperatorHandle;
import org.bytedeco.pytorch.Type;

import java.util.function.Supplier;

/**
 * Operators without a Java wrapper, reached through libtorch's dispatcher ({@code callBoxed}). Their handles (and
 * anything else kept for the process's lifetime) are made on a thread of their own: a handle made inside a caller's
 * {@code PointerScope} would be freed with it, and a class may first be used inside one. The work runs in this class's
 * code, so a caller may ask from its static initialiser (code of a class whose initialisation is under way, run on
 * another thread, would wait for that initialisation, which waits for the thread).
 */
public final class Ops {
    private Ops() {}

    /** The handles of the named operators (overload ""), each null where this libtorch has no such operator. */
    public static OperatorHandle[] find(String... names) {
        return apart(() -> {
            Engine.init();
            OperatorHandle[] out = new OperatorHandle[names.length];
            for (int i = 0; i < names.length; i++) {
                try {
                    out[i] = Dispatcher.singleton().findSchemaOrThrow(names[i], "");
                } catch (RuntimeException e) {
                    out[i] = null;
                }
            }
            return out;
        });
    }

    /** The element type of list argument {@code arg} of {@code op}'s schema (for an empty list of the right type). */
    public static Type.TypePtr listElementType(OperatorHandle op, int arg) {
        return apart(() -> op.schema().arguments().getPointer(arg).type().get().containedType(0));
    }

    private static <T> T apart(Supplier<T> work) {
        Object[] out = new Object[1];
        Thread t = new Thread(() -> out[0] = work.get(), "llava4j-op-lookup");
        t.start();
        try {
            t.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while looking up libtorch operators", e);
        }
        @SuppressWarnings("unchecked") T result = (T) out[0];
        return result;
    }
}
