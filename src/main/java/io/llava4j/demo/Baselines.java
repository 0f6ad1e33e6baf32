package io.llava4j.demo;

import io.llava4j.data.Conversation;
import io.llava4j.data.ImageProcessor;
import io.llava4j.data.LlavaTokenizer;
import io.llava4j.demo.ShapesWorld.Qa;
import io.llava4j.demo.ShapesWorld.Scene;
import io.llava4j.engine.Tensors;
import io.llava4j.model.Llama;
import org.bytedeco.pytorch.Tensor;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What a model answers without looking: the blind baselines every VQA and caption number is read against. For VQA, per
 * question type, the most frequent training answer, the stage-2 model given a blank (mean-grey) image, and the LLM alone
 * with no image tokens; for captions, the one constant caption that scores best on the training scenes.
 */
public final class Baselines {
    private Baselines() {}

    /** Per question type, its most frequent answer in {@code trainQa} (the first seen among equals). */
    public static Map<String, String> mostFrequentAnswers(List<List<Qa>> trainQa) {
        Map<String, Map<String, Integer>> counts = new LinkedHashMap<>();
        for (List<Qa> qs : trainQa)
            for (Qa q : qs) counts.computeIfAbsent(q.type(), k -> new LinkedHashMap<>()).merge(q.answer(), 1, Integer::sum);
        Map<String, String> out = new LinkedHashMap<>();
        counts.forEach((type, c) -> {
            String best = null;
            for (Map.Entry<String, Integer> e : c.entrySet()) if (best == null || e.getValue() > c.get(best)) best = e.getKey();
            out.put(type, best);
        });
        return out;
    }

    /** Every question answered with its type's answer in {@code answers} (the empty string for a type it lacks). */
    public static List<List<String>> constantAnswers(List<List<Qa>> qas, Map<String, String> answers) {
        List<List<String>> out = new ArrayList<>();
        for (List<Qa> qs : qas) {
            List<String> a = new ArrayList<>();
            for (Qa q : qs) a.add(answers.getOrDefault(q.type(), ""));
            out.add(a);
        }
        return out;
    }

    /**
     * A blank image as the model's image processor hands it on: every pixel at the processor's mean colour, which
     * normalises to 0 ([1, 3, H, W] zeros).
     */
    public static Tensor blankPixels(ImageProcessor proc) {
        return Tensors.floats(new float[3 * proc.height() * proc.width()], 1, 3, proc.height(), proc.width());
    }

    /** The LLM's greedy answers to each question in vicuna_v1's prompt with no image at all (no image tokens). */
    public static List<List<String>> noImageAnswers(Llama lm, LlavaTokenizer tok, List<List<Qa>> qas) {
        List<int[]> prompts = new ArrayList<>();
        for (List<Qa> qs : qas)
            for (Qa q : qs) prompts.add(tok.encode(Conversation.SYSTEM_V1 + " USER: " + q.question() + " ASSISTANT:", true));
        List<int[]> ans = Evaluation.textGreedy(lm, prompts, 8, tok.eos());
        List<List<String>> out = new ArrayList<>();
        int k = 0;
        for (List<Qa> qs : qas) {
            List<String> a = new ArrayList<>();
            for (int j = 0; j < qs.size(); j++) a.add(Evaluation.text(tok, ans.get(k++)));
            out.add(a);
        }
        return out;
    }

    /** The candidate caption with the best mean caption accuracy over {@code scenes}, and that accuracy. */
    public static Map.Entry<String, Double> bestConstantCaption(List<Scene> scenes, List<String> candidates) {
        String best = null;
        double bestAcc = -1;
        for (String c : new java.util.LinkedHashSet<>(candidates)) {
            List<ShapesWorld.Parsed> p = ShapesWorld.parseCaption(c);
            double sum = 0;
            for (Scene s : scenes) sum += ShapesWorld.captionAccuracy(s, p);
            if (sum / scenes.size() > bestAcc) {
                bestAcc = sum / scenes.size();
                best = c;
            }
        }
        return Map.entry(best, bestAcc);
    }
}
