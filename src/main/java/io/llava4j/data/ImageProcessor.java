package io.llava4j.data;

import javax.imageio.ImageIO;
import javax.imageio.ImageReader;
import javax.imageio.stream.ImageInputStream;
import javax.imageio.stream.MemoryCacheImageInputStream;
import java.awt.color.ColorSpace;
import java.awt.image.BufferedImage;
import java.awt.image.ColorModel;
import java.awt.image.ComponentColorModel;
import java.awt.image.IndexColorModel;
import java.awt.image.Raster;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Iterator;

/**
 * LLaVA's image preprocessing, the way transformers' (slow, PIL-based) CLIPImageProcessor does it, configured by a
 * {@code preprocessor_config.json}:
 * <ol>
 *   <li>decode and convert to RGB as PIL's {@code Image.open(p).convert("RGB")}: grayscale is replicated, palettes
 *       looked up, alpha dropped (not composited), 16-bit RGB keeps its high byte, 16-bit grayscale is clamped to 255
 *       (PIL's "I" to "RGB"). PNG, BMP and GIF decode bit-exactly; JPEG goes through Java's decoder, which may differ
 *       from libjpeg by a level or two;</li>
 *   <li>aspect ratio {@code pad}: LLaVA's expand2square, the image pasted centred (offset (long - short) // 2) on a
 *       square filled with {@code int(mean * 255)} per channel; {@code square}: nothing;</li>
 *   <li>resize: shortest edge to {@code size.shortest_edge}, long edge {@code int(shortest * long / short)}
 *       (transformers' get_resize_output_image_size), or to {@code size.height x size.width}, with PIL's resampling
 *       ({@link PilResize}) on uint8;</li>
 *   <li>center crop to {@code crop_size}: top = (h - crop_h) // 2, left = (w - crop_w) // 2, zero padding where the
 *       crop is larger than the image (transformers' center_crop);</li>
 *   <li>rescale: {@code float32(pixel * rescale_factor)} (the product in double, as numpy's float64); normalize in
 *       float32: {@code (x - float32(mean)) / float32(std)};</li>
 *   <li>output CHW floats, 3 x {@link #height()} x {@link #width()}.</li>
 * </ol>
 * The output size must be fixed: {@code do_center_crop}, or a resize to height x width.
 */
public final class ImageProcessor {

    private final ProcessorConfig cfg;
    private final PilResize.Filter filter;
    private final int height, width;
    private final float[] mean32, std32;

    public ImageProcessor(ProcessorConfig cfg) {
        this.cfg = cfg;
        this.filter = PilResize.Filter.of(cfg.resample());
        if (cfg.doCenterCrop()) {
            height = cfg.cropSize().height();
            width = cfg.cropSize().width();
        } else if (cfg.doResize() && !cfg.size().isShortestEdge()) {
            height = cfg.size().height();
            width = cfg.size().width();
        } else {
            throw new DataException("preprocessor config: without do_center_crop (and without a height x width size) the output"
                    + " size depends on each image; a fixed size is needed");
        }
        mean32 = new float[3];
        std32 = new float[3];
        for (int c = 0; c < 3; c++) {
            mean32[c] = (float) cfg.imageMean()[c];
            std32[c] = (float) cfg.imageStd()[c];
        }
    }

    /** Reads {@code preprocessor_config.json} from a model folder (or the file itself). */
    public static ImageProcessor load(Path folderOrFile) throws IOException {
        Path file = Files.isDirectory(folderOrFile) ? folderOrFile.resolve("preprocessor_config.json") : folderOrFile;
        return new ImageProcessor(ProcessorConfig.read(file));
    }

    public ProcessorConfig config() {
        return cfg;
    }

    /** Output height (crop height). */
    public int height() {
        return height;
    }

    /** Output width (crop width). */
    public int width() {
        return width;
    }

    /**
     * Reads and preprocesses one image: CHW floats of length 3 * height() * width().
     *
     * @param aspectRatio LLaVA's {@code --image_aspect_ratio}: {@code square} or {@code pad}
     */
    public float[] process(Path imageFile, String aspectRatio) {
        return process(imageFile, aspectRatio, ImageLimits.DEFAULT);
    }

