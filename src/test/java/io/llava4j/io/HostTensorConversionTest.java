package io.llava4j.io;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** F16 and BF16 to fp32 conversion against known bit patterns. */
class HostTensorConversionTest {

    @Test
    void halfToFloatKnownValues() {
        short[] bits = {0x3C00, (short) 0xC000, 0x7BFF, 0x0001, 0x03FF, 0x0400, (short) 0x8000, 0x0000, 0x3555,
                0x7C00, (short) 0xFC00, 0x3800, (short) 0xB4CD};
        float[] expected = {1f, -2f, 65504f, 0x1p-24f, 0x3FFp-24f, 0x1p-14f, -0f, 0f, 0.33325195f,
                Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 0.5f, -0.30004883f};
        float[] actual = SafetensorsTest.raw(DType.F16, new long[]{bits.length}, bits).toFloats();
        assertArrayEquals(expected, actual);
        assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(actual[6]), "negative zero keeps its sign");
        assertTrue(Float.isNaN(HostTensor.halfToFloat((short) 0x7E00)));
    }

    @Test
    void bfloat16ToFloatKnownValues() {
        short[] bits = {0x3F80, 0x4049, (short) 0xC2F7, 0x0000, (short) 0x8000, 0x7F80, (short) 0xFF80, 0x3EAB,
                0x7F7F, 0x0001};
        float[] expected = {1f, 3.140625f, -123.5f, 0f, -0f, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY,
                0.333984375f, Float.intBitsToFloat(0x7F7F0000), Float.intBitsToFloat(0x00010000)};
        assertArrayEquals(expected, SafetensorsTest.raw(DType.BF16, new long[]{bits.length}, bits).toFloats());
        assertTrue(Float.isNaN(SafetensorsTest.raw(DType.BF16, new long[]{1}, (short) 0x7FC0).toFloats()[0]));
    }
}
