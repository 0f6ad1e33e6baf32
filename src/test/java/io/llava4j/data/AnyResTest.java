package io.llava4j.data;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.TextNode;
import io.llava4j.TestData;
import io.llava4j.io.HostTensor;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** AnyRes image side against the OneVision reference (transformers' PIL processor) and the counts in the notes. */
class AnyResTest {
    static final Path REF = Path.of("src/test/resources/reference-onevision");
    static final Path MODEL = REF.resolve("tiny-onevision");
    static final Path IMAGES = REF.resolve("tiny-data/images");
    static final List<int[]> NEXT_HF = AnyRes.pinpointsHW(List.of(new int[]{336, 672}, new int[]{672, 336},
            new int[]{672, 672}, new int[]{1008, 336}, new int[]{336, 1008}), false);
    static final List<int[]> NEXT_ORIGINAL = AnyRes.pinpointsHW(List.of(new int[]{336, 672}, new int[]{672, 336},
            new int[]{672, 672}, new int[]{1008, 336}, new int[]{336, 1008}), true);

    /** The tiny model's settings, read from its files as an HF folder: pinpoints (h, w). */
    static AnyRes.Spec tinySpec(AnyRes.Rounding rounding) throws IOException {
        JsonNode cfg = Fixtures.json(MODEL.resolve("config.json"));
        JsonNode pre = Fixtures.json(MODEL.resolve("preprocessor_config.json"));
        JsonNode vc = cfg.get("vision_config");
        int p = pre.get("size").get("height").asInt();
        return new AnyRes.Spec(p, vc.get("image_size").asInt() / vc.get("patch_size").asInt(),
                AnyRes.pinpointsHW(pre.get("image_grid_pinpoints"), false, p),
                AnyRes.maxTiles(cfg.get("vision_aspect_ratio").asText()), rounding);
    }

    static AnyRes.Spec oneVision() {
        return new AnyRes.Spec(384, 27, AnyRes.pinpointsHW(new TextNode("(1x1),...,(6x6)"), true, 384), 9, AnyRes.Rounding.HF);
    }

    @Test
    void tinyImagesMatchReferencePixelsAndSummary() throws IOException {
        ImageProcessor proc = ImageProcessor.load(MODEL);
        AnyRes.Spec spec = tinySpec(AnyRes.Rounding.HF);
        assertEquals(16, spec.tileSize());
        assertEquals(4, spec.featuresPerSide());
        assertEquals(2, spec.maxTiles());
        Map<String, HostTensor> want = TestData.tensors(REF.resolve("expected/forward-and-grads.safetensors"));
        JsonNode summary = Fixtures.json(REF.resolve("expected/summary.json")).get("images");
        assertEquals(5, summary.size());
        for (JsonNode s : summary) {
            String file = s.get("image").asText(), key = file.replace(".png", "");
            AnyRes.AnyResImage img = AnyRes.process(proc, IMAGES.resolve(file), spec);
            int[] hw = Fixtures.ints(s.get("image_size_hw"));
            assertArrayEquals(hw, new int[]{img.imageHeight(), img.imageWidth()}, file);
            assertArrayEquals(hw, toInts(want.get(key + ".image_size").toLongs()), file);
            assertArrayEquals(Fixtures.ints(s.get("best_resolution_hw")),
                    AnyRes.selectBestResolution(hw[0], hw[1], spec.pinpointsHW()), file);
            assertArrayEquals(Fixtures.ints(s.get("grid_rows_cols")), new int[]{img.gridRows(), img.gridCols()}, file);
            AnyRes.Grid g = AnyRes.grid(hw[0], hw[1], spec);
            assertEquals(img.gridRows(), g.rows(), file);
            assertEquals(img.gridCols(), g.cols(), file);
            assertEquals(s.get("tiles_incl_base").asInt(), img.tiles(), file);
            int tokens = AnyRes.numImageTokens(hw[0], hw[1], spec);
            assertEquals(s.get("num_image_tokens").asInt(), tokens, file);
            assertEquals(want.get(key + ".num_image_tokens").toLongs()[0], tokens, file);
            HostTensor px = want.get(key + ".pixel_values");
            assertArrayEquals(new long[]{img.tiles(), 3, 16, 16}, px.shape(), file);
            float[] w = px.toFloats();
            assertEquals(w.length, img.pixels().length, file);
            for (int i = 0; i < w.length; i++)
                assertEquals(w[i], img.pixels()[i], 0f, file + " value " + i);  // bit-exact
        }
    }

    @Test
    void siglipProcessorResizesStraightWithoutCrop() throws IOException {
        ProcessorConfig cfg = ProcessorConfig.read(MODEL.resolve("preprocessor_config.json"));
        assertFalse(cfg.doCenterCrop(), "LlavaOnevisionImageProcessor has no centre crop");
        ImageProcessor proc = new ImageProcessor(cfg);
        Map<String, HostTensor> want = TestData.tensors(REF.resolve("expected/forward-and-grads.safetensors"));
        // the base tile of the reference is exactly the plain SigLIP processing: resize to 16x16, /255, (x-0.5)/0.5
        for (String key : new String[]{"img1_30x17", "img2_40x64", "img4_17x40"}) {
            float[] got = proc.process(IMAGES.resolve(key + ".png"), "square");
            float[] all = want.get(key + ".pixel_values").toFloats();
            for (int i = 0; i < got.length; i++) assertEquals(all[i], got[i], 0f, key + " value " + i);
        }
        // a CLIP config without do_center_crop still crops (and still needs crop_size)
        assertThrows(DataException.class, () -> ProcessorConfig.parse("clip",
                "{\"size\": {\"shortest_edge\": 8}, \"image_mean\": 0.5, \"image_std\": 0.5}"));
        assertFalse(ProcessorConfig.parse("siglip", "{\"size\": {\"height\": 8, \"width\": 8}, \"image_mean\": 0.5,"
                + " \"image_std\": 0.5, \"image_processor_type\": \"SiglipImageProcessor\"}").doCenterCrop());
    }

    @Test
    void paddingIsBlackAfterNormalisation() throws IOException {
        // img1 (H 17, W 30) is resized to 19x32 inside 32x32, 6 rows of black above: tile (0,0)'s first rows are -1
        AnyRes.AnyResImage img = AnyRes.process(ImageProcessor.load(MODEL), IMAGES.resolve("img1_30x17.png"), tinySpec(AnyRes.Rounding.HF));
        assertArrayEquals(new int[]{19, 32}, AnyRes.fitSize(17, 30, 32, 32));
        int tile = 3 * 16 * 16;
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 6; y++)
                for (int x = 0; x < 16; x++) assertEquals(-1f, img.pixels()[tile + c * 256 + y * 16 + x]);
        assertNotEquals(-1f, img.pixels()[tile + 6 * 16 + 3]);
    }

    @Test
    void llava16TieIsDecidedByPairOrder() {
        // every image <= 336 px ties (336,672) and (672,336); the first listed wins, and which one that is depends on the reading
        for (int[] hw : new int[][]{{16, 16}, {336, 336}, {200, 300}}) {
            assertArrayEquals(new int[]{336, 672}, AnyRes.selectBestResolution(hw[0], hw[1], NEXT_HF));
            assertArrayEquals(new int[]{672, 336}, AnyRes.selectBestResolution(hw[0], hw[1], NEXT_ORIGINAL));
        }
        AnyRes.Spec hf = new AnyRes.Spec(336, 24, NEXT_HF, null, AnyRes.Rounding.HF);
        AnyRes.Spec orig = new AnyRes.Spec(336, 24, NEXT_ORIGINAL, null, AnyRes.Rounding.ORIGINAL);
        assertEquals(new AnyRes.Grid(1, 2), AnyRes.grid(336, 336, hf));     // wide
        assertEquals(new AnyRes.Grid(2, 1), AnyRes.grid(336, 336, orig));   // tall
        assertEquals(1176, AnyRes.numImageTokens(336, 336, hf));
        assertEquals(1176, AnyRes.numImageTokens(336, 336, orig));
        assertEquals(new AnyRes.Grid(1, 2), AnyRes.grid(16, 16, hf));
        assertEquals(new AnyRes.Grid(2, 1), AnyRes.grid(16, 16, orig));
        // the same list read from JSON both ways
        JsonNode list = jsonOf("[[336,672],[672,336],[672,672],[1008,336],[336,1008]]");
        assertArrayEquals(new int[]{672, 336}, AnyRes.pinpointsHW(list, true, 336).get(0));
        assertArrayEquals(new int[]{336, 672}, AnyRes.pinpointsHW(list, false, 336).get(0));
        assertArrayEquals(new int[]{672, 336}, AnyRes.pinpointsHW(new TextNode("[(336, 672), (672, 336)]"), true, 336).get(0));
    }

    @Test
    void tieAndWasteRulesOnTinyImages() {
        List<int[]> tiny = List.of(new int[]{16, 32}, new int[]{32, 32}, new int[]{32, 16}, new int[]{16, 16});
        // img3 (33x70): effective 480 ties with the later (32,32); kept on smaller waste
        assertArrayEquals(new int[]{16, 32}, AnyRes.selectBestResolution(33, 70, tiny));
        // img4 (40x17): effective tie with the earlier (32,32), won by the later (32,16) on smaller waste
        assertArrayEquals(new int[]{32, 16}, AnyRes.selectBestResolution(40, 17, tiny));
    }

    @Test
    void oneVisionCountsFromTheNotes() {
        AnyRes.Spec ov = oneVision();
        assertEquals(36, ov.pinpointsHW().size());
        assertArrayEquals(new int[]{384, 384}, ov.pinpointsHW().get(0));
        assertArrayEquals(new int[]{768, 384}, ov.pinpointsHW().get(1));  // "(1x2)" as (w, h) = (384, 768)
        assertArrayEquals(new int[]{2304, 2304}, ov.pinpointsHW().get(35));
        // (H, W); the notes write these sizes as W x H (PIL's order): 1024x899, 640x480, 2000x500
        expect(ov, 899, 1024, 3, 3, 6551);
        expect(ov, 480, 640, 2, 2, 2929);
        expect(ov, 384, 384, 1, 1, 1485);
        expect(ov, 500, 2000, 2, 6, 7249);
        expect(ov, 1, 500, 1, 2, 784);
        expect(ov, 500, 1, 2, 1, 837);
    }

    private static void expect(AnyRes.Spec spec, int h, int w, int rows, int cols, int tokens) {
        assertEquals(new AnyRes.Grid(rows, cols), AnyRes.grid(h, w, spec), h + "x" + w);
        assertEquals(tokens, AnyRes.numImageTokens(h, w, spec), h + "x" + w);
    }

    @Test
    void unpadRoundingDiffersOnlyNearIntegers() {
        AnyRes.Spec hf = oneVision();
        AnyRes.Spec orig = new AnyRes.Spec(384, 27, hf.pinpointsHW(), 9, AnyRes.Rounding.ORIGINAL);
        // H 47, W 423 on a 1x2 grid: 47 * (54 / 423) = 5.9999999999... -> HF 6 rows, int() 5 rows
        assertEquals(1114, AnyRes.numImageTokens(47, 423, hf));
        assertEquals(1004, AnyRes.numImageTokens(47, 423, orig));
        assertEquals(6, AnyRes.Rounding.HF.apply(47 * (54.0 / 423)));
        assertEquals(5, AnyRes.Rounding.ORIGINAL.apply(47 * (54.0 / 423)));
        assertEquals(2, AnyRes.Rounding.HF.apply(2.5));
        assertEquals(7, AnyRes.Rounding.HF.apply(7.9999));
    }

    @Test
    void pythonFloorDivision() {
        assertEquals(9.0, AnyRes.pyFloorDiv(1, 0.1));   // Python: 1 // 0.1 == 9.0, though 1 / 0.1 == 10.0
        assertEquals(6.0, AnyRes.pyFloorDiv(8, Math.sqrt(1.5)));
        assertEquals(3.0, AnyRes.pyFloorDiv(7, 2));
    }

    @Test
    void aspectRatioNames() {
        assertNull(AnyRes.maxTiles("anyres"));
        assertEquals(9, AnyRes.maxTiles("anyres_max_9"));
        assertThrows(IllegalArgumentException.class, () -> AnyRes.maxTiles("pad"));
        assertThrows(IllegalArgumentException.class, () -> new AnyRes.Spec(16, 4, List.of(new int[]{16, 24}), null, AnyRes.Rounding.HF));
    }

    private static int[] toInts(long[] v) {
        int[] out = new int[v.length];
        for (int i = 0; i < v.length; i++) out[i] = Math.toIntExact(v[i]);
        return out;
    }

    private static JsonNode jsonOf(String s) {
        try {
            return Fixtures.JSON.readTree(s);
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }
}
