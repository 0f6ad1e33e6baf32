package io.llava4j.bench;

import io.llava4j.config.LlavaConfig;
import io.llava4j.engine.Engine;
import io.llava4j.engine.Tensors;
import io.llava4j.model.Llava;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** The step's FLOPs against the weights of the model itself (2 FLOPs per weight per row for each GEMM pass). */
class FlopCountTest {

    @Test
    void gemmWorkFollowsTheModelsWeights() {
        Engine.init();
        LlavaConfig c = BenchModel.config();
        Llava m = new Llava(c); // uninitialised weights: only their shapes are used
        long decoder = 0, tower = 0, head = 0;
        for (Map.Entry<String, Tensor> e : Tensors.namedParameters(m).entrySet()) {
            String n = e.getKey();
            Tensor p = e.getValue();
            if (p.dim() != 2) continue;
            if (n.startsWith("language_model.model.layers.")) decoder += p.numel(); // all 12 layers
            if (n.startsWith("language_model.lm_head.")) head += p.numel();
            if (n.matches("vision_tower\\.vision_model\\.encoder\\.layers\\.(\\d+)\\..*")
                    && Integer.parseInt(n.split("\\.")[4]) < c.featureLayerIndex()) tower += p.numel();
        }
        assertEquals(12L * (4 * 768 * 768 + 3 * 768 * 2048), decoder, "decoder weights");
        int batch = 2, length = 1 + 196 + 32, supervised = batch * 32;
        double tokens = batch * length, attentionFwd = 4.0 * batch * length * length * 768; // QKᵀ and AV over 12 heads of 64
        FlopCount.Step s1 = FlopCount.trainStep(c, batch, batch, length, supervised, false, false);
        FlopCount.Step s2 = FlopCount.trainStep(c, batch, batch, length, supervised, true, true);
        // stage 1: decoder forward + input gradients; stage 2 adds the weight gradients
        assertEquals(2 * (2 * tokens * decoder) + 12 * 3 * attentionFwd, s1.llm(), 1e-9 * s1.llm());
        assertEquals(3 * (2 * tokens * decoder) + 12 * 3 * attentionFwd, s2.llm(), 1e-9 * s2.llm());
        assertEquals(2 * (2.0 * supervised * head), s1.head(), 1);
        assertEquals(3 * (2.0 * supervised * head), s2.head(), 1);
        double towerAttention = 4.0 * 197 * 197 * 384 * c.featureLayerIndex();
        double conv = 2.0 * 196 * 3 * 16 * 16 * 384;
        assertEquals(batch * (2 * 197.0 * tower + towerAttention + conv), s1.vision(), 1e-9 * s1.vision());
        assertEquals(2 * tokens * decoder + 12 * attentionFwd, s2.recompute(), 1e-9 * s2.recompute());
        // stage 1 with logits only at supervised positions: about 190 GFLOP (bench/README.md's estimate)
        assertEquals(190, s1.total() / 1e9, 5);
    }
}
