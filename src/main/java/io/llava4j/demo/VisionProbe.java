package io.llava4j.demo;

import io.llava4j.demo.ShapesWorld.Obj;
import io.llava4j.demo.ShapesWorld.Scene;
import io.llava4j.engine.Tensors;
import io.llava4j.model.ClipVisionTower;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.ScalarTypeOptional;
import org.bytedeco.pytorch.Tensor;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Does the vision tower's output, the features the projector sees, say what is in each column? A linear probe: ridge
 * regression (solved in its kernel form, the Gram matrix of the standardized features) from the patch features of the
 * selected layer to each column's kind, colour and size, fitted on the first three quarters of the images and scored
 * on the rest, over the columns that hold an object. If an attribute is not linearly there, no projector (a linear map
 * and a GELU) can hand it to the LLM, so stage 1 and stage 2 cannot learn it either.
 */
public final class VisionProbe {
    /** The attributes probed per column, and their class counts (the last class is "no object in this column"). */
    static final List<String> ATTRIBUTES = List.of("kind", "colour", "size");
    private static final int[] CLASSES = {ShapesWorld.KINDS.size() + 1, ShapesWorld.COLOURS.size() + 1, ShapesWorld.SIZES.size() + 1};
    private static final double RIDGE = 0.1;

    private VisionProbe() {}

    /**
     * Held-out probe accuracy per attribute, and the accuracy of always answering the training split's most frequent
     * value ({@code <attribute>_majority}).
     *
     * @param pixels      [N, 3, H, W] preprocessed images of {@code scenes}
     * @param layerIndex  the hidden state the projector reads (LLaVA's select layer -2 is {@code layers - 1})
     */
    public static Map<String, Double> run(ClipVisionTower tower, Tensor pixels, List<Scene> scenes, int layerIndex) {
        int n = scenes.size(), tr = n * 3 / 4;
        boolean[][] scored = new boolean[3][n];
        int[][][] labels = labels(scenes);
        for (int c = 0; c < 3; c++)
            for (int i = tr; i < n; i++) scored[c][i] = labels[c][0][i] != CLASSES[0] - 1; // columns holding an object
        try (PointerScope scope = new PointerScope()) {
            return fitAndScore(patchFeatures(tower, pixels, layerIndex), labels, tr, scored);
        }
    }

    /**
     * The probe fitted on every scene of {@code fit} and scored only on the objects of {@code score}'s scenes that
     * {@code which} picks: can a linear read-out learnt from training shapes name the attributes of shapes it never saw
     * (the novel combinations)?
     */
    public static Map<String, Double> transfer(ClipVisionTower tower, Tensor fitPixels, List<Scene> fit, Tensor scorePixels,
                                               List<Scene> score, java.util.function.Predicate<Obj> which, int layerIndex) {
        List<Scene> all = new java.util.ArrayList<>(fit);
        all.addAll(score);
        int tr = fit.size();
        boolean[][] scored = new boolean[3][all.size()];
        for (int i = 0; i < score.size(); i++)
            for (Obj o : score.get(i).objects()) if (which.test(o)) scored[o.position()][tr + i] = true;
        try (PointerScope scope = new PointerScope()) {
            Tensor pixels = org.bytedeco.pytorch.global.torch.cat(new org.bytedeco.pytorch.TensorVector(fitPixels, scorePixels), 0);
            return fitAndScore(patchFeatures(tower, pixels, layerIndex), labels(all), tr, scored);
        }
    }

    /** [N, P * h]: each image's patch features of the selected layer (no class token, as LLaVA's "patch"), flattened. */
    private static Tensor patchFeatures(ClipVisionTower tower, Tensor pixels, int layerIndex) {
        try (NoGradGuard g = new NoGradGuard()) {
            Tensor f = tower.features(pixels, layerIndex);                    // [N, 1 + P, h]
            return f.narrow(1, 1, f.size(1) - 1).reshape(pixels.size(0), -1);
        }
    }

