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
        List<Qa> qas = new ArrayList<>();
        List<int[]> prompts = new ArrayList<>();
        for (int i = 0; i < 2400; i++) {
            Scene s = ShapesWorld.scene(r);
            Qa q = ShapesWorld.question(s, ShapesWorld.QA_TYPES.get(i % 6), r);
            scenes.add(s);
            qas.add(q);
            String sys = args.length > 1 && args[1].equals("nosys") ? "" : Conversation.SYSTEM_V1 + " ";
            prompts.add(tok.encode(sys + "USER: " + ShapesWorld.grid(s) + "\n" + q.question() + " ASSISTANT:", true));
        }
        List<int[]> ans = Evaluation.textGreedy(lm, prompts, 4, tok.eos());
        Map<String, int[]> tally = new TreeMap<>();
        for (int i = 0; i < qas.size(); i++) {
            String a = tok.decode(ans.get(i), true).trim();
            boolean ok = a.equals(qas.get(i).answer());
            String key = key(qas.get(i), scenes.get(i));
            tally.computeIfAbsent(key, k -> new int[2]);
            tally.get(key)[0] += ok ? 1 : 0;
            tally.get(key)[1]++;
            if (i < 36 && !ok) System.out.println("  " + ShapesWorld.caption(scenes.get(i), 2) + " | " + qas.get(i).question() + " -> " + a + " (" + qas.get(i).answer() + ")");
        }
        tally.forEach((k, v) -> System.out.printf("%-16s %.2f (%d)%n", k, (double) v[0] / v[1], v[1]));
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
