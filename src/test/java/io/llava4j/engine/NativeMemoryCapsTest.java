package io.llava4j.engine;

import org.bytedeco.javacpp.Pointer;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Every entry point (CLI, tests, benchmark mains) runs with JavaCPP's native-memory caps off: with them on, each tensor
 * handle allocated reads the process's resident size from /proc, a tenth of a small decoding step's time.
 */
class NativeMemoryCapsTest {
    @Test
    void capsAreOffOnceTheEngineIsUp() {
        Engine.init();
        assertEquals(0, Pointer.maxPhysicalBytes(), "maxPhysicalBytes");
        assertEquals(0, Pointer.maxBytes(), "maxBytes");
    }
}
