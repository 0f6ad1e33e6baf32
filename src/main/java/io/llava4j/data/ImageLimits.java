package io.llava4j.data;

/**
 * How large an image may be before it is decoded and preprocessed, checked from its header (width and height) so that
 * a small file that decodes or resizes to gigabytes (a 40,000,000 × 1 PNG is 117 KB; CLIP's shortest-edge resize
 * would make it 13 G × 336) is refused with an {@link ImageTooLargeException} naming the image and the limit, before
 * any pixel is allocated. Training data and the server check the same way ({@link ImageProcessor}, {@link AnyRes}).
 *
 * @param maxPixels        width × height of the image as decoded, and of the square it is padded to under
 *                         {@code image_aspect_ratio pad}
 * @param maxResizedPixels width × height after the processor's resize (shortest edge kept at {@code size}, so the long
 *                         edge grows with the aspect ratio), before the center crop
 * @param maxAspectRatio   long side / short side
 */
public record ImageLimits(long maxPixels, long maxResizedPixels, double maxAspectRatio) {
    /** PIL's decompression-bomb error threshold (2 × MAX_IMAGE_PIXELS), 32 Mpx after resizing, 200:1. */
    public static final ImageLimits DEFAULT = new ImageLimits(2L * 89_478_485, 1L << 25, 200);

    public ImageLimits {
        if (maxPixels < 1 || maxResizedPixels < 1) throw new IllegalArgumentException("image pixel limits must be >= 1");
        if (!(maxAspectRatio >= 1)) throw new IllegalArgumentException("max_image_aspect_ratio must be >= 1, got " + maxAspectRatio);
    }

    /** Which limit an image is over, by the name of its flag. */
    public enum Kind {
        PIXELS("max_image_pixels"), RESIZED_PIXELS("max_resized_image_pixels"), ASPECT_RATIO("max_image_aspect_ratio");

        public final String flag;

        Kind(String flag) {
            this.flag = flag;
        }
    }

    /** Refuses an image of {@code h × w} over the pixel or aspect-ratio limit; {@code source} names it in the error. */
    public void checkShape(long h, long w, String source) {
        if (h < 1 || w < 1) throw new DataException(source + ": cannot read image: its header says " + w + "x" + h + " pixels");
        if (w * h > maxPixels)
            throw new ImageTooLargeException(Kind.PIXELS, source + ": " + w + "x" + h + " = " + w * h
                    + " pixels; the limit (max_image_pixels) is " + maxPixels);
        double ratio = (double) Math.max(w, h) / Math.min(w, h);
        if (ratio > maxAspectRatio)
            throw new ImageTooLargeException(Kind.ASPECT_RATIO, source + ": " + w + "x" + h + " pixels, an aspect ratio of "
                    + String.format("%.1f", ratio) + ":1; the limit (max_image_aspect_ratio) is " + maxAspectRatio + ":1");
    }

    /** Refuses a resize target of {@code h × w} over {@link #maxResizedPixels}. */
    public void checkResized(long h, long w, long imageH, long imageW, String source) {
        if (w * h > maxResizedPixels)
            throw new ImageTooLargeException(Kind.RESIZED_PIXELS, source + ": the image (" + imageW + "x" + imageH + ") would be resized to "
                    + w + "x" + h + " = " + w * h + " pixels; the limit (max_resized_image_pixels) is " + maxResizedPixels);
    }
}
