package io.llava4j.io;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** Assertions comparing HostTensors by content (the record's equals compares shape arrays by identity). */
final class TensorAssertions {

    private TensorAssertions() {
    }

    static byte[] bytes(HostTensor t) {
        ByteBuffer b = t.data().duplicate();
        byte[] out = new byte[b.remaining()];
        b.get(out);
        return out;
    }

    static void assertTensorEquals(HostTensor expected, HostTensor actual, String name) {
        assertEquals(expected.dtype(), actual.dtype(), name + ": dtype");
        assertArrayEquals(expected.shape(), actual.shape(), name + ": shape");
        assertArrayEquals(bytes(expected), bytes(actual), name + ": data");
    }

    /** Same names in the same order, same tensors. */
    static void assertTensorMapsEqual(Map<String, HostTensor> expected, Map<String, HostTensor> actual) {
        assertEquals(new ArrayList<>(expected.keySet()), new ArrayList<>(actual.keySet()), "tensor names");
        for (Map.Entry<String, HostTensor> e : expected.entrySet())
            assertTensorEquals(e.getValue(), actual.get(e.getKey()), e.getKey());
    }
}
