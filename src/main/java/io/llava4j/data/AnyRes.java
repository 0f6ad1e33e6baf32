package io.llava4j.data;

import com.fasterxml.jackson.databind.JsonNode;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * LLaVA-NeXT / LLaVA-OneVision "AnyRes" on the image side: choose a grid resolution among the configured pinpoints,
 * resize the image into it keeping its aspect ratio, pad with black, cut it into tiles, and put a base image (the whole
 * picture squashed to one tile) in front. Also the number of tokens {@code <image>} expands to, computed as the
 * processors compute it (independently of the feature packing in {@code io.llava4j.model.AnyResPacking}, which must
 * agree with it).
 *
 * <p>Conventions: every size here is (height, width), as transformers writes them; pinpoint lists are converted to
 * (height, width) once, by {@link #pinpointsHW}. Pixels are PIL-exact: resizes run on uint8 through {@link PilResize}
 * and normalisation happens last, per tile, in {@link ImageProcessor} (so black padding becomes
 * {@code (0 - mean) / std}, -1 for SigLIP's 0.5/0.5).
 */
public final class AnyRes {

    private AnyRes() {
    }

    /**
     * How unpadding turns the scaled side into an int: transformers' {@code int(round(x, 7))} (HF models and
     * processors), or LLaVA/LLaVA-NeXT's plain {@code int(x)}. They differ only where {@code x} lands within 5e-8
     * below an integer.
     */
    public enum Rounding {
        HF, ORIGINAL;

        public int apply(double x) {
            if (this == ORIGINAL) return (int) x;
            // Python's round(x, 7): the exact binary value rounded half-even to 7 decimals
            return (int) new BigDecimal(x).setScale(7, RoundingMode.HALF_EVEN).doubleValue();
        }
    }

    /** A grid of tiles: {@code rows} along the height, {@code cols} along the width. */
    public record Grid(int rows, int cols) {
        public int tiles() {
            return rows * cols;
        }
    }

    /**
     * Everything that decides the token layout of one AnyRes image.
     *
     * @param tileSize        P, the tower's input side (384 for SigLIP-so400m, 336 for CLIP-L/336, 16 in the tiny model)
     * @param featuresPerSide S, features per tile side after the tower and feature selection (27, 24, 4); a tile gives
     *                        S·S feature rows (no class token: OneVision's {@code full} on SigLIP has none, LLaVA-NeXT's
     *                        {@code default} drops CLIP's)
     * @param pinpointsHW     candidate resolutions as (height, width), see {@link #pinpointsHW}
     * @param maxTiles        N of {@code anyres_max_N} (downsample the unpadded grid to about N tiles' worth), or null
     *                        for plain {@code anyres} (LLaVA-1.6)
     * @param rounding        the unpad rounding
     */
    public record Spec(int tileSize, int featuresPerSide, List<int[]> pinpointsHW, Integer maxTiles, Rounding rounding) {
        public Spec {
            if (tileSize <= 0 || featuresPerSide <= 0) throw new IllegalArgumentException("tileSize and featuresPerSide must be positive");
            if (maxTiles != null && maxTiles <= 0) throw new IllegalArgumentException("maxTiles must be positive, got " + maxTiles);
            if (pinpointsHW.isEmpty()) throw new IllegalArgumentException("no pinpoints");
            for (int[] p : pinpointsHW)
                if (p.length != 2 || p[0] <= 0 || p[1] <= 0 || p[0] % tileSize != 0 || p[1] % tileSize != 0)
                    throw new IllegalArgumentException("pinpoint " + java.util.Arrays.toString(p) + " is not a positive multiple of the tile size " + tileSize);
            pinpointsHW = List.copyOf(pinpointsHW);
        }
    }

    /**
     * The AnyRes layout of a model: tiles of the tower's input size, S·S rows per tile (S = patches per side; the
     * packing assumes no class-token row, which {@code full} on SigLIP and {@code default} on CLIP both give), the
     * config's pinpoints, {@code anyres_max_N} and its layout's unpad rounding. Null when the model has no AnyRes.
     */
    public static Spec spec(io.llava4j.config.LlavaConfig cfg) {
        io.llava4j.config.LlavaConfig.AnyResSpec a = cfg.anyres();
        if (a == null) return null;
        int s = cfg.vision().patchesPerSide();
        if (cfg.imageFeatureTokens() != s * s)
            throw new IllegalArgumentException("AnyRes packs " + s + "x" + s + " feature rows per tile, but the feature selection ("
                    + cfg.visionFeatureSelectStrategy() + ") gives " + cfg.imageFeatureTokens());
        return new Spec(cfg.vision().imageSize(), s, a.pinpointsHW(), a.maxN(), a.hfRounding() ? Rounding.HF : Rounding.ORIGINAL);
    }

    /**
     * One processed image.
     *
     * @param pixels      [tiles, 3, P, P] flattened row-major, normalised: the base image first, then the grid's tiles
     *                    row by row
     * @param tiles       1 + gridRows·gridCols
     * @param imageHeight the original image's height (what the packing's unpad needs)
     */
    public record AnyResImage(float[] pixels, int tiles, int gridRows, int gridCols, int imageHeight, int imageWidth,
                              int tileSize) {
    }

    // ------------------------------------------------------------------------------------------------ pinpoints

    private static final Pattern RANGE_END = Pattern.compile("\\((\\d+)x(\\d+)\\)");
    private static final Pattern NUMBER = Pattern.compile("\\d+");

    /**
     * A config's {@code image_grid_pinpoints} as (height, width) pairs, in list order (the order decides ties).
     * HF folders ({@code llava_next}, {@code llava_onevision}) list pairs as (height, width): pass
     * {@code pairsAreWidthHeight = false}; original LLaVA / LLaVA-NeXT folders ({@code llava_llama} with anyres,
     * {@code llava_mistral}, {@code llava_qwen}) list them as (width, height): pass true.
     *
     * <p>Accepted forms: a JSON array of pairs; a string holding such a list ({@code "[(336, 672), ...]"}, read as
     * LLaVA's {@code ast.literal_eval}); or LLaVA-NeXT's range string {@code "(1x1),...,(6x6)"}, which train() and
     * mm_utils expand from the first {@code (AxB)} to the last one as {@code [i·P, j·P]} for i in A0..A1 (outer),
     * j in B0..B1 (inner), where P = {@code tileSize} (the processor's {@code size[0]}); the pairs it makes are in the
     * layout's own order, so they too are swapped when {@code pairsAreWidthHeight}.
     *
     * @param tileSize P, used only by the range string
     */
    public static List<int[]> pinpointsHW(JsonNode pinpoints, boolean pairsAreWidthHeight, int tileSize) {
        if (pinpoints == null || pinpoints.isNull()) throw new IllegalArgumentException("image_grid_pinpoints: missing");
        List<int[]> pairs = new ArrayList<>();
        if (pinpoints.isTextual()) {
            String s = pinpoints.asText();
            if (s.contains("x")) {
                Matcher m = RANGE_END.matcher(s);
                List<int[]> ends = new ArrayList<>();
                while (m.find()) ends.add(new int[]{Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2))});
                if (ends.isEmpty()) throw new IllegalArgumentException("image_grid_pinpoints: no (AxB) in \"" + s + "\"");
                int[] a = ends.get(0), b = ends.get(ends.size() - 1);
                for (int i = a[0]; i <= b[0]; i++)
                    for (int j = a[1]; j <= b[1]; j++) pairs.add(new int[]{i * tileSize, j * tileSize});
            } else {
                Matcher m = NUMBER.matcher(s);
                List<Integer> v = new ArrayList<>();
                while (m.find()) v.add(Integer.parseInt(m.group()));
                if (v.isEmpty() || v.size() % 2 != 0) throw new IllegalArgumentException("image_grid_pinpoints: not a list of pairs: \"" + s + "\"");
                for (int i = 0; i < v.size(); i += 2) pairs.add(new int[]{v.get(i), v.get(i + 1)});
            }
        } else if (pinpoints.isArray()) {
            for (JsonNode p : pinpoints) {
                if (!p.isArray() || p.size() != 2 || !p.get(0).isInt() || !p.get(1).isInt())
                    throw new IllegalArgumentException("image_grid_pinpoints: expected pairs of ints, got " + p);
                pairs.add(new int[]{p.get(0).asInt(), p.get(1).asInt()});
            }
        } else {
            throw new IllegalArgumentException("image_grid_pinpoints: expected a list or a string, got " + pinpoints);
        }
        return pinpointsHW(pairs, pairsAreWidthHeight);
    }

    /** Pairs in the layout's order turned into (height, width): swapped when {@code pairsAreWidthHeight}. */
    public static List<int[]> pinpointsHW(List<int[]> pairs, boolean pairsAreWidthHeight) {
        List<int[]> out = new ArrayList<>(pairs.size());
        for (int[] p : pairs) out.add(pairsAreWidthHeight ? new int[]{p[1], p[0]} : new int[]{p[0], p[1]});
        return List.copyOf(out);
    }

    /**
     * N of {@code anyres_max_N}, or null for {@code anyres} (LLaVA-1.6, no downsampling). Other values are an error.
     */
    public static Integer maxTiles(String aspectRatio) {
        if ("anyres".equals(aspectRatio)) return null;
        if (aspectRatio != null && aspectRatio.matches("anyres_max_\\d+")) return Integer.parseInt(aspectRatio.substring(11));
        throw new IllegalArgumentException("aspect ratio \"" + aspectRatio + "\" is not anyres or anyres_max_N");
    }

    // ------------------------------------------------------------------------------------------------ geometry

    /**
     * The candidate (height, width) that keeps most of the image's resolution: per candidate s = min(w/W, h/H),
     * effective = min(int(W·s)·int(H·s), W·H), waste = w·h − effective; a later candidate replaces the best only with a
     * strictly larger effective resolution, or an equal one and strictly less waste, so the first of exact equals wins.
     *
     * <p><b>Tie hazard.</b> List order and pair order both matter. LLaVA-1.6's five pinpoints
     * {@code [[336,672],[672,336],[672,672],[1008,336],[336,1008]]} tie exactly for every image at most 336 px on both
     * sides (the first two keep the whole image and waste the same): the original code reads the first pair as
     * (w=336, h=672) and picks a tall 1×2-tile grid (2 rows), HF reads it as (h=336, w=672) and picks a wide grid
     * (1 row, 2 columns). Same token count, different features: read each folder's list in its own order
     * ({@link #pinpointsHW}).
     *
     * @return {height, width}
     */
    public static int[] selectBestResolution(int imageH, int imageW, List<int[]> candidatesHW) {
        int[] best = null;
        long bestEff = 0;
        double bestWaste = Double.POSITIVE_INFINITY;
        for (int[] c : candidatesHW) {
            int h = c[0], w = c[1];
            double s = Math.min((double) w / imageW, (double) h / imageH);
            long eff = Math.min((long) (int) (imageW * s) * (long) (int) (imageH * s), (long) imageW * imageH);
            long waste = (long) h * w - eff;
            if (eff > bestEff || (eff == bestEff && waste < bestWaste)) {
                best = c;
                bestEff = eff;
                bestWaste = waste;
            }
        }
        if (best == null) throw new IllegalArgumentException("no pinpoints");
        return new int[]{best[0], best[1]};
    }

    /** The grid of P×P tiles the image is cut into. */
    public static Grid grid(int imageH, int imageW, Spec spec) {
        int[] best = selectBestResolution(imageH, imageW, spec.pinpointsHW());
        return new Grid(best[0] / spec.tileSize(), best[1] / spec.tileSize());
    }

    /**
     * The aspect-keeping size (height, width) that fits in {@code targetH × targetW} (transformers'
     * get_patch_output_size, LLaVA-NeXT's resize_and_pad_image): the limiting side is matched, the other is
     * {@code ceil}ed and capped.
     */
    public static int[] fitSize(int imageH, int imageW, int targetH, int targetW) {
        double sw = (double) targetW / imageW, sh = (double) targetH / imageH;
        if (sw < sh) return new int[]{Math.min((int) Math.ceil(imageH * sw), targetH), targetW};
        return new int[]{targetH, Math.min((int) Math.ceil(imageW * sh), targetW)};
    }

    /**
     * The number of tokens {@code <image>} expands to for an image of {@code imageH × imageW}: S·S base features plus
     * the packed grid, rows × (columns + 1) after unpadding (and, for {@code anyres_max_N}, downsampling when the ratio
     * r = sqrt(rows·cols / (N·S²)) is over 1.1 to (int(rows // r), int(cols // r))). This is the processor's count,
     * computed from sizes alone; it must equal the row count of {@code AnyResPacking.pack}.
     */
    public static int numImageTokens(int imageH, int imageW, Spec spec) {
        int[] hw = packedGridShape(imageH, imageW, spec);
        int s = spec.featuresPerSide();
        return s * s + hw[0] * (hw[1] + 1);
    }

    /** The feature grid (rows, cols) after unpad and the max_N downsampling, before the newline column. */
    public static int[] packedGridShape(int imageH, int imageW, Spec spec) {
        Grid g = grid(imageH, imageW, spec);
        int s = spec.featuresPerSide();
        int ch = g.rows() * s, cw = g.cols() * s;
        if ((double) imageW / imageH > (double) cw / ch) {
            int nh = spec.rounding().apply(imageH * ((double) cw / imageW));
            ch -= ((ch - nh) / 2) * 2;
        } else {
            int nw = spec.rounding().apply(imageW * ((double) ch / imageH));
            cw -= ((cw - nw) / 2) * 2;
        }
        if (spec.maxTiles() != null) {
            double r = downsampleRatio(ch, cw, spec.maxTiles(), s);
            if (r > 1.1) return new int[]{(int) pyFloorDiv(ch, r), (int) pyFloorDiv(cw, r)};
        }
        return new int[]{ch, cw};
    }

    /** anyres_max_N's r = sqrt(h·w / (N·S²)) for an unpadded h × w feature grid; downsampled when r > 1.1. */
    public static double downsampleRatio(int h, int w, int maxTiles, int featuresPerSide) {
        return Math.sqrt((double) ((long) h * w) / ((long) maxTiles * featuresPerSide * featuresPerSide));
    }

    /** Python's float {@code a // b} (CPython's float_floor_div), which can be one below floor(a / b). */
    public static double pyFloorDiv(double a, double b) {
        double mod = a % b;  // C fmod
        double div = (a - mod) / b;
        if (mod != 0 && ((b < 0) != (mod < 0))) div -= 1.0;
        if (div == 0) return Math.copySign(0.0, a / b);
        double f = Math.floor(div);
        if (div - f > 0.5) f += 1.0;
        return f;
    }

    // ------------------------------------------------------------------------------------------------ pixels

    /**
     * Reads and processes one image file the way transformers' LlavaOnevisionImageProcessor (PIL backend) does: the
     * image resized (bicubic, per {@code resample}) into the best pinpoint keeping its aspect ratio, pasted centred on
     * black, cut into P×P tiles row-major; the base image is the original resized straight to the processor's size;
     * then each of [base, tiles...] goes through {@code processor} (its resize is a no-op on a P×P tile; rescale and
     * normalise).
     *
     * @param processor the model's image processor; P = its output side ({@code size} for SigLIP/OneVision configs,
     *                  {@code crop_size} for CLIP ones), which must be square and equal {@code spec.tileSize()}
     */
    public static AnyResImage process(ImageProcessor processor, Path imageFile, Spec spec) {
        return process(processor, imageFile, spec, ImageLimits.DEFAULT);
    }

    /** As {@link #process(ImageProcessor, Path, Spec)}, refusing from the header an image over {@code limits} ({@link #checkSize}). */
    public static AnyResImage process(ImageProcessor processor, Path imageFile, Spec spec, ImageLimits limits) {
        return process(processor, ImageProcessor.read(imageFile, (h, w) -> checkSize(h, w, spec, limits, imageFile.toString())), spec);
    }

    /** Refuses an image whose pixels, aspect ratio or resize into its best grid resolution go over {@code limits}. */
    public static void checkSize(int h, int w, Spec spec, ImageLimits limits, String source) {
        limits.checkShape(h, w, source);
        int[] best = selectBestResolution(h, w, spec.pinpointsHW());
        limits.checkResized(best[0], best[1], h, w, source);
    }

    /**
     * As {@link #process(ImageProcessor, Path, Spec)} for an encoded image held in memory (PNG, JPEG, BMP, GIF; e.g. a
     * request's {@code data:} URI), as {@link ImageProcessor#process(byte[], String, String)}; {@code source} names it
     * in errors.
     */
    public static AnyResImage process(ImageProcessor processor, byte[] encoded, String source, Spec spec) {
        return process(processor, encoded, source, spec, ImageLimits.DEFAULT);
    }

    /** As {@link #process(ImageProcessor, byte[], String, Spec)} under {@code limits} ({@link #checkSize}). */
    public static AnyResImage process(ImageProcessor processor, byte[] encoded, String source, Spec spec, ImageLimits limits) {
        return process(processor, ImageProcessor.read(encoded, source, (h, w) -> checkSize(h, w, spec, limits, source)), spec);
    }

    static AnyResImage process(ImageProcessor processor, RgbImage img, Spec spec) {
        int p = spec.tileSize();
        if (processor.height() != p || processor.width() != p)
            throw new IllegalArgumentException("processor output " + processor.height() + "x" + processor.width()
                    + " is not the AnyRes tile size " + p + "x" + p);
        PilResize.Filter filter = PilResize.Filter.of(processor.config().resample());
        int imageH = img.height(), imageW = img.width();
        int[] best = selectBestResolution(imageH, imageW, spec.pinpointsHW());
        int[] fit = fitSize(imageH, imageW, best[0], best[1]);
        RgbImage padded = padCentred(PilResize.resize(img, fit[1], fit[0], filter), best[0], best[1]);
        int rows = best[0] / p, cols = best[1] / p, tiles = 1 + rows * cols;
        int tileLen = 3 * p * p;
        float[] pixels = new float[tiles * tileLen];
        ProcessorConfig.Size size = processor.config().size();
        int baseH = size != null && !size.isShortestEdge() ? size.height() : p;
        int baseW = size != null && !size.isShortestEdge() ? size.width() : p;
        RgbImage base = PilResize.resize(img, baseW, baseH, filter);
        System.arraycopy(processor.process(base, false), 0, pixels, 0, tileLen);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) {
                float[] t = processor.process(crop(padded, r * p, c * p, p), false);
                System.arraycopy(t, 0, pixels, (1 + r * cols + c) * tileLen, tileLen);
            }
        return new AnyResImage(pixels, tiles, rows, cols, imageH, imageW, p);
    }

    /** {@code img} pasted on a black {@code h × w} canvas at ((w − iw) // 2, (h − ih) // 2). */
    static RgbImage padCentred(RgbImage img, int h, int w) {
        int top = (h - img.height()) / 2, left = (w - img.width()) / 2;
        byte[] out = new byte[h * w * 3];
        for (int y = 0; y < img.height(); y++)
            System.arraycopy(img.rgb(), y * img.width() * 3, out, ((y + top) * w + left) * 3, img.width() * 3);
        return new RgbImage(w, h, out);
    }

    private static RgbImage crop(RgbImage img, int top, int left, int side) {
        byte[] out = new byte[side * side * 3];
        for (int y = 0; y < side; y++)
            System.arraycopy(img.rgb(), ((top + y) * img.width() + left) * 3, out, y * side * 3, side * 3);
        return new RgbImage(side, side, out);
    }
}
