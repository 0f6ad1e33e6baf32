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
    public static List<String> captions(Llava model, LlavaTokenizer tok, List<Tensor> pixels, int batch) {
        int[] prompt = LlavaTokenizer.tokenizerImageToken(tok, Conversation.IMAGE, model.config.imageTokenIndex());
        int newline = tok.tokenIdOf("\n");
        List<String> out = new ArrayList<>();
        for (int i = 0; i < pixels.size(); i += batch) {
            List<Tensor> px = pixels.subList(i, Math.min(pixels.size(), i + batch));
            List<int[]> prompts = new ArrayList<>();
            for (int k = 0; k < px.size(); k++) prompts.add(prompt);
            try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
                for (int[] ids : Decoder.greedy(model, px, prompts, 48, newline)) out.add(text(tok, ids));
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
    public static List<List<String>> answers(Llava model, LlavaTokenizer tok, List<Tensor> pixels,
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
                for (int[] ids : Decoder.greedy(model, px.subList(i, Math.min(px.size(), i + batch)),
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

    /**
     * Greedy continuations of text-only prompts under the LLM alone (no image): prompts of equal length decode as one
     * batch, without a KV cache (the world's prompts are short); each stops at {@code stopId} (left out) or
     * {@code maxNew} tokens.
     */
    static List<int[]> textGreedy(Llama lm, List<int[]> prompts, int maxNew, int stopId) {
        Map<Integer, List<Integer>> byLength = new LinkedHashMap<>();
        for (int i = 0; i < prompts.size(); i++) byLength.computeIfAbsent(prompts.get(i).length, k -> new ArrayList<>()).add(i);
        int[][] out = new int[prompts.size()][];
        for (List<Integer> group : byLength.values())
            for (int g = 0; g < group.size(); g += 64) {
                List<Integer> idx = group.subList(g, Math.min(group.size(), g + 64));
                List<List<Integer>> seqs = new ArrayList<>();
                for (int i : idx) {
                    List<Integer> q = new ArrayList<>();
                    for (int id : prompts.get(i)) q.add(id);
                    seqs.add(q);
                }
                int len = prompts.get(idx.get(0)).length;
                boolean[] done = new boolean[idx.size()];
                List<List<Integer>> gen = new ArrayList<>();
                for (int k = 0; k < idx.size(); k++) gen.add(new ArrayList<>());
                for (int step = 0; step < maxNew; step++) {
                    long[] ids = new long[idx.size() * (len + step)];
                    for (int b = 0; b < idx.size(); b++)
                        for (int j = 0; j < len + step; j++) ids[b * (len + step) + j] = seqs.get(b).get(j);
                    long[] next;
                    try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
                        Tensor logits = lm.forward(org.bytedeco.pytorch.global.torch.embedding(lm.model.embedTokens.weight,
                                Tensors.longs(ids, idx.size(), len + step)));                    // [B, T, V]
                        next = Tensors.toLongs(logits.select(1, len + step - 1).argmax(new org.bytedeco.pytorch.LongOptional(1), false));
                    }
                    boolean all = true;
                    for (int b = 0; b < idx.size(); b++) {
                        seqs.get(b).add((int) next[b]);
                        if (!done[b]) {
                            if (next[b] == stopId) done[b] = true;
                            else gen.get(b).add((int) next[b]);
                        }
                        all &= done[b];
                    }
                    if (all) break;
                }
                for (int b = 0; b < idx.size(); b++) out[idx.get(b)] = gen.get(b).stream().mapToInt(Integer::intValue).toArray();
            }
        return List.of(out);
    }

    /**
     * What a perfect projector would get out of the frozen LLM: its captions and answers when the image tokens are
     * replaced by the scene's true {@link ShapesWorld#grid grid words} (text only, same templates as with images).
     * Returns caption attribute accuracy ("caption") and VQA exact match ("vqa").
     */
    public static Map<String, Double> fromGridWords(Llama lm, LlavaTokenizer tok, List<Scene> scenes, List<List<Qa>> qas) {
        List<int[]> capPrompts = new ArrayList<>();
        for (Scene s : scenes) capPrompts.add(tok.encode(ShapesWorld.grid(s), true));
        List<String> caps = new ArrayList<>();
        for (int[] ids : textGreedy(lm, capPrompts, 48, tok.tokenIdOf("\n"))) caps.add(text(tok, ids));
        List<List<String>> answers = gridAnswers(lm, tok, scenes, qas, Conversation.SYSTEM_V1 + " ");
        Map<String, Double> out = new LinkedHashMap<>();
        out.put("caption", captionAccuracy(scenes, caps));
        vqaAccuracy(qas, answers).forEach((key, v) -> out.put(key.equals("all") ? "vqa" : "vqa_" + key.replace("/", "_"), v));
        if (Boolean.getBoolean("llava4j.demo.verbose"))
            for (int i = 0; i < Math.min(6, scenes.size()); i++)
                System.out.println("grid: " + ShapesWorld.grid(scenes.get(i)) + "\n  caption: " + caps.get(i) + "\n  answers: " + answers.get(i)
                        + " truth " + qas.get(i).stream().map(Qa::answer).toList());
        return out;
    }

    /**
     * The LLM's greedy answers to each scene's questions with the scene's true grid words in the user's first turn
     * (vicuna_v1's turns after {@code system}: its system prompt and a space, or nothing).
     */
    static List<List<String>> gridAnswers(Llama lm, LlavaTokenizer tok, List<Scene> scenes, List<List<Qa>> qas, String system) {
        List<int[]> prompts = new ArrayList<>();
        for (int i = 0; i < scenes.size(); i++)
            for (Qa q : qas.get(i))
                prompts.add(tok.encode(system + "USER: " + ShapesWorld.grid(scenes.get(i)) + "\n" + q.question() + " ASSISTANT:", true));
        List<int[]> ans = textGreedy(lm, prompts, 8, tok.eos());
        List<List<String>> answers = new ArrayList<>();
        int k = 0;
        for (List<Qa> q : qas) {
            List<String> a = new ArrayList<>();
            for (int j = 0; j < q.size(); j++) a.add(text(tok, ans.get(k++)));
            answers.add(a);
        }
        return answers;
    }

    static String text(LlavaTokenizer tok, int[] ids) {
        return tok.decode(ids, true).replace("\n", " ").trim().replaceAll("\\s+", " ");
    }

    /** Mean caption attribute accuracy ({@link ShapesWorld#captionAccuracy}). */
    public static double captionAccuracy(List<Scene> scenes, List<String> captions) {
        double sum = 0;
        for (int i = 0; i < scenes.size(); i++) sum += ShapesWorld.captionAccuracy(scenes.get(i), ShapesWorld.parseCaption(captions.get(i)));
        return sum / scenes.size();
    }

    /** Exact-match accuracy overall ("all") and per question type. */
    public static Map<String, Double> vqaAccuracy(List<List<Qa>> qas, List<List<String>> answers) {
        Map<String, int[]> counts = new LinkedHashMap<>();
        counts.put("all", new int[2]);
        for (String t : ShapesWorld.QA_TYPES) counts.put(t, new int[2]);
        tally(qas, answers, (i, q) -> List.of("all", q.type()), counts);
        Map<String, Double> out = new LinkedHashMap<>();
        counts.forEach((k, c) -> {
            if (c[1] > 0) out.put(k, (double) c[0] / c[1]);
        });
        return out;
    }

    /**
     * Adds each answer to {@code counts} ({correct, asked}) under every key {@code keys} gives its question (from the
     * index of its image and the question); an answer is correct when it is the expected one, a trailing " ." aside.
     */
    static void tally(List<List<Qa>> qas, List<List<String>> answers, java.util.function.BiFunction<Integer, Qa, List<String>> keys,
                      Map<String, int[]> counts) {
        for (int i = 0; i < qas.size(); i++)
            for (int j = 0; j < qas.get(i).size(); j++) {
                Qa q = qas.get(i).get(j);
                boolean ok = q.answer().equals(answers.get(i).get(j).replace(" .", "").trim());
                for (String key : keys.apply(i, q)) {
                    int[] c = counts.computeIfAbsent(key, k -> new int[2]);
                    c[0] += ok ? 1 : 0;
                    c[1]++;
                }
            }
    }
}
