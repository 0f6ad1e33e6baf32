package io.llava4j.demo;

import io.llava4j.data.Conversation;
import io.llava4j.data.ImageProcessor;
import io.llava4j.data.LlavaTokenizer;
import io.llava4j.demo.ShapesWorld.Qa;
import io.llava4j.demo.ShapesWorld.Scene;
import io.llava4j.engine.Tensors;
import io.llava4j.model.Llama;
import io.llava4j.model.Llava;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Evaluation on held-out data: text perplexity, captions by generation, VQA by generation. */
public final class Evaluation {
    private Evaluation() {}

    /** exp(mean next-token NLL) of the documents under the LLM alone. */
    public static double perplexity(Llama lm, List<int[]> docs, int pad) {
        double[] sn = Pretraining.nll(lm, docs, pad, 32);
        return Math.exp(sn[0] / sn[1]);
    }

    /** One image, preprocessed as LLaVA's data pipeline does it: [1, 3, H, W]. */
    static Tensor pixels(ImageProcessor proc, Path png) {
        float[] px = proc.process(png, "square");
        return Tensors.floats(px, 1, 3, proc.height(), proc.width());
    }

    /** Greedy captions of the images under the plain template (prompt "<image>"), stopping at the newline. */
    public static List<String> captions(Llava model, Decoder decoder, LlavaTokenizer tok, List<Tensor> pixels, int batch) {
        int[] prompt = LlavaTokenizer.tokenizerImageToken(tok, Conversation.IMAGE, model.config.imageTokenIndex());
        int newline = tok.tokenIdOf("\n");
        List<String> out = new ArrayList<>();
        for (int i = 0; i < pixels.size(); i += batch) {
            List<Tensor> px = pixels.subList(i, Math.min(pixels.size(), i + batch));
            List<int[]> prompts = new ArrayList<>();
            for (int k = 0; k < px.size(); k++) prompts.add(prompt);
            try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
                for (int[] ids : decoder.greedy(model, px, prompts, 48, newline)) out.add(text(tok, ids));
            }
        }
        return out;
    }

    /** The vicuna_v1 generation prompt of one question about an image. */
    static int[] vqaPrompt(LlavaTokenizer tok, String question, int imageToken) {
        String p = Conversation.SYSTEM_V1 + " USER: " + Conversation.IMAGE + "\n" + question + " ASSISTANT:";
        return LlavaTokenizer.tokenizerImageToken(tok, p, imageToken);
    }

    /** Answers of the model to each test image's questions (same order as {@code qas}), greedy until EOS. */
    public static List<List<String>> answers(Llava model, Decoder decoder, LlavaTokenizer tok, List<Tensor> pixels,
                                             List<List<Qa>> qas, int batch) {
        List<Tensor> px = new ArrayList<>();
        List<int[]> prompts = new ArrayList<>();
        for (int i = 0; i < qas.size(); i++)
            for (Qa q : qas.get(i)) {
                px.add(pixels.get(i));
                prompts.add(vqaPrompt(tok, q.question(), model.config.imageTokenIndex()));
            }
        List<String> flat = new ArrayList<>();
        for (int i = 0; i < prompts.size(); i += batch) {
            try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
                for (int[] ids : decoder.greedy(model, px.subList(i, Math.min(px.size(), i + batch)),
                        prompts.subList(i, Math.min(prompts.size(), i + batch)), 8, tok.eos()))
                    flat.add(text(tok, ids));
            }
        }
        List<List<String>> out = new ArrayList<>();
        int k = 0;
        for (List<Qa> q : qas) {
            List<String> a = new ArrayList<>();
            for (int j = 0; j < q.size(); j++) a.add(flat.get(k++));
            out.add(a);
        }
        return out;
    }

    private static String text(LlavaTokenizer tok, int[] ids) {
        return tok.decode(ids, true).replace("\n", " ").trim().replaceAll("\\s+", " ");
    }

    /** Mean caption attribute accuracy ({@link ShapesWorld#captionAccuracy}). */
    public static double captionAccuracy(List<Scene> scenes, List<String> captions) {
        double sum = 0;
        for (int i = 0; i < scenes.size(); i++) sum += ShapesWorld.captionAccuracy(scenes.get(i), ShapesWorld.parseCaption(captions.get(i)));
        return sum / scenes.size();
    }

    /** The best accuracy any one caption reaches when given for every test image, and that caption. */
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

    /** Exact-match accuracy overall ("all") and per question type. */
    public static Map<String, Double> vqaAccuracy(List<List<Qa>> qas, List<List<String>> answers) {
        Map<String, int[]> counts = new LinkedHashMap<>();
        counts.put("all", new int[2]);
        for (String t : ShapesWorld.QA_TYPES) counts.put(t, new int[2]);
        for (int i = 0; i < qas.size(); i++)
            for (int j = 0; j < qas.get(i).size(); j++) {
                Qa q = qas.get(i).get(j);
                boolean ok = q.answer().equals(answers.get(i).get(j).replace(" .", "").trim());
                for (String key : List.of("all", q.type())) {
                    counts.get(key)[0] += ok ? 1 : 0;
                    counts.get(key)[1]++;
                }
            }
        Map<String, Double> out = new LinkedHashMap<>();
        counts.forEach((k, c) -> {
            if (c[1] > 0) out.put(k, (double) c[0] / c[1]);
        });
        return out;
    }
}
