package io.llava4j.demo;

import io.llava4j.demo.ShapesWorld.Obj;
import io.llava4j.demo.ShapesWorld.Scene;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;

/**
 * The demo's split of ShapesWorld by content. Validation, test and novel scenes are drawn first; every scene any training
 * corpus uses (training images, the tower's twins, the LLM's pre-training documents, stage 1 and stage 2) is then drawn
 * so that its object list (kind, colour, size and position of each shape) is none of theirs and none of its shapes
 * shows a {@link #NOVEL_KIND_COLOUR novel} (kind, colour) or {@link #NOVEL_KIND_POSITION (kind, position)} pair; and no
 * training question names a novel (kind, colour) pair. Validation, test and novel object lists are distinct from each
 * other. The novel scenes each hold at least one shape with a novel pair: the claim they test is that the projector
 * maps what the tower sees into words the frozen LLM can combine in ways it never read. The validation-novel scenes are
 * made novel the same way, from their own random draws and with object lists of their own, so that settings meant for
 * novel combinations are chosen on them and the novel scenes are only reported.
 */
public final class Split {
    /** (kind, colour) index pairs that never occur together in training: a purple circle, an orange triangle. */
    public static final List<int[]> NOVEL_KIND_COLOUR = List.of(new int[]{0, 4}, new int[]{2, 5});
    /** (kind, position) index pairs that never occur together in training: a square on the right, a diamond on the left. */
    public static final List<int[]> NOVEL_KIND_POSITION = List.of(new int[]{1, 2}, new int[]{3, 0});

    public final List<Scene> val, test, novel, valNovel;
    /** Per novel scene, the index of the shape made novel (the one its questions ask about). */
    public final List<Integer> novelObject = new ArrayList<>();
    /** Per validation-novel scene, the index of the shape made novel. */
    public final List<Integer> valNovelObject = new ArrayList<>();
    private final Set<List<Obj>> heldOut = new HashSet<>();

    /**
     * The held-out scenes of {@code seed}: {@code nVal} validation, {@code nTest} test, {@code nNovel} novel and
     * {@code nValNovel} validation-novel ones (drawn in that order, each from its own random generator, so that adding
     * the last changed none of the others).
     */
    public Split(long seed, int nVal, int nTest, int nNovel, int nValNovel) {
        Random testRandom = new Random(seed + 1), valRandom = new Random(seed + 5), novelRandom = new Random(seed + 6),
                valNovelRandom = new Random(seed + 9);
        test = distinct(testRandom, nTest);
        val = distinct(valRandom, nVal);
        novel = novel(novelRandom, nNovel, novelObject);
        valNovel = novel(valNovelRandom, nValNovel, valNovelObject);
    }

    /** The index of the shape made novel in scene {@code i} of held-out split {@code part}; -1 where none is ("val", "test"). */
    public int novelShape(String part, int i) {
        return switch (part) {
            case "novel" -> novelObject.get(i);
            case "val_novel" -> valNovelObject.get(i);
            default -> -1;
        };
    }

    /** Whether a shape shows a novel (kind, colour) or (kind, position) pair. */
    public static boolean novel(Obj o) {
        for (int[] p : NOVEL_KIND_COLOUR) if (o.kind() == p[0] && o.colour() == p[1]) return true;
        return novelPlace(o.kind(), o.position());
    }

    /** Whether a kind in a column is a novel (kind, position) pair (a square on the right, a diamond on the left). */
    public static boolean novelPlace(int kind, int position) {
        for (int[] p : NOVEL_KIND_POSITION) if (kind == p[0] && position == p[1]) return true;
        return false;
    }

    /** Whether a question may name this (kind, colour) pair in training. */
    public static boolean askable(int kind, int colour) {
        for (int[] p : NOVEL_KIND_COLOUR) if (kind == p[0] && colour == p[1]) return false;
        return true;
    }

    /** Whether a scene may occur in training: no novel shape, and not the object list of a held-out scene. */
    public boolean trainable(Scene s) {
        for (Obj o : s.objects()) if (novel(o)) return false;
        return !heldOut.contains(s.objects());
    }

    /** A random training scene ({@link ShapesWorld#scene}, novel shapes drawn again, held-out object lists drawn again). */
    public Scene trainingScene(Random r) {
        while (true) {
            Scene s = ShapesWorld.scene(r, o -> !novel(o));
            if (!heldOut.contains(s.objects())) return s;
        }
    }

    /** A {@link ShapesWorld#twin} of a training scene that may itself occur in training. */
    public Scene trainingTwin(Scene s, Random r) {
        for (int attempt = 0; attempt < 1000; attempt++) {
            Scene t = ShapesWorld.twin(s, r);
            if (trainable(t)) return t;
        }
        throw new IllegalStateException("no trainable twin of " + s.objects());
    }

    /** {@code n} scenes without novel shapes whose object lists are held out by no earlier draw; they are held out. */
    private List<Scene> distinct(Random r, int n) {
        List<Scene> out = new ArrayList<>();
        while (out.size() < n) {
            Scene s = ShapesWorld.scene(r, o -> !novel(o));
            if (heldOut.add(s.objects())) out.add(s);
        }
        return out;
    }

    /**
     * {@code n} scenes, each with one shape (its index added to {@code which}) given a novel pair, whose object lists are
     * held out by no earlier draw; they are held out.
     */
    private List<Scene> novel(Random r, int n, List<Integer> which) {
        List<Scene> out = new ArrayList<>();
        while (out.size() < n) {
            Scene s = ShapesWorld.scene(r);
            int i = r.nextInt(s.objects().size());
            Scene made = makeNovel(s, i, r);
            if (heldOut.add(made.objects())) {
                out.add(made);
                which.add(i);
            }
        }
        return out;
    }

    /** The scene with shape {@code i} given a novel pair: a (kind, position) pair where one fits its column and a coin says so, else a (kind, colour) pair. */
    private static Scene makeNovel(Scene s, int i, Random r) {
        Obj o = s.objects().get(i);
        List<int[]> byPlace = new ArrayList<>();
        for (int[] p : NOVEL_KIND_POSITION) if (p[1] == o.position()) byPlace.add(p);
        Obj n;
        if (!byPlace.isEmpty() && r.nextBoolean()) {
            n = new Obj(byPlace.get(r.nextInt(byPlace.size()))[0], o.colour(), o.size(), o.position());
        } else {
            int[] p = NOVEL_KIND_COLOUR.get(r.nextInt(NOVEL_KIND_COLOUR.size()));
            n = new Obj(p[0], p[1], o.size(), o.position());
        }
        List<Obj> objs = new ArrayList<>(s.objects());
        objs.set(i, n);
        return new Scene(objs, s.renderSeed());
    }
}
