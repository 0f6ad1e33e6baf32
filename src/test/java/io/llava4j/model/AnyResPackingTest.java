package io.llava4j.model;

import io.llava4j.data.AnyRes;
import io.llava4j.engine.Engine;
import io.llava4j.engine.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** Feature-side AnyRes packing: row counts against the processor's count, layout by hand, bilinear, gradients. */
class AnyResPackingTest {
    static final List<int[]> TINY = List.of(new int[]{16, 32}, new int[]{32, 32}, new int[]{32, 16}, new int[]{16, 16});

    @BeforeAll
    static void init() {
        Engine.init();
    }

    @Test
    void rowCountEqualsProcessorCountForEverySizeUpTo80() {
        AnyRes.Spec spec = new AnyRes.Spec(16, 4, TINY, 2, AnyRes.Rounding.HF);
        Tensor newline = torch.randn(3);
        int checked = 0;
        for (int h = 1; h <= 80; h++)
            for (int w = 1; w <= 80; w++)
                try (PointerScope scope = new PointerScope()) {
                    AnyRes.Grid g = AnyRes.grid(h, w, spec);
                    Tensor feats = torch.randn(1 + g.tiles(), 16, 3);
                    Tensor packed = AnyResPacking.pack(feats, g.rows(), g.cols(), h, w, newline, spec.maxTiles(), spec.rounding());
                    assertEquals(AnyRes.numImageTokens(h, w, spec), packed.size(0), h + "x" + w);
                    assertEquals(3, packed.size(1));
                    checked++;
                }
        assertEquals(6400, checked);
    }

    @Test
    void rowCountMatchesOnTheRoundingCaseBothWays() {
        // OneVision H 47, W 423: HF's round(x, 7) keeps 6 feature rows, int() 5
        for (AnyRes.Rounding r : AnyRes.Rounding.values())
            try (PointerScope scope = new PointerScope()) {
                AnyRes.Spec spec = new AnyRes.Spec(384, 27, oneVisionPinpoints(), 9, r);
                AnyRes.Grid g = AnyRes.grid(47, 423, spec);
                Tensor packed = AnyResPacking.pack(torch.zeros(1 + g.tiles(), 729, 1), g.rows(), g.cols(), 47, 423,
                        torch.zeros(1), 9, r);
                assertEquals(r == AnyRes.Rounding.HF ? 1114 : 1004, packed.size(0));
                assertEquals(AnyRes.numImageTokens(47, 423, spec), packed.size(0));
            }
    }

    static List<int[]> oneVisionPinpoints() {
        List<int[]> out = new java.util.ArrayList<>();
        for (int i = 1; i <= 6; i++)
            for (int j = 1; j <= 6; j++) out.add(new int[]{384 * i, 384 * j});
        return out;
    }

    /** Feature value for channel d of row p (y * S + x) of tile t: identifies where each packed row came from. */
    static float code(int tile, int pos, int d) {
        return 1000 * d + 100 * tile + pos;
    }

    static Tensor codedFeatures(int tiles, int s, int dims) {
        float[] v = new float[tiles * s * s * dims];
        for (int t = 0; t < tiles; t++)
            for (int p = 0; p < s * s; p++)
                for (int d = 0; d < dims; d++) v[(t * s * s + p) * dims + d] = code(t, p, d);
        return Tensors.floats(v, tiles, (long) s * s, dims);
    }

    @Test
    void unpadKeepsTheMiddleRowsAndEndsEachRowWithTheNewline() {
        // S = 2, 2x2 grid -> a 4x4 map; image H 10, W 40 (4:1): nh = 10 * 4/40 = 1, pad = (4 - 1) // 2 = 1 -> map rows 1, 2
        int s = 2, dims = 2;
        Tensor packed = AnyResPacking.pack(codedFeatures(5, s, dims), 2, 2, 10, 40,
                Tensors.floats(new float[]{-1, -2}, 2), null, AnyRes.Rounding.HF);
        float[] got = Tensors.toFloats(packed);
        assertArrayEquals(new long[]{4 + 2 * 5, dims}, Tensors.shape(packed));
        int row = 0;
        for (int p = 0; p < 4; p++, row++)
            for (int d = 0; d < dims; d++) assertEquals(code(0, p, d), got[row * dims + d], "base row " + p);
        for (int y = 1; y <= 2; y++) {
            for (int x = 0; x < 4; x++, row++) {
                int tile = 1 + (y / s) * 2 + x / s, pos = (y % s) * s + x % s;
                for (int d = 0; d < dims; d++) assertEquals(code(tile, pos, d), got[row * dims + d], "map (" + y + "," + x + ")");
            }
            for (int d = 0; d < dims; d++) assertEquals(-1 - d, got[row * dims + d], "newline after map row " + y);
            row++;
        }
    }

    @Test
    void unpadOnColumnsForTallImages() {
        // image H 40, W 10 on the same 4x4 map: columns 1, 2 survive; each row = 2 features + newline
        int s = 2;
        Tensor packed = AnyResPacking.pack(codedFeatures(5, s, 1), 2, 2, 40, 10, Tensors.floats(new float[]{-1}, 1), null,
                AnyRes.Rounding.ORIGINAL);
        float[] got = Tensors.toFloats(packed);
        assertEquals(4 + 4 * 3, got.length);
        int row = 4;
        for (int y = 0; y < 4; y++) {
            for (int x = 1; x <= 2; x++, row++)
                assertEquals(code(1 + (y / s) * 2 + x / s, (y % s) * s + x % s, 0), got[row], "map (" + y + "," + x + ")");
            assertEquals(-1, got[row++]);
        }
    }

