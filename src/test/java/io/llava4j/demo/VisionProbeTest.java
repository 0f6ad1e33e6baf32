package io.llava4j.demo;

import io.llava4j.demo.ShapesWorld.Scene;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

class VisionProbeTest {
    @Test
    void choleskySolvesASymmetricPositiveDefiniteSystem() {
        int n = 7;
        Random r = new Random(3);
        double[] m = new double[n * n];
        for (int i = 0; i < n * n; i++) m[i] = r.nextGaussian();
        double[] a = new double[n * n]; // a = m mᵀ + I
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double s = i == j ? 1 : 0;
                for (int k = 0; k < n; k++) s += m[i * n + k] * m[j * n + k];
                a[i * n + j] = s;
            }
        double[] x = new double[n], b = new double[n];
        for (int i = 0; i < n; i++) x[i] = r.nextGaussian();
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) b[i] += a[i * n + j] * x[j];
        double[] l = a.clone();
        VisionProbe.cholesky(l, n);
        VisionProbe.solve(l, n, b);
        for (int i = 0; i < n; i++) assertEquals(x[i], b[i], 1e-9);
    }

    @Test
    void labelsPutEachObjectInItsColumnAndMarkEmptyColumns() {
        List<Scene> scenes = new ArrayList<>();
        Random r = new Random(5);
        for (int i = 0; i < 50; i++) scenes.add(ShapesWorld.scene(r));
        int[][][] y = VisionProbe.labels(scenes);
        for (int i = 0; i < scenes.size(); i++) {
            int present = 0;
            for (int c = 0; c < 3; c++) if (y[c][0][i] != ShapesWorld.KINDS.size()) present++;
            assertEquals(scenes.get(i).objects().size(), present);
            for (var o : scenes.get(i).objects()) {
                assertEquals(o.kind(), y[o.position()][0][i]);
                assertEquals(o.colour(), y[o.position()][1][i]);
                assertEquals(o.size(), y[o.position()][2][i]);
            }
        }
    }
    /**
     * Transfer to novel shapes: features that hold kind and colour apart (one-hot each, per column) let a probe fitted
     * on training shapes name a purple circle's kind and colour; features that hold only the (kind, colour) pair (one-hot
     * of the pair) cannot, since the novel pair's feature never fired while fitting. Only the novel (kind, colour) shapes
     * are scored (a per-column probe cannot transfer to a kind never seen in that column: the (kind, position) pairs).
     */
    @Test
    void transferProbeSeparatesCompositionalFromEntangledFeatures() {
        io.llava4j.engine.Engine.init();
        Random r = new Random(11);
        List<Scene> fit = new ArrayList<>(), novel = new ArrayList<>();
        while (fit.size() < 300) {
            Scene s = ShapesWorld.scene(r);
            if (s.objects().stream().noneMatch(Split::novel)) fit.add(s);
        }
        while (novel.size() < 60) {
            Scene s = ShapesWorld.scene(r);
            if (s.objects().stream().anyMatch(o -> !Split.askable(o.kind(), o.colour()))) novel.add(s);
        }
        List<Scene> all = new ArrayList<>(fit);
        all.addAll(novel);
        boolean[][] scored = new boolean[3][all.size()];
        for (int i = 0; i < novel.size(); i++)
            for (var o : novel.get(i).objects()) if (!Split.askable(o.kind(), o.colour())) scored[o.position()][fit.size() + i] = true;
        int[][][] labels = VisionProbe.labels(all);

        Map<String, Double> parts = VisionProbe.fitAndScore(features(all, false), labels, fit.size(), scored);
        Map<String, Double> pairs = VisionProbe.fitAndScore(features(all, true), labels, fit.size(), scored);
        assertTrue(parts.get("kind") > 0.95 && parts.get("colour") > 0.95, "compositional features: " + parts);
        assertTrue(pairs.get("kind") < 0.6 && pairs.get("colour") < 0.6, "entangled features: " + pairs);
        assertTrue(pairs.get("size") > 0.95, "size has its own feature in both: " + pairs);
    }

    /** Per column: one-hot kind and colour (or one-hot (kind, colour) pair) and one-hot size; an empty column is zeros. */
    private static org.bytedeco.pytorch.Tensor features(List<Scene> scenes, boolean entangled) {
        int k = ShapesWorld.KINDS.size(), c = ShapesWorld.COLOURS.size(), z = ShapesWorld.SIZES.size();
        int block = (entangled ? k * c : k + c) + z;
        float[] x = new float[scenes.size() * 3 * block];
        for (int i = 0; i < scenes.size(); i++)
            for (var o : scenes.get(i).objects()) {
                int at = (i * 3 + o.position()) * block;
                if (entangled) x[at + o.kind() * c + o.colour()] = 1;
                else {
                    x[at + o.kind()] = 1;
                    x[at + k + o.colour()] = 1;
                }
                x[at + (entangled ? k * c : k + c) + o.size()] = 1;
            }
        return io.llava4j.engine.Tensors.floats(x, scenes.size(), 3L * block);
    }
}
