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

    /** cos and signed sin [T, hd] of position p/posDiv with inv_freq base^(-2i/d): cos's halves equal, sin's first half negated. */
    static void assertRope(Tensor[] cosSin, int t, double base, double posDiv) {
        float[] cos = Tensors.toFloats(cosSin[0]), sin = Tensors.toFloats(cosSin[1]);
        assertArrayEquals(new long[]{t, HD}, Tensors.shape(cosSin[0]));
        for (int p = 0; p < t; p++)
            for (int j = 0; j < HD; j++) {
                double angle = p / posDiv * Math.pow(base, -2.0 * (j % (HD / 2)) / HD);
                assertEquals(Math.cos(angle), cos[p * HD + j], 2e-5, "cos p=" + p + " j=" + j);
                assertEquals((j < HD / 2 ? -1 : 1) * Math.sin(angle), sin[p * HD + j], 2e-5, "sin p=" + p + " j=" + j);
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

    /** apply = x·cos + rotate_half(x)·sin as HF writes it (rotate_half(x) = cat(−x₂, x₁)), bit for bit, fp32 and bf16. */
    @Test
    void applyIsHfsRotateHalfBitForBit() {
        Tensor[] cs = new Llama.Rope(HD, THETA).cosSin(7); // [T, hd]
        Tensor cos = cs[0], sin = cs[1].narrow(-1, HD / 2, HD / 2).repeat(1, 2); // sin of both halves, unsigned
        for (var dtype : new org.bytedeco.pytorch.global.torch.ScalarType[]{
                org.bytedeco.pytorch.global.torch.ScalarType.Float, org.bytedeco.pytorch.global.torch.ScalarType.BFloat16}) {
            Tensor x = org.bytedeco.pytorch.global.torch.randn(2, 3, 7, HD).to(dtype); // [B, n, T, hd]
            Tensor x1 = x.narrow(-1, 0, HD / 2), x2 = x.narrow(-1, HD / 2, HD / 2);
            Tensor hf = x.mul(cos).add(org.bytedeco.pytorch.global.torch.cat(new org.bytedeco.pytorch.TensorVector(x2.neg(), x1), -1).mul(sin));
            Tensor ours = Llama.Rope.apply(x, cos, cs[1]);
            assertArrayEquals(Tensors.toFloats(hf), Tensors.toFloats(ours), dtype.toString());
        }
    }
}
