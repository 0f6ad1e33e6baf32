package io.llava4j.demo;

import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** The demo's lab switch: settings replaced by name, validated as a whole. */
class DemoSettingsTest {
    @Test
    void fieldsAreReplacedByNameAndTheResultIsValidatedAsAWhole() {
        Demo.Settings s = Demo.Settings.FULL.with(Map.of("llmHidden", "96", "stage2Lr", "1e-4", "clipAttributeShapes", "100", "clipAttributeBatch", "8"));
        assertEquals(96, s.llmHidden());
        assertEquals(1e-4, s.stage2Lr());
        assertEquals(100, s.clipAttributeShapes());
        assertEquals(Demo.Settings.FULL.llmLr(), s.llmLr(), "the other fields stay");
        assertEquals(Demo.Settings.FULL, Demo.Settings.FULL.with(Map.of()));

        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Demo.Settings.FULL.with(Map.of("llmWidth", "96")));
        assertTrue(e.getMessage().contains("llmWidth") && e.getMessage().contains("llmHidden"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Demo.Settings.FULL.with(Map.of("llmLr", "fast")));
        assertTrue(e.getMessage().contains("llmLr"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Demo.Settings.FULL.with(Map.of("selectLayer", "-5")));
        assertTrue(e.getMessage().contains("selectLayer"), e.getMessage());
        assertEquals(-4, Demo.Settings.FULL.with(Map.of("selectLayer", "-4")).selectLayer(), "the embeddings' output of a 3-layer tower");
        e = assertThrows(IllegalArgumentException.class, () -> Demo.Settings.FULL.with(Map.of("clipAttributeShapes", "100")));
        assertTrue(e.getMessage().contains("clipAttributeBatch"), e.getMessage());
    }
}
