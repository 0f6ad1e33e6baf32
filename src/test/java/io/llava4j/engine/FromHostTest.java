package io.llava4j.engine;

import io.llava4j.io.DType;
import io.llava4j.io.HostTensor;
import io.llava4j.io.Safetensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** Native copies of memory-mapped F32/F16/BF16 tensors equal the JVM conversion. */
class FromHostTest {
    @Test
    void mappedHalfAndFloatTensorsConvertExactly(@TempDir Path dir) throws Exception {
        float[] v = {0f, 1f, -2.5f, 3.140625f, 65504f, 1e-3f, -0f, 7f};
        ByteBuffer h = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN), b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
        for (float x : v) {
            b.putShort((short) (Float.floatToIntBits(x) >>> 16)); // bf16 = top half (truncation)
            h.putShort(toHalf(x));
        }
        Map<String, HostTensor> t = new LinkedHashMap<>();
        t.put("f32", HostTensor.ofFloats(new long[]{2, 4}, v));
        t.put("f16", new HostTensor(DType.F16, new long[]{2, 4}, h.flip()));
        t.put("bf16", new HostTensor(DType.BF16, new long[]{2, 4}, b.flip()));
        Path f = dir.resolve("t.safetensors");
        Safetensors.write(f, t, Map.of());
        for (Map.Entry<String, HostTensor> e : Safetensors.read(f).tensors().entrySet()) {
            assertTrue(e.getValue().data().isDirect(), "mapped");
            assertArrayEquals(e.getValue().toFloats(), Tensors.toFloats(Tensors.fromHost(e.getValue())), 0f, e.getKey());
            assertArrayEquals(new long[]{2, 4}, Tensors.shape(Tensors.fromHost(e.getValue())));
        }
    }

    static short toHalf(float x) {
        // exact for the values above (all representable in binary16)
        int bits = Float.floatToIntBits(x), sign = (bits >>> 16) & 0x8000, exp = ((bits >>> 23) & 0xff) - 127 + 15, mant = bits & 0x7fffff;
        if ((bits & 0x7fffffff) == 0) return (short) sign;
        if (exp <= 0) return (short) (sign | ((mant | 0x800000) >> (14 - exp)));
        return (short) (sign | (exp << 10) | (mant >> 13));
    }
}