    @Test
    void downsamplesLikeTorchBilinearWithoutAlignCorners() {
        // tiny img2: H 64, W 40, 2x2 grid, S 4 -> unpadded 8x6, r = sqrt(48/32) = 1.22 > 1.1 -> 6x4
        int s = 4, dims = 3;
        torch.manual_seed(7);
        Tensor feats = torch.randn(5, 16, dims);
        Tensor newline = torch.randn(dims);
        Tensor packed = AnyResPacking.pack(feats, 2, 2, 64, 40, newline, 2, AnyRes.Rounding.HF);
        assertArrayEquals(new long[]{16 + 6 * 5, dims}, Tensors.shape(packed));
        float[] f = Tensors.toFloats(feats), got = Tensors.toFloats(packed), nl = Tensors.toFloats(newline);
        // the unpadded map by hand: 8 rows, columns 1..6 of 8 (nw = 40 * 8/64 = 5, pad = (8 - 5) // 2 = 1)
        double[][][] map = new double[dims][8][6];
        for (int d = 0; d < dims; d++)
            for (int y = 0; y < 8; y++)
                for (int x = 0; x < 6; x++) {
                    int mx = x + 1, tile = 1 + (y / s) * 2 + mx / s, pos = (y % s) * s + mx % s;
                    map[d][y][x] = f[(tile * 16 + pos) * dims + d];
                }
        for (int y = 0; y < 6; y++) {
            for (int x = 0; x < 4; x++)
                for (int d = 0; d < dims; d++)
                    assertEquals(bilinear(map[d], 6, 4, y, x), got[(16 + y * 5 + x) * dims + d], 1e-5, "(" + y + "," + x + "," + d + ")");
            for (int d = 0; d < dims; d++) assertEquals(nl[d], got[(16 + y * 5 + 4) * dims + d]);
        }
    }

    /** PyTorch's bilinear, align_corners=False, output size given: source = max(0, (dst + 0.5) * in/out - 0.5). */
    static double bilinear(double[][] in, int outH, int outW, int y, int x) {
        int inH = in.length, inW = in[0].length;
        double sy = Math.max(0, (y + 0.5) * inH / outH - 0.5), sx = Math.max(0, (x + 0.5) * inW / outW - 0.5);
        int y0 = (int) sy, x0 = (int) sx, y1 = Math.min(y0 + 1, inH - 1), x1 = Math.min(x0 + 1, inW - 1);
        double ly = sy - y0, lx = sx - x0;
        return (1 - ly) * ((1 - lx) * in[y0][x0] + lx * in[y0][x1]) + ly * ((1 - lx) * in[y1][x0] + lx * in[y1][x1]);
    }

    @Test
    void gradientsReachFeaturesAndNewline() {
        int dims = 3;
        torch.manual_seed(3);
        Tensor feats = torch.randn(5, 16, dims).requires_grad_(true);
        Tensor newline = torch.randn(dims).requires_grad_(true);
        Tensor packed = AnyResPacking.pack(feats, 2, 2, 64, 40, newline, 2, AnyRes.Rounding.HF);  // bilinear path
        long rows = packed.size(0);
        float[] wts = new float[(int) rows * dims];
        Random rnd = new Random(1);
        for (int i = 0; i < wts.length; i++) wts[i] = rnd.nextFloat() - 0.5f;
        packed.mul(Tensors.floats(wts, rows, dims)).sum().backward();
        assertTrue(newline.grad().defined());
        float[] gn = Tensors.toFloats(newline.grad()), gf = Tensors.toFloats(feats.grad());
        // newline: the sum of the weights of its 6 rows (every 5th row after the 16 base rows)
        for (int d = 0; d < dims; d++) {
            double want = 0;
            for (int y = 0; y < 6; y++) want += wts[(16 + y * 5 + 4) * dims + d];
            assertEquals(want, gn[d], 1e-5, "newline grad " + d);
        }
        // base rows pass straight through
        for (int i = 0; i < 16 * dims; i++) assertEquals(wts[i], gf[i], 1e-6, "base grad " + i);
        // the grid tiles receive gradient through unpad + bilinear; the cropped-away column 0 of tile 1 gets none
        double tileSum = 0;
        for (int i = 16 * dims; i < gf.length; i++) tileSum += Math.abs(gf[i]);
        assertTrue(tileSum > 0);
        for (int y = 0; y < 4; y++)
            for (int d = 0; d < dims; d++) assertEquals(0f, gf[((16 + y * 4) * dims) + d], "cropped column, row " + y);
    }

    @Test
    void singleTileImageGetsOneNewline() {
        Tensor out = AnyResPacking.packSingleTile(codedFeatures(1, 2, 1), Tensors.floats(new float[]{-1}, 1));
        assertArrayEquals(new float[]{0, 1, 2, 3, -1}, Tensors.toFloats(out));
    }
}