    /** As {@link #process(Path, String)}, refusing from the header an image over {@code limits} ({@link #checkSize}). */
    public float[] process(Path imageFile, String aspectRatio, ImageLimits limits) {
        boolean pad = padding(aspectRatio);
        return process(read(imageFile, (h, w) -> checkSize(h, w, pad, limits, imageFile.toString())), pad);
    }

    /**
     * Refuses an image of {@code h × w} whose preprocessing would go over {@code limits}: its pixels and aspect ratio,
     * the square it is padded to ({@code pad}), and the size this processor's resize makes of it.
     */
    public void checkSize(int h, int w, boolean pad, ImageLimits limits, String source) {
        limits.checkShape(h, w, source);
        long side = Math.max(h, w);
        if (pad && side * side > limits.maxPixels())
            throw new ImageTooLargeException(ImageLimits.Kind.PIXELS, source + ": the image (" + w + "x" + h + ") would be padded to "
                    + side + "x" + side + " = " + side * side + " pixels; the limit (max_image_pixels) is " + limits.maxPixels());
        if (!cfg.doResize()) return;
        long[] hw = resizedSize(pad ? side : h, pad ? side : w, cfg.size());
        limits.checkResized(hw[0], hw[1], h, w, source);
    }

    /** {@link #outputSize} in long arithmetic (no overflow for any header size): {height, width}. */
    static long[] resizedSize(long h, long w, ProcessorConfig.Size size) {
        if (!size.isShortestEdge()) return new long[]{size.height(), size.width()};
        long s = size.shortestEdge(), shortSide = Math.min(w, h), longSide = Math.max(w, h);
        long newLong = (long) ((double) (s * longSide) / shortSide);
        return w <= h ? new long[]{newLong, s} : new long[]{s, newLong};
    }

    /** Checks an image's size from its header before it is decoded: {@code (height, width)}; throws to refuse it. */
    @FunctionalInterface
    interface HeaderCheck {
        void check(int height, int width);
    }

    /** Checks an {@code --image_aspect_ratio} value: true for {@code pad}, false for {@code square}, else an error. */
    public static boolean padding(String aspectRatio) {
        if ("pad".equals(aspectRatio)) return true;
        if ("square".equals(aspectRatio)) return false;
        throw new DataException("image_aspect_ratio \"" + aspectRatio + "\" is not supported (expected square or pad)");
    }

    float[] process(RgbImage img, boolean pad) {
        if (pad) img = expandToSquare(img, background());
        if (cfg.doResize()) {
            int[] hw = outputSize(img.height(), img.width(), cfg.size());
            img = PilResize.resize(img, hw[1], hw[0], filter);
        }
        if (cfg.doCenterCrop()) img = centerCrop(img, cfg.cropSize().height(), cfg.cropSize().width());
        if (img.height() != height || img.width() != width)
            throw new IllegalStateException("preprocessed image is " + img.height() + "x" + img.width() + ", expected " + height + "x" + width);
        int plane = height * width;
        float[] out = new float[3 * plane];
        for (int y = 0; y < height; y++) {
            for (int x = 0; x < width; x++) {
                for (int c = 0; c < 3; c++) {
                    int p = img.get(x, y, c);
                    float v = cfg.doRescale() ? (float) (p * cfg.rescaleFactor()) : (float) p;
                    if (cfg.doNormalize()) v = (v - mean32[c]) / std32[c];
                    out[c * plane + y * width + x] = v;
                }
            }
        }
        return out;
    }

    /** LLaVA's background for expand2square: {@code tuple(int(x * 255) for x in image_mean)}. */
    int[] background() {
        int[] bg = new int[3];
        for (int c = 0; c < 3; c++) bg[c] = (int) (cfg.imageMean()[c] * 255);
        return bg;
    }

    /** transformers' get_resize_output_image_size: {height, width}. */
    static int[] outputSize(int h, int w, ProcessorConfig.Size size) {
        if (!size.isShortestEdge()) return new int[]{size.height(), size.width()};
        int s = size.shortestEdge();
        int shortSide = Math.min(w, h), longSide = Math.max(w, h);
        int newLong = (int) ((double) ((long) s * longSide) / shortSide);
        return w <= h ? new int[]{newLong, s} : new int[]{s, newLong};
    }

