package io.llava4j.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.TestData;
import io.llava4j.data.AnyRes;
import io.llava4j.data.ImageProcessor;
import io.llava4j.engine.Tensors;
import io.llava4j.io.HostTensor;
import io.llava4j.io.Safetensors;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * LLaVA-1.6 (HF {@code llava_next}): a CLIP tower with its class token dropped ({@code default}), AnyRes without
 * downsampling, {@code image_newline}; the tiny LLaVA-1.5 reference model's weights with a newline added. The rows the
 * model packs for an image equal the processor's count for it, at every size of the reference images and more; a
 * wrong image size breaks the packing.
 */
class LlavaNextClipTest {
    static final ObjectMapper JSON = new ObjectMapper();

    /** The tiny LLaVA as a llava_next folder with the given pinpoints (h, w). */
    static Path llavaNext(Path dir) throws Exception {
        Path src = TestData.tinyLlava();
        ObjectNode c = (ObjectNode) JSON.readTree(src.resolve("config.json").toFile());
        c.put("model_type", "llava_next");
        c.putArray("architectures").add("LlavaNextForConditionalGeneration");
        var pp = c.putArray("image_grid_pinpoints");
        for (int[] p : new int[][]{{16, 32}, {32, 16}, {32, 32}, {48, 16}, {16, 48}}) pp.addArray().add(p[0]).add(p[1]);
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("config.json"), c.toPrettyString());
        Map<String, HostTensor> w = new LinkedHashMap<>(TestData.tensors(src.resolve("model.safetensors")));
        float[] nl = new float[48];
        for (int i = 0; i < nl.length; i++) nl[i] = (float) Math.sin(i);
        w.put("image_newline", HostTensor.ofFloats(new long[]{48}, nl));
        Safetensors.write(dir.resolve("model.safetensors"), w, Map.of("format", "pt"));
        for (String f : new String[]{"preprocessor_config.json", "tokenizer.json", "tokenizer_config.json"})
            if (Files.isRegularFile(src.resolve(f))) Files.copy(src.resolve(f), dir.resolve(f));
        return dir;
    }

    @Test
    void packedRowsEqualTheProcessorsCount(@TempDir Path tmp) throws Exception {
        Llava m = Checkpoints.load(llavaNext(tmp.resolve("next"))).model();
        assertNotNull(m.imageNewline);
        assertEquals(16, m.config.imageFeatureTokens(), "4 x 4 patches, the class token dropped");
        AnyRes.Spec spec = AnyRes.spec(m.config);
        assertNull(spec.maxTiles());
        assertEquals(AnyRes.Rounding.HF, spec.rounding());
        ImageProcessor proc = ImageProcessor.load(tmp.resolve("next/preprocessor_config.json"));
        int images = 0;
        try (var files = Files.list(TestData.tinyData().resolve("images"))) {
            for (Path img : files.sorted().toList()) {
                AnyRes.AnyResImage a = AnyRes.process(proc, img, spec);
                Tensor px = Tensors.floats(a.pixels(), a.tiles(), 3, 16, 16);
                int[][] hw = {{a.imageHeight(), a.imageWidth()}};
                Tensor rows = m.perImage(m.imageFeatures(px), hw).get(0);
                assertEquals(m.imageTokens(a.imageHeight(), a.imageWidth()), rows.size(0), img + ": rows");
                assertEquals(16 + AnyRes.packedGridShape(a.imageHeight(), a.imageWidth(), spec)[0]
                        * (AnyRes.packedGridShape(a.imageHeight(), a.imageWidth(), spec)[1] + 1), rows.size(0));
                // the newline closes every grid row
                Tensor last = rows.get(rows.size(0) - 1);
                assertTrue(last.equal(m.imageNewline), img + ": the last row is image_newline");
                // a size whose grid has other tiles is refused, not packed silently
                int[][] wrong = {{a.imageHeight() * 3, a.imageWidth()}};
                if (AnyRes.grid(wrong[0][0], wrong[0][1], spec).tiles() != a.tiles() - 1)
                    assertThrows(IllegalArgumentException.class, () -> m.perImage(m.imageFeatures(px), wrong));
                images++;
            }
        }
        assertTrue(images > 0);
    }
}
