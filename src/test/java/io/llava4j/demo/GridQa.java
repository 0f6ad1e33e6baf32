package io.llava4j.demo;

import io.llava4j.config.LlavaConfig.ProjectorSpec;
import io.llava4j.data.Conversation;
import io.llava4j.data.LlavaTokenizer;
import io.llava4j.demo.ShapesWorld.Qa;
import io.llava4j.demo.ShapesWorld.Scene;
import io.llava4j.engine.Engine;
import io.llava4j.model.Checkpoints;
import io.llava4j.model.Llama;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;

/**
 * Development tool (not a test): {@code GridQa RUN_DIR [nosys]} — the run's pre-trained LLM on grid-word QA, by type and
 * object count ({@link #key}).
 */
public final class GridQa {
    public static void main(String[] args) throws Exception {
        Path run = Path.of(args[0]);
        Engine.init();
        LlavaTokenizer tok = LlavaTokenizer.load(run.resolve("world/tokenizer"));
        Llama lm = Checkpoints.load(run.resolve("models/llama"), run.resolve("models/clip"), new ProjectorSpec("mlp2x_gelu", -2, "patch")).model().languageModel;
        Random r = new Random(123);
        List<Scene> scenes = new ArrayList<>();
        List<List<Qa>> qas = new ArrayList<>();
        for (int i = 0; i < 2400; i++) {
            Scene s = ShapesWorld.scene(r);
            scenes.add(s);
            qas.add(List.of(ShapesWorld.question(s, ShapesWorld.QA_TYPES.get(i % 6), r)));
        }
        String system = args.length > 1 && args[1].equals("nosys") ? "" : Conversation.SYSTEM_V1 + " ";
        List<List<String>> answers = Evaluation.gridAnswers(lm, tok, scenes, qas, system);
        for (int i = 0; i < 36; i++)
            if (!answers.get(i).get(0).equals(qas.get(i).get(0).answer()))
                System.out.println("  " + ShapesWorld.caption(scenes.get(i), 2) + " | " + qas.get(i).get(0).question() + " -> "
                        + answers.get(i).get(0) + " (" + qas.get(i).get(0).answer() + ")");
        printByKey(scenes, qas, answers, "");
    }

    /** Exact-match accuracy by {@link #key}, one line each ({@code prefix}, key, accuracy, count). */
    static void printByKey(List<Scene> scenes, List<List<Qa>> qas, List<List<String>> answers, String prefix) {
        Map<String, int[]> counts = new TreeMap<>();
        Evaluation.tally(qas, answers, (i, q) -> List.of(key(q, scenes.get(i))), counts);
        counts.forEach((k, v) -> System.out.printf("%s%-20s %.2f (%d)%n", prefix, k, (double) v[0] / v[1], v[1]));
    }

    /**
     * A question's tally key: its type, with colour questions split by what they name the shape by ("by kind": "what
     * colour is the circle ?"; "by place": "what colour is the shape on the left ?"), and the scene's number of shapes.
     * With one shape every lookup is trivial; with two or three the key shows which lookups the LLM has learnt.
     */
    static String key(Qa q, Scene s) {
        String form = !q.type().equals("colour") ? q.type()
                : q.question().startsWith("what colour is the shape") ? "colour by place" : "colour by kind";
        return form + " n=" + s.objects().size();
    }
}
