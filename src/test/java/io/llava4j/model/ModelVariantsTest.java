package io.llava4j.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.TestData;
import io.llava4j.config.LlavaConfig;
import io.llava4j.engine.Tensors;
import io.llava4j.io.HostTensor;
import io.llava4j.io.Layout;
import io.llava4j.io.Safetensors;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** Tied embeddings and the projector types of LLaVA (identity, linear, mlpNx). */
class ModelVariantsTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final Map<String, HostTensor> CASE = TestData.tensors(TestData.expected().resolve("forward-and-grads.safetensors"));

    @Test
    void tiedEmbeddingsUseEmbedTokensAsTheHead(@TempDir Path dir) throws Exception {
        Path tied = dir.resolve("tied");
        Files.createDirectories(tied);
        ObjectNode cfg = (ObjectNode) JSON.readTree(TestData.tinyLlava().resolve("config.json").toFile());
        ((ObjectNode) cfg.get("text_config")).put("tie_word_embeddings", true);
        JSON.writeValue(tied.resolve("config.json").toFile(), cfg);
        Map<String, HostTensor> w = new LinkedHashMap<>(TestData.tensors(TestData.tinyLlava().resolve("model.safetensors")));
        w.remove("language_model.lm_head.weight");
        Safetensors.write(tied.resolve("model.safetensors"), w, Map.of());
        Llava t = Checkpoints.load(tied).model();
        assertFalse(Tensors.namedParameters(t).containsKey("language_model.lm_head.weight"));

        Llava untied = Checkpoints.load(TestData.tinyLlava()).model();
        Tensors.assign(untied.languageModel.lmHead.weight, untied.languageModel.model.embedTokens.weight);
        Tensor px = Tensors.fromHost(CASE.get("case.pixel_values"));
        long[][] ids = {CASE.get("case.input_ids").toLongs()};
        assertTrue(t.forward(px, ids, null).logits().equal(untied.forward(px, ids, null).logits()));
    }

    @Test
    void projectorTypesHaveLlavasShapesAndNames(@TempDir Path dir) throws Exception {
        // an original-layout config whose projector type we vary
        Llava tiny = Checkpoints.load(TestData.tinyLlava()).model();
        Checkpoints.save(tiny, Layout.ORIGINAL_LLAVA, dir, TestData.tinyLlava(), false);
        ObjectNode cfg = (ObjectNode) JSON.readTree(dir.resolve("config.json").toFile());
        long vision = tiny.config.vision().hiddenSize(), text = tiny.config.text().hiddenSize();
        for (String type : new String[]{"linear", "mlp3x_gelu"}) {
            cfg.put("mm_projector_type", type);
            JSON.writeValue(dir.resolve("config.json").toFile(), cfg);
            Llava m = new Llava(LlavaConfig.load(dir, null, null));
            Map<String, Tensor> p = Tensors.namedParameters(m.projector);
            int depth = m.config.projectorDepth();
            assertEquals(type.equals("linear") ? 1 : 3, depth);
            assertEquals(2 * depth, p.size());
            assertArrayEquals(new long[]{text, vision}, Tensors.shape(p.get("linear_1.weight")));
            if (depth == 3) assertArrayEquals(new long[]{text, text}, Tensors.shape(p.get("linear_3.weight")));
            m.projector.resetParameters();
            Tensor y = m.projector.forward(torch.randn(2, 5, vision));
            assertArrayEquals(new long[]{2, 5, text}, Tensors.shape(y));
            for (String n : p.keySet()) {
                String file = Layout.originalProjectorName(Layout.PROJECTOR + n, depth);
                assertEquals(Layout.PROJECTOR + n, Layout.projectorNameFromFile(file, depth), file);
                if (depth == 1) assertTrue(file.equals("model.mm_projector.weight") || file.equals("model.mm_projector.bias"), file);
            }
            if (depth == 3) assertEquals("model.mm_projector.4.bias", Layout.originalProjectorName("multi_modal_projector.linear_3.bias", 3));
        }
        // identity needs equal widths: refused here with the field named
        cfg.put("mm_projector_type", "identity");
        JSON.writeValue(dir.resolve("config.json").toFile(), cfg);
        RuntimeException e = assertThrows(RuntimeException.class, () -> LlavaConfig.load(dir, null, null));
        assertTrue(e.getMessage().contains("mm_projector_type"), e.getMessage());
    }
}
