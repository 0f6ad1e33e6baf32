package io.llava4j.model;

import io.llava4j.TestData;
import io.llava4j.engine.Tensors;
import io.llava4j.io.HostTensor;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** score's per-sample losses with the LM head only at supervised positions equal those of the full logits. */
class SampleLossesTest {

    @Test
    void equalTheFullLogitsLossesPerSampleOfAPaddedBatch() {
        Map<String, HostTensor> ex = TestData.tensors(TestData.expected().resolve("forward-and-grads.safetensors"));
        Llava m = Checkpoints.load(TestData.tinyLlava()).model();
        Tensor px1 = Tensors.fromHost(ex.get("case.pixel_values"));
        Tensor pixels = torch.cat(new org.bytedeco.pytorch.TensorVector(px1, px1.flip(3)), 0); // two different images
        long[] ids = ex.get("case.input_ids").toLongs(), labels = ex.get("case.labels").toLongs();
        // sample 2 is sample 1 cut short by 3 tokens and right-padded (pad id 0, labels -100, mask false)
        int n = ids.length, cut = n - 3;
        long[] ids2 = Arrays.copyOf(Arrays.copyOf(ids, cut), n), labels2 = Arrays.copyOf(Arrays.copyOf(labels, cut), n);
        Arrays.fill(labels2, cut, n, Llava.IGNORE_INDEX);
        boolean[] mask1 = new boolean[n], mask2 = new boolean[n];
        Arrays.fill(mask1, true);
        Arrays.fill(mask2, 0, cut, true);
        long[][] batchIds = {ids, ids2}, batchLabels = {labels, labels2};
        boolean[][] mask = {mask1, mask2};
        try (NoGradGuard g = new NoGradGuard()) {
            Llava.SampleLosses got = m.sampleLosses(pixels, batchIds, batchLabels, mask, 0);
            Llava.Output out = m.forward(pixels, batchIds, batchLabels, mask, 0);
            Tensor perToken = Llava.tokenLosses(out.logits(), out.labels()); // [B, L-1]
            for (int b = 0; b < 2; b++) {
                long count = Llava.supervisedTokens(out.labels().narrow(0, b, 1));
                assertTrue(count > 0);
                assertEquals(count, got.counts()[b], "sample " + b);
                double want = perToken.get(b).sum().item_double();
                assertEquals(want, got.sums()[b], 1e-5 * Math.abs(want), "sample " + b);
            }
            assertNotEquals(got.sums()[0], got.sums()[1]);
        }
    }
}
