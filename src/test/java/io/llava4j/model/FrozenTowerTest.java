package io.llava4j.model;

import io.llava4j.TestData;
import io.llava4j.engine.Tensors;
import io.llava4j.io.HostTensor;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** A frozen tower builds no autograd graph; a partly unfrozen one builds it from its first trainable layer on. */
class FrozenTowerTest {
    static final Map<String, HostTensor> CASE = TestData.tensors(TestData.expected().resolve("forward-and-grads.safetensors"));

    static Llava modelWithTrainable(String... prefixes) {
        Llava m = Checkpoints.load(TestData.tinyLlava()).model();
        Tensors.namedParameters(m).forEach((n, p) -> {
            boolean on = false;
            for (String pre : prefixes) on |= n.startsWith(pre);
            p.requires_grad_(on);
        });
        return m;
    }

    @Test
    void frozenTowerOutputHasNoGraph() {
        Llava m = modelWithTrainable("multi_modal_projector.", "language_model.");
        assertTrue(m.visionTower.fullyFrozen());
        // pixels that require grad: without the no-grad guard the frozen layers would record a graph through them
        Tensor px = Tensors.fromHost(CASE.get("case.pixel_values")).requires_grad_(true);
        Tensor unguarded = ((ClipVisionTower) m.visionTower).visionModel.embeddings.forward(px);
        assertTrue(unguarded.requires_grad() && !unguarded.is_leaf(), "the same layers record a graph outside the guard");
        Tensor f = m.visionTower.features(px, m.config.featureLayerIndex());
        assertFalse(f.requires_grad(), "a frozen tower's features must not carry an autograd graph");
        assertTrue(f.is_leaf(), "no grad_fn: the frozen tower recorded nothing");
        Tensor projected = m.imageFeatures(px);
        assertTrue(projected.requires_grad() && !projected.is_leaf(), "the projector trains");
    }

    @Test
    void partlyUnfrozenTowerTrainsOnlyItsLaterLayers() {
        Llava m = modelWithTrainable("vision_tower.vision_model.encoder.layers.1.");
        assertFalse(m.visionTower.fullyFrozen());
        Tensor f = m.visionTower.features(Tensors.fromHost(CASE.get("case.pixel_values")), m.config.featureLayerIndex());
        assertTrue(f.requires_grad());
        f.sum().backward();
        Map<String, Tensor> p = Tensors.namedParameters(m);
        assertTrue(p.get("vision_tower.vision_model.encoder.layers.1.mlp.fc1.weight").grad().defined());
        assertFalse(p.get("vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight").grad().defined());
        assertFalse(p.get("vision_tower.vision_model.embeddings.patch_embedding.weight").grad().defined());
    }

    @Test
    void imageTokenAndImageCountsMustAgree() {
        Llava m = modelWithTrainable();
        Tensor px = Tensors.fromHost(CASE.get("case.pixel_values"));
        long[] ids = CASE.get("case.input_ids").toLongs();
        long[] twoImageTokens = java.util.Arrays.copyOf(ids, ids.length + 1);
        twoImageTokens[ids.length] = m.config.imageTokenIndex();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> m.forward(px, new long[][]{twoImageTokens}, null));
        assertTrue(e.getMessage().contains("2 image tokens") && e.getMessage().contains("1 images"), e.getMessage());
        long[] none = java.util.Arrays.stream(ids).filter(x -> x != m.config.imageTokenIndex()).toArray();
        assertThrows(IllegalArgumentException.class, () -> m.forward(px, new long[][]{none}, null));
    }

    @Test
    void mergedSequenceIsCutToModelMaxLengthLikeLlava() {
        Llava m = modelWithTrainable();
        Tensor px = Tensors.fromHost(CASE.get("case.pixel_values"));
        long[] ids = CASE.get("case.input_ids").toLongs();
        long[] labels = CASE.get("case.labels").toLongs();
        Llava.Output full = m.forward(px, new long[][]{ids}, new long[][]{labels});
        int merged = full.lengths()[0];
        assertEquals(ids.length - 1 + m.config.imageFeatureTokens(), merged);
        Llava.Output cut = m.forward(px, new long[][]{ids}, new long[][]{labels}, null, merged - 3);
        assertEquals(merged - 3, cut.lengths()[0]);
        assertArrayEquals(Tensors.shape(cut.logits()), new long[]{1, merged - 3, m.config.text().vocabSize()});
        // causal: the kept positions compute exactly what they computed before
        assertTrue(cut.logits().equal(full.logits().narrow(1, 0, merged - 3)) ||
                Tensors.relativeError(cut.logits(), full.logits().narrow(1, 0, merged - 3)) < 1e-6);
        assertTrue(cut.labels().equal(full.labels().narrow(1, 0, merged - 3)));
    }
}