    /** LLaVA's expand2square. */
    static RgbImage expandToSquare(RgbImage img, int[] bg) {
        int w = img.width(), h = img.height();
        if (w == h) return img;
        int side = Math.max(w, h);
        int offX = w > h ? 0 : (h - w) / 2;
        int offY = w > h ? (w - h) / 2 : 0;
        byte[] out = new byte[side * side * 3];
        for (int i = 0; i < side * side; i++)
            for (int c = 0; c < 3; c++) out[i * 3 + c] = (byte) bg[c];
        for (int y = 0; y < h; y++)
            System.arraycopy(img.rgb(), y * w * 3, out, ((y + offY) * side + offX) * 3, w * 3);
        return new RgbImage(side, side, out);
    }

    /** transformers' center_crop (channels last), zero padding when the crop is larger than the image. */
    static RgbImage centerCrop(RgbImage img, int ch, int cw) {
        int oh = img.height(), ow = img.width();
        int top = Math.floorDiv(oh - ch, 2), left = Math.floorDiv(ow - cw, 2);
        // offsets into a canvas of max(ch, oh) x max(cw, ow) holding the image at (topPad, leftPad)
        int nh = Math.max(ch, oh), nw = Math.max(cw, ow);
        int topPad = (nh - oh + 1) / 2, leftPad = (nw - ow + 1) / 2;  // ceil((n - o) / 2), n >= o
        top += topPad;
        left += leftPad;
        int y0 = Math.max(0, top), y1 = Math.min(nh, top + ch);
        int x0 = Math.max(0, left), x1 = Math.min(nw, left + cw);
        int outH = y1 - y0, outW = x1 - x0;
        byte[] out = new byte[outH * outW * 3];
        for (int y = 0; y < outH; y++) {
            int sy = y + y0 - topPad;
            if (sy < 0 || sy >= oh) continue;
            for (int x = 0; x < outW; x++) {
                int sx = x + x0 - leftPad;
                if (sx < 0 || sx >= ow) continue;
                System.arraycopy(img.rgb(), (sy * ow + sx) * 3, out, (y * outW + x) * 3, 3);
            }
        }
        return new RgbImage(outW, outH, out);
    }

    /** An image file's (height, width), read from its header without decoding it. */
    public static int[] size(Path file) {
        try (javax.imageio.stream.ImageInputStream in = ImageIO.createImageInputStream(file.toFile())) {
            java.util.Iterator<javax.imageio.ImageReader> readers = in == null ? null : ImageIO.getImageReaders(in);
            if (readers == null || !readers.hasNext()) throw new DataException(file + ": cannot read image: unknown format");
            javax.imageio.ImageReader r = readers.next();
            try {
                r.setInput(in);
                return new int[]{r.getHeight(0), r.getWidth(0)};
            } finally {
                r.dispose();
            }
        } catch (IOException e) {
            throw new DataException(file + ": cannot read image: " + e.getMessage(), e);
        }
    }

    /**
     * Decodes an image file to 8-bit RGB as PIL's {@code Image.open(p).convert("RGB")} does, refusing from its header
     * one over the default {@link ImageLimits} pixels and aspect ratio.
     */
    static RgbImage read(Path file) {
        return read(file, (h, w) -> ImageLimits.DEFAULT.checkShape(h, w, file.toString()));
    }

    /** As {@link #read(Path)}, with {@code check} told the header's size before any pixel is decoded. */
    static RgbImage read(Path file, HeaderCheck check) {
        if (!Files.exists(file)) throw new DataException(file + ": cannot read image: file not found");
        try (ImageInputStream in = ImageIO.createImageInputStream(file.toFile())) {
            return decode(in, file.toString(), check);
        } catch (IOException e) {
            throw new DataException(file + ": cannot read image: " + e.getMessage(), e);
        }
    }

