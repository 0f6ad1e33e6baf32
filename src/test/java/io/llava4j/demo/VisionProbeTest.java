package io.llava4j.demo;

import io.llava4j.demo.ShapesWorld.Scene;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
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
}
