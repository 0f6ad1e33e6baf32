package io.llava4j.model;

import io.llava4j.TestData;
import io.llava4j.engine.Tensors;
import io.llava4j.io.HostTensor;
import io.llava4j.io.Layout;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.Map;
import java.util.function.Predicate;

import static org.junit.jupiter.api.Assertions.*;

/**
 * LLaVA-OneVision (SigLIP + mlp2x_gelu + image_newline + Qwen2 with tied embeddings, AnyRes) against the reference's
 * expect output: packed image features per image, logits, loss, and the stage-1 (projector + image_newline) and stage-2
 * (projector + image_newline + LLM) gradients, the tower frozen. Two cases: the shared tiny one (anyres_max_2, feature
 * layer −1, transformers-5 config) and a second one made with the same script (other widths, GQA 5:1, feature layer −2,
 * odd 3×3 features per tile, LLaVA-1.6's pinpoints, anyres_max_3, the hub's older config spelling).
 */
class OnevisionParityTest {
    record Case(Path model, Map<String, HostTensor> ex) {}

    static final Case TINY = new Case(TestData.onevision().resolve("tiny-onevision"),
            TestData.tensors(TestData.onevision().resolve("expected/forward-and-grads.safetensors")));
    static final Case SECOND = new Case(TestData.onevisionSecond().resolve("model"),
            TestData.tensors(TestData.onevisionSecond().resolve("expected/forward-and-grads.safetensors")));

    static int[][] sizes(Map<String, HostTensor> EX, String prefix) {
        long[] hw = EX.get(prefix + (EX.containsKey(prefix + "image_size") ? "image_size" : "image_sizes")).toLongs();
        return new int[][]{{(int) hw[0], (int) hw[1]}};
    }

    @Test
    void packedImageFeaturesMatchPerImage() {
        packedImageFeatures(TINY);
        packedImageFeatures(SECOND);
    }

    static void packedImageFeatures(Case k) {
        Map<String, HostTensor> EX = k.ex();
        Llava m = Checkpoints.load(k.model()).model();
        assertTrue(m.visionTower instanceof SiglipVisionTower);
        for (String img : new String[]{"img0_16x16", "img1_30x17", "img2_40x64", "img3_70x33", "img4_17x40"}) {
            String p = img + ".";
            Tensor px = Tensors.fromHost(EX.get(p + "pixel_values"));
            int[][] hw = sizes(EX, p);
            Tensor ref = Tensors.fromHost(EX.get(p + "image_features"));
            Tensor got = m.perImage(m.imageFeatures(px), hw).get(0);
            assertArrayEquals(Tensors.shape(ref), Tensors.shape(got), img + " rows");
            double e = Tensors.relativeError(got, ref);
            assertTrue(e < 1e-5, img + " features rel err " + e);
            assertEquals(EX.get(p + "num_image_tokens").toLongs()[0], m.imageTokens(hw[0][0], hw[0][1]), img + " token count");
        }
    }

    /** Forward + backward of one case with the parameters {@code trains} selects trainable; checks logits, loss, grads. */
    private static void checkCase(Case kase, int k, String stage, Predicate<String> trains) {
        Map<String, HostTensor> EX = kase.ex();
        Llava m = Checkpoints.load(kase.model()).model();
        Map<String, Tensor> params = Tensors.namedParameters(m);
        params.forEach((n, p) -> p.requires_grad_(trains.test(n)));
        assertTrue(m.visionTower.fullyFrozen());
        String c = "case" + k + ".";
        Tensor px = Tensors.fromHost(EX.get(c + "pixel_values"));
        long[] ids = EX.get(c + "input_ids").toLongs();
        long[] labels = EX.get(c + "labels").toLongs();
        Llava.Output out = m.forward(px, sizes(EX, c), new long[][]{ids}, new long[][]{labels}, null, 0);
        double le = Tensors.relativeError(out.logits().get(0), Tensors.fromHost(EX.get(c + "logits")));
        assertTrue(le < 1e-5, c + " logits rel err " + le);
        assertArrayEquals(EX.get(c + "labels_expanded").toLongs(), Tensors.toLongs(out.labels().get(0)), c + " expanded labels");
        Tensor loss = Llava.loss(out);
        double ref = EX.get(c + "loss").toFloats()[0];
        assertEquals(ref, loss.item_double(), 1e-5 * Math.abs(ref), c + " loss");
        loss.backward();
        int checked = 0;
        for (Map.Entry<String, Tensor> e : params.entrySet()) {
            String name = e.getKey();
            Tensor p = e.getValue();
            if (!trains.test(name)) {
                assertFalse(p.grad().defined(), "frozen " + name + " got a gradient");
                continue;
            }
            HostTensor g = EX.get(c + stage + ".grad." + Layout.TRANSFORMERS.fileName(name, 2));
            assertNotNull(g, "no reference gradient for " + name);
            double err = Tensors.relativeError(p.grad(), Tensors.fromHost(g));
            assertTrue(err < 1e-4, stage + " " + c + " grad " + name + " rel err " + err);
            checked++;
        }
        assertTrue(checked > 0);
    }

    @Test
    void stage1GradientsOfProjectorAndNewline() {
        for (Case kase : new Case[]{TINY, SECOND})
            for (int k = 0; k < 3; k++)
                checkCase(kase, k, "stage1", n -> n.startsWith("multi_modal_projector.") || n.equals("image_newline"));
    }

    @Test
    void stage2GradientsOfProjectorNewlineAndLlm() {
        for (Case kase : new Case[]{TINY, SECOND})
            for (int k = 0; k < 3; k++)
                checkCase(kase, k, "stage2", n -> !n.startsWith("vision_tower."));
    }
}
