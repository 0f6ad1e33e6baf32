package io.llava4j.data;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

class ImageProcessorTest {

    @Test
    void tinyImagesAreRescaledAndNormalizedOnly() throws IOException {
        ImageProcessor p = ImageProcessor.load(Fixtures.MODEL);
        assertEquals(16, p.height());
        assertEquals(16, p.width());
        double[] mean = p.config().imageMean(), std = p.config().imageStd();
        for (String name : new String[]{"img0.png", "img1.png"}) {
            Path f = Fixtures.IMAGES.resolve(name);
            BufferedImage bi = ImageIO.read(f.toFile());
            float[] x = p.process(f, "square");
            assertEquals(3 * 16 * 16, x.length);
            for (int y = 0; y < 16; y++)
                for (int xx = 0; xx < 16; xx++) {
                    int rgb = bi.getRGB(xx, y);
                    int[] px = {(rgb >> 16) & 0xff, (rgb >> 8) & 0xff, rgb & 0xff};
                    for (int c = 0; c < 3; c++) {
                        double want = (px[c] / 255.0 - mean[c]) / std[c];
                        assertEquals(want, x[c * 256 + y * 16 + xx], 1e-6, name + " c" + c + " y" + y + " x" + xx);
                    }
                }
            // square images: pad changes nothing
            assertArrayEquals(x, p.process(f, "pad"));
        }
    }