    /** The first image of {@code in} (null: no stream) after {@code check} passed its header's size. */
    private static RgbImage decode(ImageInputStream in, String source, HeaderCheck check) throws IOException {
        Iterator<ImageReader> readers = in == null ? null : ImageIO.getImageReaders(in);
        if (readers == null || !readers.hasNext())
            throw new DataException(source + ": cannot read image: not a format ImageIO decodes (PNG, JPEG, BMP, GIF)");
        ImageReader r = readers.next();
        BufferedImage bi;
        try {
            r.setInput(in, true, true);
            check.check(r.getHeight(0), r.getWidth(0));
            bi = r.read(0, r.getDefaultReadParam());
        } catch (DataException e) {
            throw e;
        } catch (RuntimeException e) {
            throw new DataException(source + ": cannot read image: " + e, e);
        } finally {
            r.dispose();
        }
        return toRgb(bi, source);
    }

    /**
     * As {@link #process(Path, String)} for an encoded image held in memory (PNG, JPEG, BMP, GIF); {@code source} names
     * it in errors.
     */
    public float[] process(byte[] encoded, String aspectRatio, String source) {
        return process(encoded, aspectRatio, source, ImageLimits.DEFAULT);
    }

    /** As {@link #process(byte[], String, String)}, refusing from the header an image over {@code limits} ({@link #checkSize}). */
    public float[] process(byte[] encoded, String aspectRatio, String source, ImageLimits limits) {
        boolean pad = padding(aspectRatio);
        return process(read(encoded, source, (h, w) -> checkSize(h, w, pad, limits, source)), pad);
    }

    /** Decodes an encoded image held in memory to 8-bit RGB, as {@link #read(Path, HeaderCheck)} decodes a file. */
    static RgbImage read(byte[] encoded, String source, HeaderCheck check) {
        try (ImageInputStream in = new MemoryCacheImageInputStream(new ByteArrayInputStream(encoded))) {
            return decode(in, source, check);
        } catch (IOException e) {
            throw new DataException(source + ": cannot read image: " + e.getMessage(), e);
        }
    }

    private static RgbImage toRgb(BufferedImage bi, String file) {
        if (bi == null) throw new DataException(file + ": cannot read image: not a format ImageIO decodes (PNG, JPEG, BMP, GIF)");
        int w = bi.getWidth(), h = bi.getHeight();
        ColorModel cm = bi.getColorModel();
        Raster r = bi.getRaster();
        byte[] out = new byte[w * h * 3];
        if (cm instanceof IndexColorModel) {
            IndexColorModel icm = (IndexColorModel) cm;
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    int i = r.getSample(x, y, 0), o = (y * w + x) * 3;
                    out[o] = (byte) icm.getRed(i);
                    out[o + 1] = (byte) icm.getGreen(i);
                    out[o + 2] = (byte) icm.getBlue(i);
                }
        } else if (cm instanceof ComponentColorModel) {
            int colors = cm.getNumColorComponents();
            int bits = cm.getComponentSize(0);
            int space = cm.getColorSpace().getType();
            boolean gray = colors == 1 && space == ColorSpace.TYPE_GRAY;
            if (!gray && !(colors == 3 && space == ColorSpace.TYPE_RGB))
                throw new DataException(file + ": cannot read image: unsupported color space (" + colors + " color components)");
            if (bits != 8 && bits != 16)
                throw new DataException(file + ": cannot read image: unsupported sample size of " + bits + " bits");
            // PIL: 16-bit grayscale becomes mode "I" and converts to RGB clamped; 16-bit with alpha or RGB keeps the high byte
            boolean clamp16 = gray && bits == 16 && !cm.hasAlpha();
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    int o = (y * w + x) * 3;
                    for (int c = 0; c < 3; c++) {
                        int v = r.getSample(x, y, gray ? 0 : c);
                        if (bits == 16) v = clamp16 ? Math.min(v, 255) : v >> 8;
                        out[o + c] = (byte) v;
                    }
                }
        } else {
            // packed pixels (e.g. BMP's TYPE_INT_RGB): the colour model gives 8-bit sRGB components
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    Object px = r.getDataElements(x, y, null);
                    int o = (y * w + x) * 3;
                    out[o] = (byte) cm.getRed(px);
                    out[o + 1] = (byte) cm.getGreen(px);
                    out[o + 2] = (byte) cm.getBlue(px);
                }
        }
        return new RgbImage(w, h, out);
    }
}
