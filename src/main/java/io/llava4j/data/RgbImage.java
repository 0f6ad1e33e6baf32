package io.llava4j.data;

/**
 * An 8-bit RGB image in memory, what PIL calls an "RGB" image: {@code rgb} holds {@code height * width * 3} bytes,
 * row by row, R G B per pixel (read them with {@code & 0xff}).
 */
record RgbImage(int width, int height, byte[] rgb) {

    RgbImage {
        if (rgb.length != width * height * 3)
            throw new IllegalArgumentException(width + "x" + height + " RGB image needs " + width * height * 3 + " bytes, got " + rgb.length);
    }

    /** The channel {@code c} (0 R, 1 G, 2 B) of pixel (x, y), 0..255. */
    int get(int x, int y, int c) {
        return rgb[(y * width + x) * 3 + c] & 0xff;
    }
}