    @Test
    void matchesPilAndTransformersFixtures() throws IOException {
        JsonNode all = Fixtures.json(Fixtures.OWN.resolve("image_cases.json"));
        assertTrue(all.get("cases").size() >= 16);
        for (JsonNode c : all.get("cases")) {
            String name = c.get("name").asText();
            ImageProcessor p = new ImageProcessor(ProcessorConfig.parse(name, c.get("config").toString()));
            assertEquals(c.get("shape").get(1).asInt(), p.height(), name);
            assertEquals(c.get("shape").get(2).asInt(), p.width(), name);
            float[] got = p.process(Fixtures.OWN.resolve("images").resolve(c.get("image").asText()), c.get("aspect").asText());
            JsonNode want = c.get("pixels");
            assertEquals(want.size(), got.length, name);
            double maxDiff = 0;
            for (int i = 0; i < got.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i] - (float) want.get(i).asDouble()));
            assertTrue(maxDiff <= 1e-6, name + ": max difference " + maxDiff);
        }
    }

    @Test
    void decodesLikePilConvertRgb() {
        JsonNode all;
        try {
            all = Fixtures.json(Fixtures.OWN.resolve("image_cases.json"));
        } catch (IOException e) {
            throw new AssertionError(e);
        }
        for (JsonNode d : all.get("decoded")) {
            RgbImage img = ImageProcessor.read(Fixtures.OWN.resolve("images").resolve(d.get("image").asText()));
            String what = d.get("image").asText() + " (PIL mode " + d.get("mode").asText() + ")";
            assertEquals(d.get("width").asInt(), img.width(), what);
            assertEquals(d.get("height").asInt(), img.height(), what);
            JsonNode rgb = d.get("rgb");
            for (int i = 0; i < rgb.size(); i++) assertEquals(rgb.get(i).asInt(), img.rgb()[i] & 0xff, what + " byte " + i);
        }
    }

    @Test
    void padPastesOnMeanColouredSquare() {
        ImageProcessor p = new ImageProcessor(ProcessorConfig.parse("cfg", "{\"size\": {\"shortest_edge\": 6}, \"crop_size\": {\"height\": 6, \"width\": 6},"
                + " \"image_mean\": [0.48145466, 0.4578275, 0.40821073], \"image_std\": [0.26862954, 0.26130258, 0.27577711]}"));
        assertArrayEquals(new int[]{122, 116, 104}, p.background());
        byte[] px = new byte[6 * 2 * 3];
        java.util.Arrays.fill(px, (byte) 200);
        RgbImage wide = new RgbImage(6, 2, px);  // 6 wide, 2 high: pasted at row (6 - 2) // 2 = 2
        RgbImage sq = ImageProcessor.expandToSquare(wide, p.background());
        assertEquals(6, sq.width());
        assertEquals(6, sq.height());
        for (int y = 0; y < 6; y++) {
            int want = y == 2 || y == 3 ? 200 : 122;
            assertEquals(want, sq.get(0, y, 0), "row " + y);
        }
        RgbImage tall = ImageProcessor.expandToSquare(new RgbImage(1, 4, new byte[12]), p.background());
        assertEquals(0, tall.get(1, 0, 0));  // column (4 - 1) // 2 = 1
        assertEquals(116, tall.get(0, 0, 1));
        assertEquals(116, tall.get(2, 3, 1));
        float[] out = p.process(wide, true);
        assertEquals(3 * 36, out.length);
        float mean0 = (122 / 255f - 0.48145466f) / 0.26862954f;
        assertEquals(mean0, out[0], 1e-6);  // top-left: background
        assertEquals((200 / 255f - 0.48145466f) / 0.26862954f, out[2 * 6], 1e-6);  // row 2: the image
    }

    @Test
    void outputSizeAndCropFollowTransformers() {
        ProcessorConfig.Size s = new ProcessorConfig.Size(8, 0, 0);
        assertArrayEquals(new int[]{8, 10}, ImageProcessor.outputSize(17, 23, s));  // int(8 * 23 / 17) = 10
        assertArrayEquals(new int[]{17, 8}, ImageProcessor.outputSize(29, 13, s));
        assertArrayEquals(new int[]{8, 8}, ImageProcessor.outputSize(5, 5, s));
        assertArrayEquals(new int[]{336, 597}, ImageProcessor.outputSize(450, 800, new ProcessorConfig.Size(336, 0, 0)));
        byte[] px = new byte[5 * 3 * 3];
        for (int i = 0; i < px.length; i++) px[i] = (byte) (i / 3);
        RgbImage img = new RgbImage(5, 3, px);
        RgbImage c = ImageProcessor.centerCrop(img, 2, 2);  // top = (3 - 2) // 2 = 0, left = (5 - 2) // 2 = 1
        assertEquals(1, c.get(0, 0, 0));
        assertEquals(7, c.get(1, 1, 0));
    }

    @Test
    void configErrorsNameTheField() {
        DataException e = assertThrows(DataException.class, () -> ProcessorConfig.parse("pp.json",
                "{\"size\": 8, \"crop_size\": 8, \"image_std\": [1, 1, 1]}"));
        assertTrue(e.getMessage().contains("pp.json") && e.getMessage().contains("image_mean"), e.getMessage());
        e = assertThrows(DataException.class, () -> ProcessorConfig.parse("pp.json",
                "{\"size\": 8, \"crop_size\": 8, \"image_mean\": [0.5, 0.5, 0.5]}"));
        assertTrue(e.getMessage().contains("image_std"), e.getMessage());
        e = assertThrows(DataException.class, () -> ProcessorConfig.parse("pp.json",
                "{\"crop_size\": 8, \"image_mean\": [0.5, 0.5, 0.5], \"image_std\": [0.5, 0.5, 0.5]}"));
        assertTrue(e.getMessage().contains("field size"), e.getMessage());
        e = assertThrows(DataException.class, () -> ProcessorConfig.parse("pp.json",
                "{\"size\": 8, \"crop_size\": 8, \"resample\": 0, \"image_mean\": [0.5, 0.5, 0.5], \"image_std\": [0.5, 0.5, 0.5]}"));
        assertTrue(e.getMessage().contains("resample"), e.getMessage());
        ProcessorConfig ok = ProcessorConfig.parse("pp.json", "{\"size\": 336, \"crop_size\": 336, \"feature_extractor_type\": \"CLIPFeatureExtractor\","
                + " \"image_mean\": [0.5, 0.5, 0.5], \"image_std\": [0.5, 0.5, 0.5]}");
        assertEquals(336, ok.size().shortestEdge());
        assertEquals(336, ok.cropSize().height());
        assertEquals(3, ok.resample());
        assertEquals(1 / 255.0, ok.rescaleFactor());
    }

    @Test
    void unreadableImagesAndBadAspectRatio(@TempDir Path dir) throws IOException {
        ImageProcessor p = ImageProcessor.load(Fixtures.MODEL);
        Path junk = dir.resolve("junk.png");
        Files.writeString(junk, "not an image");
        DataException e = assertThrows(DataException.class, () -> p.process(junk, "square"));
        assertTrue(e.getMessage().contains(junk.toString()), e.getMessage());
        Path missing = dir.resolve("missing.png");
        e = assertThrows(DataException.class, () -> p.process(missing, "square"));
        assertTrue(e.getMessage().contains(missing.toString()), e.getMessage());
        e = assertThrows(DataException.class, () -> p.process(Fixtures.IMAGES.resolve("img0.png"), "anyres"));
        assertTrue(e.getMessage().contains("anyres"), e.getMessage());
    }

    @Test
    void readsJpeg(@TempDir Path dir) throws IOException {
        BufferedImage bi = new BufferedImage(20, 12, BufferedImage.TYPE_3BYTE_BGR);
        for (int y = 0; y < 12; y++) for (int x = 0; x < 20; x++) bi.setRGB(x, y, 0x808080);
        Path f = dir.resolve("gray.jpg");
        ImageIO.write(bi, "jpg", f.toFile());
        ImageProcessor p = ImageProcessor.load(Fixtures.MODEL);
        float[] x = p.process(f, "pad");
        assertEquals(3 * 16 * 16, x.length);
        RgbImage img = ImageProcessor.read(f);
        assertEquals(128, img.get(5, 5, 0), 2);
    }

    /** A 117 KB PNG of 40,000,000 x 1 px: refused from its header, naming the file and the limit, before any pixel is decoded. */
    @Test
    void sizeBombsAreRefusedFromTheHeader(@TempDir Path dir) throws IOException {
        Path f = dir.resolve("bomb.png");
        Files.write(f, io.llava4j.TestImages.blackPng(40_000_000, 1));
        assertTrue(Files.size(f) < 200_000, "a small file: " + Files.size(f));
        ImageProcessor p = ImageProcessor.load(Fixtures.MODEL);
        long t0 = System.nanoTime();
        ImageTooLargeException e = assertThrows(ImageTooLargeException.class, () -> p.process(f, "square"));
        assertTrue(System.nanoTime() - t0 < 1_000_000_000L, "refused before decoding");
        assertEquals(ImageLimits.Kind.ASPECT_RATIO, e.kind);
        assertTrue(e.getMessage().contains(f.toString()) && e.getMessage().contains("max_image_aspect_ratio"), e.getMessage());
        assertThrows(ImageTooLargeException.class, () -> ImageProcessor.read(f));
        assertThrows(ImageTooLargeException.class, () -> p.process(Files.readAllBytes(f), "pad", "request image"));

        // within the aspect ratio but over the resized size (shortest edge 16: 4000 x 1 -> 64000 x 16), or padded too large
        Path wide = dir.resolve("wide.png");
        Files.write(wide, io.llava4j.TestImages.blackPng(4000, 1));
        ImageLimits lenient = new ImageLimits(1_000_000, 100_000, 10_000);
        ImageTooLargeException r = assertThrows(ImageTooLargeException.class, () -> p.process(wide, "square", lenient));
        assertEquals(ImageLimits.Kind.RESIZED_PIXELS, r.kind);
        assertTrue(r.getMessage().contains("64000x16") && r.getMessage().contains("max_resized_image_pixels"), r.getMessage());
        ImageTooLargeException padded = assertThrows(ImageTooLargeException.class, () -> p.process(wide, "pad", lenient));
        assertEquals(ImageLimits.Kind.PIXELS, padded.kind);
        assertTrue(padded.getMessage().contains("4000x4000"), padded.getMessage());
        assertEquals(3 * 16 * 16, p.process(wide, "square", new ImageLimits(1_000_000, 2_000_000, 10_000)).length);
    }
}
