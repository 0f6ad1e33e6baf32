package io.llava4j;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.zip.CRC32;
import java.util.zip.Deflater;

/** Hostile images for tests, written byte by byte (an encoder would hold every pixel in memory first). */
public final class TestImages {
    private TestImages() {}

    /**
     * A black 8-bit RGB PNG of {@code width × height}, deflated as it is made: 40,000,000 × 1 is a 117 KB file that
     * decodes to 120 MB.
     */
    public static byte[] blackPng(int width, int height) throws IOException {
        ByteArrayOutputStream png = new ByteArrayOutputStream();
        png.write(new byte[]{(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'});
        ByteArrayOutputStream ihdr = new ByteArrayOutputStream();
        DataOutputStream h = new DataOutputStream(ihdr);
        h.writeInt(width);
        h.writeInt(height);
        h.write(new byte[]{8, 2, 0, 0, 0}); // 8 bits, RGB, deflate, adaptive filtering, no interlace
        chunk(png, "IHDR", ihdr.toByteArray());
        Deflater d = new Deflater(9);
        ByteArrayOutputStream idat = new ByteArrayOutputStream();
        byte[] row = new byte[1 + 3 * width], buf = new byte[1 << 16]; // filter type 0, then zeros
        for (int y = 0; y < height; y++) {
            d.setInput(row);
            while (!d.needsInput()) idat.write(buf, 0, d.deflate(buf));
        }
        d.finish();
        while (!d.finished()) idat.write(buf, 0, d.deflate(buf));
        d.end();
        chunk(png, "IDAT", idat.toByteArray());
        chunk(png, "IEND", new byte[0]);
        return png.toByteArray();
    }

    private static void chunk(ByteArrayOutputStream png, String type, byte[] data) throws IOException {
        DataOutputStream o = new DataOutputStream(png);
        o.writeInt(data.length);
        byte[] t = type.getBytes(StandardCharsets.US_ASCII);
        o.write(t);
        o.write(data);
        CRC32 crc = new CRC32();
        crc.update(t);
        crc.update(data);
        o.writeInt((int) crc.getValue());
    }
}
