package io.llava4j.demo;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.data.Conversation;
import io.llava4j.demo.ShapesWorld.Qa;
import io.llava4j.demo.ShapesWorld.Scene;
import io.llava4j.io.JsonFiles;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Random;
import java.util.function.BiPredicate;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The world's text: the documents the tiny LLaMA is pre-trained on, and its tokenizer.
 *
 * <p>The tokenizer is word-level, not BPE: the world's vocabulary is closed and tiny (about a hundred words), so every
 * word is one token and there is nothing for BPE merges to learn. It is written as a standard {@code tokenizer.json}
 * ({@code WordLevel} model, a {@code Split} pre-tokenizer that keeps words, punctuation and newlines) with LLaMA's
 * special tokens {@code <unk>} (also the pad), {@code <s>} and {@code </s>}, so any HF tokenizers runtime reads it.
 *
 * <p>Documents are written so that a projector alone can later learn to drive the frozen LLM: many documents hold a
 * scene as its nine {@link ShapesWorld#grid grid words} (one per cell of the 3×3 grid, as the image has one token per
 * cell) followed by a caption, as LLaVA's plain template puts the image tokens before the caption; others describe a
 * scene twice in two phrasings; chat documents in LLaVA's vicuna_v1 format answer questions about a scene given in the
 * user's first turn (where the image goes in stage 2) as grid words or a caption. Grid words are single tokens
 * ({@code _} joins a word).
 */
public final class WorldText {
    /** What the pre-tokenizer keeps: a newline, a word, or one punctuation character. */
    static final String PIECES = "\\n|[A-Za-z0-9_]+|[^\\sA-Za-z0-9_]";
    private static final Pattern PIECE = Pattern.compile(PIECES);
    private static final ObjectMapper JSON = new ObjectMapper();

    private WorldText() {}

    /** The pieces {@code text} splits into, as the tokenizer's pre-tokenizer splits it. */
    static List<String> pieces(String text) {
        List<String> out = new ArrayList<>();
        Matcher m = PIECE.matcher(text);
        while (m.find()) out.add(m.group());
        return out;
    }

    /**
     * A chat about a scene in vicuna_v1's turns after {@code system} (its system prompt and a space, or nothing): the
     * scene in the user's first turn (where the image goes), then QA rounds.
     */
    static String chat(String system, String firstUserTurn, List<Qa> qas) {
        StringBuilder sb = new StringBuilder(system);
        for (int i = 0; i < qas.size(); i++) {
            String q = i == 0 ? firstUserTurn + "\n" + qas.get(i).question() : qas.get(i).question();
            sb.append(i == 0 ? "" : " ").append("USER: ").append(q).append(" ASSISTANT: ").append(qas.get(i).answer()).append("</s>");
        }
        return sb.toString();
    }

    /** Random question types for a scene. */
    static List<Qa> questions(Scene s, int n, Random r) {
        return questions(s, n, r, (kind, colour) -> true);
    }

    /** Random question types for a scene; "no" questions name only pairs {@code askable} accepts. */
    static List<Qa> questions(Scene s, int n, Random r, BiPredicate<Integer, Integer> askable) {
        List<Qa> out = new ArrayList<>();
        for (int i = 0; i < n; i++)
            out.add(ShapesWorld.question(s, ShapesWorld.QA_TYPES.get(r.nextInt(ShapesWorld.QA_TYPES.size())), r, -1, askable));
        return out;
    }

    /** {@code n} yes/no questions about a scene. */
    static List<Qa> yesNo(Scene s, int n, Random r, BiPredicate<Integer, Integer> askable) {
        List<Qa> out = new ArrayList<>();
        for (int i = 0; i < n; i++) out.add(ShapesWorld.question(s, "yes/no", r, -1, askable));
        return out;
    }

    /** One pre-training document and its kind (caption, two_captions, grid_caption, yes_no_chat, chat, system_chat). */
    record Doc(String kind, String text) {}

    /**
     * Share of {@link #document} that are yes/no chats (the grid, then 3–5 questions "is there a red circle ?"). Yes/no
     * is the one question whose answer is no word of the grid: it asks whether any cell holds both words. Among the
     * other chats' six question types it was one question in six, the LLM never learned it, and answered "yes" to every
     * yes/no question from true grid words although each corpus held as many "no" as "yes" (docs/demo.md).
     */
    static final double YES_NO_SHARE = 0.15;

    /** A pre-training document about a random scene of the whole world (for tests of the text's form). */
    static String document(Random r) {
        return document(r, ShapesWorld::scene, (kind, colour) -> true).text();
    }

