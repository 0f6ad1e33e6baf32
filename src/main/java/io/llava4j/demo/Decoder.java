package io.llava4j.demo;

import io.llava4j.generate.Generator;
import io.llava4j.model.Llava;
import org.bytedeco.pytorch.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/** Greedy decoding as the demo's evaluation needs it: {@code llava4j generate}'s decoder on left-padded batches. */
final class Decoder {
    private Decoder() {}

    /**
     * For each prompt (token ids holding one image token) and its image ([1, 3, H, W]), the greedily decoded new ids,
     * up to {@code maxNew} of them, without the stop token ({@link Generator#greedyBatch}: KV cache, left padding).
     */
    static List<int[]> greedy(Llava model, List<Tensor> pixels, List<int[]> prompts, int maxNew, int stopId) {
        List<int[]> out = new ArrayList<>();
        for (int[] ids : new Generator(model, stopId).greedyBatch(pixels, prompts, maxNew)) {
            int n = ids.length;
            if (n > 0 && ids[n - 1] == stopId) n--;
            out.add(Arrays.copyOf(ids, n));
        }
        return out;
    }
}
