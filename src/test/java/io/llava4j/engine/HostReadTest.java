package io.llava4j.engine;

import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Host code reads a tensor's memory only through {@link Tensors#onHost}: a tensor that is not on the CPU is copied
 * there first, or refused by name when it has no values. The meta device stands in for a GPU here (no GPU in CI):
 * like a CUDA tensor its {@code data_ptr} is no host address, so a raw read of it would be wrong.
 */
class HostReadTest {
    private static Tensor onMeta(Tensor t) {
        return t.to(new org.bytedeco.pytorch.Device("meta"), t.scalar_type().intern());
    }

    @Test
    void aTensorOffTheCpuNeverReachesARawHostRead() {
        Tensor f = onMeta(Tensors.floats(new float[]{1, 2, 3, 4, 5, 6}, 2, 3));
        Tensor l = onMeta(Tensors.longs(new long[]{1, 2}, 2));
        assertFalse(f.is_cpu());
        for (Executable read : new Executable[]{() -> Tensors.toFloats(f), () -> Tensors.toLongs(l), () -> Tensors.hostView(f),
                () -> Tensors.onHost(f, ScalarType.Float)}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, read);
            assertTrue(e.getMessage().contains("meta device") && e.getMessage().contains("[2"), e.getMessage());
        }
    }

    @Test
    void cpuTensorsAreReadInPlaceOrConverted() {
        Tensor t = Tensors.floats(new float[]{1, 2, 3, 4, 5, 6}, 2, 3);
        Tensor transposed = t.t(); // not contiguous: read in row-major order of the transposed view
        assertArrayEquals(new float[]{1, 4, 2, 5, 3, 6}, Tensors.toFloats(transposed));
        assertArrayEquals(new long[]{1, 4, 2, 5, 3, 6}, Tensors.toLongs(transposed));
        Tensor same = Tensors.onHost(t, ScalarType.Float);
        assertEquals(t.data_ptr().address(), same.data_ptr().address(), "a contiguous CPU tensor of the type is not copied");
        assertArrayEquals(new float[]{1, 2, 3, 4, 5, 6}, Tensors.hostView(t).toFloats());
        assertEquals(ScalarType.Long, Tensors.onHost(t, ScalarType.Long).scalar_type().intern());
        assertEquals(torch.ScalarType.Float, t.scalar_type().intern(), "the source keeps its type");
    }
}
