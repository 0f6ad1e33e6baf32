package io.llava4j.model;

import io.llava4j.TestData;
import io.llava4j.engine.Tensors;
import io.llava4j.io.HostTensor;
import io.llava4j.nn.Precision;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A model loaded to run uses the file's tensors in place: a parameter whose file dtype is its storage type points into
 * the memory-mapped file (no copy), the rest are copied, and the model computes exactly what a copied model does.
 */
class InPlaceWeightsTest {
    private static boolean inFile(Tensor p, HostTensor h) {
        long start = com.sun.jna.Pointer.nativeValue(com.sun.jna.Native.getDirectBufferPointer(h.data()));
        long at = p.data_ptr().address();
        return at >= start && at < start + h.data().capacity();
    }

    @Test
    void fp32ParametersPointIntoTheFileAndComputeAsCopiedOnes() {
        Llava inPlace = Checkpoints.loadForInference(TestData.tinyLlava(), null, Precision.FP32, null, true).model();
        Llava copied = Checkpoints.load(TestData.tinyLlava(), null, null, Precision.FP32).model();
        Map<String, Tensor> a = Tensors.namedParameters(inPlace), b = Tensors.namedParameters(copied);
        int mapped = 0;
        for (var e : inPlace.loadedFrom.entrySet()) {
            assertEquals(io.llava4j.io.DType.F32, e.getValue().dtype(), e.getKey());
            assertTrue(inFile(a.get(e.getKey()), e.getValue()), e.getKey() + " was copied");
            assertFalse(inFile(b.get(e.getKey()), copied.loadedFrom.get(e.getKey())), e.getKey() + " points into the file in a training load");
            mapped++;
        }
        assertEquals(a.size(), mapped, "every parameter of the tiny model comes from its file");
        assertEquals(mapped, inPlace.mappedInPlace.size(), "each mapping is kept alive");
        long[][] ids = {{1, 5, 9, 2, 7, 3}};
        try (NoGradGuard g = new NoGradGuard()) {
            float[] la = Tensors.toFloats(inPlace.forward(null, ids, null).logits().contiguous());
            float[] lb = Tensors.toFloats(copied.forward(null, ids, null).logits().contiguous());
            assertArrayEquals(lb, la);
        }
    }

    /** generate's fp32 load: packed from the mapped file (pages given back as it goes), computing as the copied model. */
    @Test
    void packingFromTheMappedFileComputesAsTheCopiedModel() {
        org.junit.jupiter.api.Assumptions.assumeTrue(io.llava4j.nn.PackedWeight.available(), "libtorch without oneDNN");
        Llava inPlace = Checkpoints.loadForInference(TestData.tinyLlava(), null, Precision.FP32, null, true).model();
        Llava copied = Checkpoints.load(TestData.tinyLlava(), null, null, Precision.FP32).model();
        long bytes = io.llava4j.generate.InferenceWeights.prepare(inPlace, Precision.FP32);
        // the tiny LLM's 48-row matrices stay plain; each layer's stacked gate/up (192 rows) and the 1024-row head pack
        assertEquals(2L * 192 * 48 * 4 + 1024L * 48 * 4, bytes);
        long[][] ids = {{1, 5, 9, 2, 7, 3}};
        try (NoGradGuard g = new NoGradGuard()) {
            float[] la = Tensors.toFloats(inPlace.forward(null, ids, null).logits().contiguous());
            float[] lb = Tensors.toFloats(copied.forward(null, ids, null).logits().contiguous());
            for (int i = 0; i < la.length; i++) assertEquals(lb[i], la[i], 1e-5 * (1 + Math.abs(lb[i])), "logit " + i);
        }
    }

    @Test
    void aStorageTypeOtherThanTheFilesIsCopied() {
        Llava m = Checkpoints.loadForInference(TestData.tinyLlava(), null, Precision.BF16, null, true).model();
        Map<String, Tensor> p = Tensors.namedParameters(m);
        int matrices = 0, kept = 0;
        for (var e : m.loadedFrom.entrySet()) {
            boolean bf16 = p.get(e.getKey()).scalar_type().intern() == org.bytedeco.pytorch.global.torch.ScalarType.BFloat16;
            assertEquals(!bf16, inFile(p.get(e.getKey()), e.getValue()), e.getKey());
            if (bf16) matrices++;
            else kept++;
        }
        assertTrue(matrices > 0 && kept > 0, matrices + " bf16 copies, " + kept + " fp32 in place");
    }
}