    /**
     * Ridge from the features of images [0, tr) to each column's attributes, scored on the (column, image) cells of images
     * [tr, N) marked in {@code scored}: per attribute, the accuracy and that of the training images' most frequent value.
     *
     * @param x      [N, D] one feature row per image
     * @param labels [column][attribute][image] ({@link #labels})
     */
    static Map<String, Double> fitAndScore(Tensor x, int[][][] labels, int tr, boolean[][] scored) {
        int n = (int) x.size(0);
        double[] gram, cross;
        try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            Tensor train = x.narrow(0, 0, tr);
            Tensor mean = train.mean(new long[]{0}, true, new ScalarTypeOptional());
            Tensor std = train.sub(mean).pow(new Scalar(2.0)).mean(new long[]{0}, true, new ScalarTypeOptional()).sqrt().add(new Scalar(1e-4));
            Tensor z = x.sub(mean).div(std);
            Scalar d = new Scalar((double) z.size(1));
            gram = doubles(z.narrow(0, 0, tr).matmul(z.narrow(0, 0, tr).t()).div(d));
            cross = doubles(z.narrow(0, tr, n - tr).matmul(z.narrow(0, 0, tr).t()).div(d));
        }
        for (int i = 0; i < tr; i++) gram[i * tr + i] += RIDGE;
        cholesky(gram, tr);
        double[] ok = new double[3], count = new double[3], majority = new double[3];
        for (int c = 0; c < 3; c++)
            for (int a = 0; a < 3; a++) {
                int k = CLASSES[a];
                int[] y = labels[c][a];
                double[][] dual = new double[k][tr];
                for (int i = 0; i < tr; i++) dual[y[i]][i] = 1;
                for (double[] col : dual) solve(gram, tr, col);
                int[] freq = new int[k - 1];
                for (int i = 0; i < tr; i++) if (y[i] < k - 1) freq[y[i]]++;
                int most = 0;
                for (int v = 1; v < k - 1; v++) if (freq[v] > freq[most]) most = v;
                for (int i = tr; i < n; i++) {
                    if (!scored[c][i]) continue;
                    int best = 0;
                    double bestScore = Double.NEGATIVE_INFINITY;
                    for (int v = 0; v < k; v++) {
                        double sc = 0;
                        for (int j = 0; j < tr; j++) sc += cross[(i - tr) * tr + j] * dual[v][j];
                        if (sc > bestScore) {
                            bestScore = sc;
                            best = v;
                        }
                    }
                    count[a]++;
                    if (best == y[i]) ok[a]++;
                    if (y[i] == most) majority[a]++;
                }
            }
        Map<String, Double> out = new LinkedHashMap<>();
        for (int a = 0; a < 3; a++) {
            out.put(ATTRIBUTES.get(a), count[a] == 0 ? Double.NaN : ok[a] / count[a]);
            out.put(ATTRIBUTES.get(a) + "_majority", count[a] == 0 ? Double.NaN : majority[a] / count[a]);
        }
        return out;
    }

    /**
     * Can a patch token's own feature say which column (left / middle / right) it lies in? The LLM reads image tokens by
     * content (rotary positions give it only distances), so a column the features do not carry is one it can hardly
     * name. Ridge regression from single standardized patch features to their column, fitted on the tokens of the first
     * three quarters of the images and scored on the rest. Returns {held-out accuracy, the most frequent column's share}.
     */
    public static double[] tokenColumn(ClipVisionTower tower, Tensor pixels, int layerIndex) {
        int n = (int) pixels.size(0), tr = n * 3 / 4;
        try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            Tensor f = tower.features(pixels, layerIndex);
            int p = (int) f.size(1) - 1, h = (int) f.size(2), side = (int) Math.round(Math.sqrt(p));
            Tensor x = f.narrow(1, 1, p).reshape(-1, h);                       // [N * P, h]
            Tensor train = x.narrow(0, 0, (long) tr * p);
            Tensor mean = train.mean(new long[]{0}, true, new ScalarTypeOptional());
            Tensor std = train.sub(mean).pow(new Scalar(2.0)).mean(new long[]{0}, true, new ScalarTypeOptional()).sqrt().add(new Scalar(1e-4));
            Tensor z = org.bytedeco.pytorch.global.torch.cat(new org.bytedeco.pytorch.TensorVector(
                    x.sub(mean).div(std), org.bytedeco.pytorch.global.torch.ones(x.size(0), 1)), 1); // [N * P, h + 1]
            int d = h + 1;
            int[] col = new int[n * p];
            float[] y = new float[tr * p * 3];
            for (int i = 0; i < n * p; i++) {
                col[i] = (i % p % side) * 3 / side;
                if (i < tr * p) y[i * 3 + col[i]] = 1;
            }
            Tensor ztr = z.narrow(0, 0, (long) tr * p);
            double[] gram = doubles(ztr.t().matmul(ztr));
            double[] xy = doubles(ztr.t().matmul(Tensors.floats(y, (long) tr * p, 3)));  // [d, 3]
            for (int i = 0; i < d; i++) gram[i * d + i] += RIDGE * tr * p / 100.0;
            cholesky(gram, d);
            float[] w = new float[d * 3];
            for (int c = 0; c < 3; c++) {
                double[] b = new double[d];
                for (int i = 0; i < d; i++) b[i] = xy[i * 3 + c];
                solve(gram, d, b);
                for (int i = 0; i < d; i++) w[i * 3 + c] = (float) b[i];
            }
            float[] scores = Tensors.toFloats(z.narrow(0, (long) tr * p, (long) (n - tr) * p).matmul(Tensors.floats(w, d, 3)).contiguous());
            int ok = 0, total = (n - tr) * p;
            int[] freq = new int[3];
            for (int i = 0; i < total; i++) {
                int best = 0;
                for (int c = 1; c < 3; c++) if (scores[i * 3 + c] > scores[i * 3 + best]) best = c;
                int truth = col[tr * p + i];
                if (best == truth) ok++;
                freq[truth]++;
            }
            return new double[]{(double) ok / total, (double) Math.max(freq[0], Math.max(freq[1], freq[2])) / total};
        }
    }

    /** [column][attribute][image]: the object's value in that column, or the "none" class. */
    static int[][][] labels(List<Scene> scenes) {
        int[][][] y = new int[3][3][scenes.size()];
        for (int i = 0; i < scenes.size(); i++) {
            for (int c = 0; c < 3; c++)
                for (int a = 0; a < 3; a++) y[c][a][i] = CLASSES[a] - 1;
            for (Obj o : scenes.get(i).objects()) {
                y[o.position()][0][i] = o.kind();
                y[o.position()][1][i] = o.colour();
                y[o.position()][2][i] = o.size();
            }
        }
        return y;
    }

    private static double[] doubles(Tensor t) {
        float[] f = Tensors.toFloats(t.contiguous());
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) d[i] = f[i];
        return d;
    }

    /** In place: the lower triangle of {@code a} (n×n, symmetric positive definite) becomes L with a = L Lᵀ. */
    static void cholesky(double[] a, int n) {
        for (int j = 0; j < n; j++) {
            double s = a[j * n + j];
            for (int k = 0; k < j; k++) s -= a[j * n + k] * a[j * n + k];
            double dj = Math.sqrt(s);
            a[j * n + j] = dj;
            for (int i = j + 1; i < n; i++) {
                double v = a[i * n + j];
                for (int k = 0; k < j; k++) v -= a[i * n + k] * a[j * n + k];
                a[i * n + j] = v / dj;
            }
        }
    }

    /** In place: b becomes x with L Lᵀ x = b. */
    static void solve(double[] l, int n, double[] b) {
        for (int i = 0; i < n; i++) {
            double v = b[i];
            for (int k = 0; k < i; k++) v -= l[i * n + k] * b[k];
            b[i] = v / l[i * n + i];
        }
        for (int i = n - 1; i >= 0; i--) {
            double v = b[i];
            for (int k = i + 1; k < n; k++) v -= l[k * n + i] * b[k];
            b[i] = v / l[i * n + i];
        }
    }
}
