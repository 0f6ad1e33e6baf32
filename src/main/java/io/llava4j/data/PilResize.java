package io.llava4j.data;

/**
 * PIL's {@code Image.resize} for 8-bit RGB images (Pillow's Resample.c), the resize transformers' CLIPImageProcessor
 * uses: a separable convolution, horizontal pass then vertical pass, each only when that dimension changes. The filter
 * support is stretched by the downscale factor (antialiasing); the normalised weights are turned into 22-bit fixed
 * point, and every pass rounds and clamps its result back to uint8, exactly as Pillow does.
 */
final class PilResize {

    private static final int PRECISION_BITS = 32 - 8 - 2;

    private PilResize() {
    }

    /** A resampling filter: PIL's number for it, its support and its kernel. */
    enum Filter {
        LANCZOS(1, 3.0), BILINEAR(2, 1.0), BICUBIC(3, 2.0), BOX(4, 0.5), HAMMING(5, 1.0);

        final int pil;
        final double support;

        Filter(int pil, double support) {
            this.pil = pil;
            this.support = support;
        }

        static Filter of(int pil) {
            for (Filter f : values()) if (f.pil == pil) return f;
            throw new IllegalArgumentException("PIL resample filter " + pil + " is not supported");
        }

        double apply(double x) {
            switch (this) {
                case BOX:
                    return x > -0.5 && x <= 0.5 ? 1.0 : 0.0;
                case BILINEAR:
                    x = Math.abs(x);
                    return x < 1.0 ? 1.0 - x : 0.0;
                case HAMMING:
                    x = Math.abs(x);
                    if (x == 0.0) return 1.0;
                    if (x >= 1.0) return 0.0;
                    x = x * Math.PI;
                    return Math.sin(x) / x * (0.54 + 0.46 * Math.cos(x));
                case BICUBIC: {
                    final double a = -0.5;
                    x = Math.abs(x);
                    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
                    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
                    return 0.0;
                }
                case LANCZOS:
                    return -3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3) : 0.0;
                default:
                    throw new AssertionError(this);
            }
        }

        private static double sinc(double x) {
            if (x == 0.0) return 1.0;
            x = x * Math.PI;
            return Math.sin(x) / x;
        }
    }

    /** Resizes {@code in} to {@code outW} x {@code outH}; the same size gives the image back unchanged. */
    static RgbImage resize(RgbImage in, int outW, int outH, Filter filter) {
        RgbImage cur = in;
        if (outW != cur.width()) cur = pass(cur, outW, filter, true);
        if (outH != cur.height()) cur = pass(cur, outH, filter, false);
        return cur;
    }

    /** One pass along x ({@code horizontal}) or y. */
    private static RgbImage pass(RgbImage in, int outSize, Filter filter, boolean horizontal) {
        int inSize = horizontal ? in.width() : in.height();
        Coeffs c = coeffs(inSize, outSize, filter);
        int w = horizontal ? outSize : in.width();
        int h = horizontal ? in.height() : outSize;
        byte[] src = in.rgb();
        byte[] dst = new byte[w * h * 3];
        int stride = horizontal ? 3 : in.width() * 3;  // step in src between neighbouring taps
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                int o = horizontal ? x : y;
                int start = horizontal ? (y * in.width() + c.min[o]) * 3 : (c.min[o] * in.width() + x) * 3;
                int[] k = c.k[o];
                for (int ch = 0; ch < 3; ch++) {
                    int ss = 1 << (PRECISION_BITS - 1);
                    for (int t = 0, at = start + ch; t < c.count[o]; t++, at += stride) ss += (src[at] & 0xff) * k[t];
                    dst[(y * w + x) * 3 + ch] = (byte) clip8(ss);
                }
            }
        }
        return new RgbImage(w, h, dst);
    }

    private static int clip8(int v) {
        if (v >= (1 << PRECISION_BITS << 8)) return 255;
        if (v <= 0) return 0;
        return v >> PRECISION_BITS;
    }

    /** For each output position: first input index, number of taps, fixed-point weights (Pillow's precompute_coeffs). */
    private record Coeffs(int[] min, int[] count, int[][] k) {
    }

    private static Coeffs coeffs(int inSize, int outSize, Filter filter) {
        double scale = (double) inSize / outSize;
        double filterscale = Math.max(scale, 1.0);
        double support = filter.support * filterscale;
        int[] min = new int[outSize], count = new int[outSize];
        int[][] kk = new int[outSize][];
        for (int xx = 0; xx < outSize; xx++) {
            double center = (xx + 0.5) * scale;
            double ss = 1.0 / filterscale;
            int xmin = Math.max(0, (int) (center - support + 0.5));
            int xmax = Math.min(inSize, (int) (center + support + 0.5)) - xmin;
            double[] w = new double[Math.max(xmax, 0)];
            double ww = 0.0;
            for (int x = 0; x < xmax; x++) {
                w[x] = filter.apply((x + xmin - center + 0.5) * ss);
                ww += w[x];
            }
            int[] k = new int[w.length];
            for (int x = 0; x < xmax; x++) {
                double v = ww != 0.0 ? w[x] / ww : w[x];
                k[x] = v < 0 ? (int) (-0.5 + v * (1 << PRECISION_BITS)) : (int) (0.5 + v * (1 << PRECISION_BITS));
            }
            min[xx] = xmin;
            count[xx] = Math.max(xmax, 0);
            kk[xx] = k;
        }
        return new Coeffs(min, count, kk);
    }
}
