package io.llava4j.generate;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.TestData;
import io.llava4j.config.LlavaConfig;
import io.llava4j.config.LlavaConfig.Family;
import io.llava4j.data.Conversation.Template;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Greedy generation of the tiny OneVision model (SigLIP + Qwen2 + anyres_max_2) against reference-onevision's
 * {@code expected/generate.json}: the qwen_1_5 prompt the model picks by default, its ids, the image's AnyRes row count
 * and 24 greedy tokens (the reference never stops at {@code <|im_end|>}, so neither does the generator here); and the
 * conversation-template defaults and stop tokens of the new families.
 */
class OnevisionGenerateTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final Path MODEL = TestData.onevision().resolve("tiny-onevision");
    static Assistant ov;
    static JsonNode ref, req;

    @BeforeAll
    static void load() throws IOException {
        ov = Assistant.load(MODEL, Assistant.Options.DEFAULT);
        ref = JSON.readTree(TestData.onevision().resolve("expected/generate.json").toFile());
        req = JSON.readTree(TestData.onevision().resolve("tiny-data/generate.json").toFile());
    }

    @AfterAll
    static void close() {
        ov.close();
    }

    static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) out[i] = array.get(i).asInt();
        return out;
    }

    @Test
    void greedyTokensMatchTheReference() {
        assertEquals("qwen_1_5", ov.defaultConvMode());
        Template t = Template.of(ov.defaultConvMode());
        String prompt = Prompts.runLlava(t, req.get("prompt").asText(), true);
        assertEquals(ref.get("prompt").asText(), prompt);
        int[] ids = ov.encode(prompt, true);
        assertArrayEquals(ints(ref.get("prompt_ids")), ids);

        Assistant.Image img = ov.image(TestData.onevision().resolve("tiny-data/images").resolve(req.get("image").asText()));
        assertArrayEquals(new int[][]{{64, 40}}, img.sizes()); // (height, width) of the 40 px wide, 64 px high PNG
        assertEquals(ref.get("num_image_tokens").asInt(), img.tokens());

        int[] want = ints(ref.get("tokens"));
        Generator.Result r = ov.generate(ov.generator(t).ignoringStopTokens(), img, ids, Sampling.greedy(want.length), null);
        assertArrayEquals(want, r.tokens());
        assertEquals(ids.length - 1 + img.tokens(), r.promptLength());
        assertEquals("length", r.stopReason());
    }

    @Test
    void qwenStopsAtImEndAlsoWhereEosIsEndOfText(@TempDir Path tmp) throws IOException {
        int imEnd = ov.tokenizer().tokenIdOf("<|im_end|>");
        assertEquals(1026, imEnd);
        assertArrayEquals(new int[]{imEnd}, ov.generator(Template.of("qwen_1_5")).stopTokens()); // here EOS is <|im_end|> itself
        assertEquals("", ov.stopString(Template.of("qwen_1_5")));

        // a base Qwen tokenizer: EOS <|endoftext|>
        Path base = tmp.resolve("base");
        Files.createDirectories(base);
        try (Stream<Path> files = Files.list(MODEL)) {
            for (Path f : files.toList()) Files.copy(f, base.resolve(f.getFileName()));
        }
        ObjectNode tc = (ObjectNode) JSON.readTree(base.resolve("tokenizer_config.json").toFile());
        tc.put("eos_token", "<|endoftext|>");
        JSON.writeValue(base.resolve("tokenizer_config.json").toFile(), tc);
        try (Assistant a = Assistant.load(base, Assistant.Options.DEFAULT)) {
            assertEquals(1024, a.tokenizer().eos());
            int[] stops = a.generator(Template.of("qwen_1_5")).stopTokens();
            Arrays.sort(stops);
            assertArrayEquals(new int[]{1024, 1026}, stops);
            assertArrayEquals(new int[]{1024}, a.generator(Template.of("v1")).stopTokens()); // no </s> in a Qwen vocabulary
            // the second greedy token standing in for <|im_end|> (the tiny model never emits it): generation ends there
            int[] ids = ints(ref.get("prompt_ids")), want = ints(ref.get("tokens"));
            Assistant.Image img = a.image(TestData.onevision().resolve("tiny-data/images").resolve(req.get("image").asText()));
            Generator.Result r = a.generate(new Generator(a.model(), 1024, want[1]), img, ids, Sampling.greedy(24), null);
            assertArrayEquals(Arrays.copyOf(want, 2), r.tokens());
            assertEquals("stop", r.stopReason());
            // the stop token is kept in the ids but never in the text
            int[] answer = {ints(ref.get("tokens"))[0], 1026};
            assertFalse(a.decode(answer).contains("<|im_end|>"), a.decode(answer));
            assertEquals(a.decode(new int[]{answer[0]}), a.decode(answer));
        }
    }

    /** Config with another folder model_type (and family), as an original LLaVA / LLaVA-NeXT folder would give. */
    static LlavaConfig as(LlavaConfig c, Family family, String modelType) {
        ObjectNode raw = c.raw().deepCopy();
        raw.put("model_type", modelType);
        return new LlavaConfig(family, c.vision(), c.text(), c.imageTokenIndex(), c.projectorDepth(), c.projectorAct(),
                c.visionFeatureLayer(), c.visionFeatureSelectStrategy(), c.visionTowerFolder(), raw, c.anyres());
    }

    @Test
    void convModeDefaultsFromTheModel() {
        LlavaConfig qwen = ov.model().config, llama = LlavaConfig.load(TestData.tinyLlava(), null, null);
        assertEquals("qwen2", qwen.text().modelType());
        assertEquals("llama", llama.text().modelType());
        assertEquals("qwen_1_5", Assistant.defaultConvMode(qwen));                                   // HF llava_onevision
        assertEquals("v1", Assistant.defaultConvMode(llama));                                         // LLaVA-1.5 (HF llava): unchanged
        assertEquals("qwen_1_5", Assistant.defaultConvMode(as(qwen, Family.ORIGINAL_LLAVA, "llava")));      // original llava + Qwen
        assertEquals("qwen_1_5", Assistant.defaultConvMode(as(qwen, Family.ORIGINAL_LLAVA, "llava_qwen")));
        assertEquals("qwen_1_5", Assistant.defaultConvMode(as(qwen, Family.HF_LLAVA, "llava_next")));
        assertEquals("v1", Assistant.defaultConvMode(as(llama, Family.ORIGINAL_LLAVA, "llava_llama")));
        assertEquals("mistral_instruct", Assistant.defaultConvMode(as(llama, Family.ORIGINAL_LLAVA, "llava_mistral")));
        assertEquals("qwen_1_5", Assistant.defaultConvMode(as(qwen, Family.LLAMA, "qwen2")));       // a plain Qwen2 + tower
        assertEquals("v1", Assistant.defaultConvMode(as(llama, Family.LLAMA, "llama")));
    }
}
