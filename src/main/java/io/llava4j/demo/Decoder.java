package io.llava4j.demo;

import io.llava4j.model.Llava;
import org.bytedeco.pytorch.Tensor;

import java.util.List;

/** Greedy decoding as the demo's evaluation needs it: what the generate package provides, behind one method. */
public interface Decoder {
    /**
     * For each prompt (token ids holding one image token) and its image ([1, 3, H, W]), the greedily decoded new ids,
     * up to {@code maxNew} of them, without the stop token.
     */
    List<int[]> greedy(Llava model, List<Tensor> pixels, List<int[]> prompts, int maxNew, int stopId);
}