    /**
     * One pre-training document (without BOS) about a scene {@code scenes} draws. {@link #YES_NO_SHARE} of them are
     * yes/no chats; of the others, half hold a scene as its {@link ShapesWorld#grid nine cell words} followed by the
     * scene's compact list caption ("G left : small red circle .\n": the layout of LLaVA's plain template,
     * "&lt;image&gt;caption\n", with one word where each image token goes); a quarter are chats whose first user turn
     * holds the grid, with 3–5 questions of any type and no system prompt (short documents: each answer is a lookup in
     * the grid); the rest are captions alone, a scene in two phrasings ("A B\n"), and chats in vicuna_v1 format with
     * its system prompt (as stage 2 and the evaluation ask).
     *
     * <p>Why this mix: a tiny LLaMA learns to look words up in the grid only from many short documents where each
     * supervised word is such a lookup. In the list caption each attribute follows its column's name within three
     * words; with every phrasing mixed in, a 400-step pre-training read the grid at 0.32 caption accuracy, with the
     * list caption at 0.54 (seed 42).
     */
    static Doc document(Random r, Function<Random, Scene> scenes, BiPredicate<Integer, Integer> askable) {
        Scene s = scenes.apply(r);
        int a = r.nextInt(ShapesWorld.PHRASINGS), b = r.nextInt(ShapesWorld.PHRASINGS);
        double u = r.nextDouble();
        if (u < YES_NO_SHARE) return new Doc("yes_no_chat", chat("", ShapesWorld.grid(s), yesNo(s, 3 + r.nextInt(3), r, askable)));
        u = (u - YES_NO_SHARE) / (1 - YES_NO_SHARE);
        if (u < 0.10) return new Doc("caption", ShapesWorld.caption(s, a) + "\n");
        if (u < 0.20) return new Doc("two_captions", ShapesWorld.caption(s, a) + " " + ShapesWorld.caption(s, b) + "\n");
        if (u < 0.70) return new Doc("grid_caption", ShapesWorld.grid(s) + " " + ShapesWorld.caption(s, ShapesWorld.LIST_PHRASING) + "\n");
        if (u < 0.95) return new Doc("chat", chat("", ShapesWorld.grid(s), questions(s, 3 + r.nextInt(3), r, askable)));
        return new Doc("system_chat", chat(Conversation.SYSTEM_V1 + " ", ShapesWorld.grid(s), questions(s, 1 + r.nextInt(2), r, askable)));
    }

    /**
     * The LLM's pre-training text: {@code n} documents about training scenes of the split ({@link Split#trainingScene}),
     * whose "no" questions never name a novel (kind, colour) pair; the same documents for the same seed.
     */
    static List<Doc> pretrainingText(Split split, long seed, int n) {
        Random r = new Random(seed);
        List<Doc> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) out.add(document(r, split::trainingScene, Split::askable));
        return out;
    }

    /** {@code n} documents about held-out scenes (each drawn from {@code scenes}): never in the pre-training text. */
    static List<String> heldOutText(List<Scene> scenes, long seed, int n) {
        Random r = new Random(seed);
        List<String> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) out.add(document(r, x -> scenes.get(x.nextInt(scenes.size())), Split::askable).text());
        return out;
    }

    /** Every piece the world's text can contain, in a fixed order. */
    static List<String> vocabulary() {
        LinkedHashSet<String> v = new LinkedHashSet<>();
        v.add("\n");
        for (String w : ShapesWorld.vocabulary()) v.addAll(pieces(w));
        v.addAll(pieces(Conversation.SYSTEM_V1 + " USER: ASSISTANT:"));
        return new ArrayList<>(v);
    }

    /** Writes tokenizer.json and tokenizer_config.json (LLaMA's special tokens; pad = unk as LLaVA sets it). */
    static void writeTokenizer(Path dir) throws IOException {
        List<String> words = vocabulary();
        ObjectNode root = JSON.createObjectNode();
        root.put("version", "1.0");
        root.putNull("truncation");
        root.putNull("padding");
        ArrayNode added = root.putArray("added_tokens");
        String[] specials = {"<unk>", "<s>", "</s>"};
        for (int i = 0; i < specials.length; i++) {
            ObjectNode t = added.addObject();
            t.put("id", i);
            t.put("content", specials[i]);
            t.put("single_word", false);
            t.put("lstrip", false);
            t.put("rstrip", false);
            t.put("normalized", false);
            t.put("special", true);
        }
        root.putNull("normalizer");
        ObjectNode pre = root.putObject("pre_tokenizer");
        pre.put("type", "Split");
        pre.putObject("pattern").put("Regex", PIECES);
        pre.put("behavior", "Removed");
        pre.put("invert", true);
        root.putNull("post_processor");
        root.putNull("decoder");
        ObjectNode model = root.putObject("model");
        model.put("type", "WordLevel");
        ObjectNode vocab = model.putObject("vocab");
        for (int i = 0; i < specials.length; i++) vocab.put(specials[i], i);
        for (int i = 0; i < words.size(); i++) vocab.put(words.get(i), specials.length + i);
        model.put("unk_token", "<unk>");
        JsonFiles.write(dir.resolve("tokenizer.json"), root);

        ObjectNode cfg = JSON.createObjectNode();
        cfg.put("add_bos_token", true);
        cfg.put("add_eos_token", false);
        cfg.put("bos_token", "<s>");
        cfg.put("eos_token", "</s>");
        cfg.put("unk_token", "<unk>");
        cfg.put("pad_token", "<unk>");
        cfg.put("model_max_length", 2048);
        cfg.put("padding_side", "right");
        cfg.put("legacy", true);
        cfg.put("tokenizer_class", "PreTrainedTokenizerFast");
        JsonFiles.write(dir.resolve("tokenizer_config.json"), cfg);
    }

    /** Number of ids of the written tokenizer. */
    static int vocabSize() {
        return 3 + vocabulary().size();
    }
}
