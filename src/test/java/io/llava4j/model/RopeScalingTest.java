package io.llava4j.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.llava4j.config.RopeScaling;
import io.llava4j.engine.Engine;
import io.llava4j.engine.Tensors;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Rotary cos/sin with rope_scaling against the formulas of HF's LlamaRotaryEmbedding variants, in double precision. */
class RopeScalingTest {
    static final int HD = 8;
    static final double THETA = 10000;
    static final int MAX = 16;

    @BeforeAll
    static void init() {
        Engine.init();
    }

    static RopeScaling scaling(String type, double factor) throws Exception {
        return new ObjectMapper().readValue("{\"type\": \"" + type + "\", \"factor\": " + factor + "}", RopeScaling.class);
    }

    /** cos and sin [T, hd] of position p/posDiv with inv_freq base^(-2i/d), both halves equal. */
    static void assertRope(Tensor[] cosSin, int t, double base, double posDiv) {
        float[] cos = Tensors.toFloats(cosSin[0]), sin = Tensors.toFloats(cosSin[1]);
        assertArrayEquals(new long[]{t, HD}, Tensors.shape(cosSin[0]));
        for (int p = 0; p < t; p++)
            for (int j = 0; j < HD; j++) {
                double angle = p / posDiv * Math.pow(base, -2.0 * (j % (HD / 2)) / HD);
                assertEquals(Math.cos(angle), cos[p * HD + j], 2e-5, "cos p=" + p + " j=" + j);
                assertEquals(Math.sin(angle), sin[p * HD + j], 2e-5, "sin p=" + p + " j=" + j);
            }
    }

    @Test
    void noScaling() {
        assertRope(new Llama.Rope(HD, THETA).cosSin(20), 20, THETA, 1);
        assertRope(new Llama.Rope(HD, THETA, null, MAX).cosSin(20), 20, THETA, 1);
    }

    @Test
    void linearDividesThePositions() throws Exception {
        Llama.Rope rope = new Llama.Rope(HD, THETA, scaling("linear", 2.5), MAX);
        assertRope(rope.cosSin(10), 10, THETA, 2.5);
        assertRope(rope.cosSin(40), 40, THETA, 2.5);
    }

    @Test
    void dynamicRaisesTheBaseOnlyPastMaxPositions() throws Exception {
        double f = 2;
        Llama.Rope rope = new Llama.Rope(HD, THETA, scaling("dynamic", f), MAX);
        assertRope(rope.cosSin(MAX), MAX, THETA, 1);
        int t = 40;
        double base = THETA * Math.pow(f * t / MAX - (f - 1), HD / (HD - 2.0));
        assertRope(rope.cosSin(t), t, base, 1);
        assertRope(rope.cosSin(12), 12, THETA, 1); // a later short sequence is unscaled again
    }
}
