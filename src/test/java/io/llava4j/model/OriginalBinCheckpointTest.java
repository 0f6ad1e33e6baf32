package io.llava4j.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.llava4j.TestData;
import io.llava4j.cli.Main;
import io.llava4j.config.LlavaConfig;
import io.llava4j.engine.Tensors;
import io.llava4j.io.Layout;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * An original LLaVA checkpoint as liuhaotian's repos ship it: torch.save shards with an index, a CLIP folder with
 * pytorch_model.bin, image placeholder -200. Made by src/test/resources/original-bin/make_original_bin.py.
 */
class OriginalBinCheckpointTest {
    static Path folder() throws Exception {
        return Path.of(OriginalBinCheckpointTest.class.getResource("/original-bin").toURI());
    }

    @Test
    void loadsToTheSameTensorsAsTheHfFolder() throws Exception {
        Checkpoints.Loaded l = Checkpoints.load(folder());
        assertEquals(Layout.ORIGINAL_LLAVA, l.layout());
        assertEquals(LlavaConfig.LLAVA_IMAGE_TOKEN_INDEX, l.model().config.imageTokenIndex());
        Map<String, Tensor> want = Tensors.namedParameters(Checkpoints.load(TestData.tinyLlava()).model());
        Map<String, Tensor> got = Tensors.namedParameters(l.model());
        assertEquals(want.keySet(), got.keySet());
        for (String n : want.keySet()) assertTrue(want.get(n).equal(got.get(n)), n);
    }

    @Test
    void scoresLikeTheHfFolderWithLlavasImagePlaceholder(@TempDir Path tmp) throws Exception {
        ObjectMapper json = new ObjectMapper();
        double want = json.readTree(TestData.expected().resolve("stage1/reference.json").toFile()).get("losses").get(0).asDouble();
        Path out = tmp.resolve("s.json");
        assertEquals(0, Main.run("score", "--model_name_or_path", folder().toString(),
                "--data_path", TestData.tinyData().resolve("pretrain.json").toString(),
                "--image_folder", TestData.tinyData().resolve("images").toString(), "--version", "plain",
                "--per_device_eval_batch_size", "2", "--output_json", out.toString()));
        assertEquals(want, json.readTree(out.toFile()).get("mean_loss").asDouble(), 1e-4 * want);
    }
}
