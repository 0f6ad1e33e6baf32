package io.llava4j.generate;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.llava4j.TestData;
import io.llava4j.data.Conversation.Template;
import io.llava4j.engine.Tensors;
import io.llava4j.model.Llava;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** KV-cache decoding against the reference's no-cache greedy run and against a full-sequence argmax loop here. */
class GeneratorTest {
    static Assistant tiny, gqa;

    @BeforeAll
    static void load() {
        tiny = Assistant.load(TestData.tinyLlava(), Assistant.Options.DEFAULT);
        gqa = Assistant.load(TestData.gqa().resolve("model"), Assistant.Options.DEFAULT);
    }

    @AfterAll
    static void close() {
        tiny.close();
        gqa.close();
    }

    static int[] ints(JsonNode a) {
        int[] out = new int[a.size()];
        for (int i = 0; i < out.length; i++) out[i] = a.get(i).asInt();
        return out;
    }

    /** The reference's way: one full forward over prompt + tokens so far per new token, argmax of the last position. */
    static int[] noCacheGreedy(Llava m, Tensor pixels, int[] prompt, int n) {
        long[] ids = Arrays.stream(prompt).asLongStream().toArray();
        int[] out = new int[n];
        try (NoGradGuard g = new NoGradGuard()) {
            for (int i = 0; i < n; i++) {
                Tensor logits = m.forward(pixels, new long[][]{ids}, null).logits(); // [1, L, V]
                out[i] = (int) logits.get(0).get(logits.size(1) - 1).argmax().item_long();
                ids = Arrays.copyOf(ids, ids.length + 1);
                ids[ids.length - 1] = out[i];
            }
        }
        return out;
    }

    @Test
    void greedyTokensEqualTheReference() throws Exception {
        JsonNode ref = new ObjectMapper().readTree(TestData.expected().resolve("generate.json").toFile());
        String prompt = Prompts.runLlava(Template.VICUNA_V1, ref.get("args").get("prompt").asText(), true);
        int[] ids = tiny.encode(prompt, true);
        assertArrayEquals(ints(ref.get("prompt_ids")), ids, "prompt ids of " + prompt);
        Tensor px = tiny.pixels(TestData.tinyData().resolve("images/img0.png"));
        int n = ref.get("tokens").size();
        List<Integer> streamed = new ArrayList<>();
        Generator.Result r = tiny.generator().generate(px, ids, Sampling.greedy(n), t -> streamed.add(t));
        assertArrayEquals(ints(ref.get("tokens")), r.tokens());
        assertEquals("length", r.stopReason());
        assertEquals(Arrays.stream(r.tokens()).boxed().toList(), streamed);
        assertEquals(ids.length - 1 + tiny.model().config.imageFeatureTokens(), r.promptLength());
    }

    /**
     * The bench model's layout at a width whose matrices oneDNN packs (multiples of 64 rows): greedy tokens and the
     * first step's logits of the packed LLM equal the plain one's.
     */
    @Test
    void packedWeightsDecodeAsThePlainOnes() {
        org.junit.jupiter.api.Assumptions.assumeTrue(io.llava4j.nn.PackedWeight.available(), "libtorch without oneDNN");
        com.fasterxml.jackson.databind.node.ObjectNode json = io.llava4j.bench.BenchModel.configJson();
        json.put("image_token_index", 255);
        ((com.fasterxml.jackson.databind.node.ObjectNode) json.get("vision_config")).put("hidden_size", 32).put("intermediate_size", 64)
                .put("num_hidden_layers", 2).put("num_attention_heads", 2).put("image_size", 64);
        ((com.fasterxml.jackson.databind.node.ObjectNode) json.get("text_config")).put("hidden_size", 64).put("intermediate_size", 192)
                .put("num_hidden_layers", 2).put("num_attention_heads", 4).put("num_key_value_heads", 4).put("vocab_size", 256);
        io.llava4j.config.LlavaConfig config = io.llava4j.bench.BenchModel.config(json);
        Llava plain = io.llava4j.bench.BenchModel.build(config, 7, io.llava4j.nn.Precision.FP32);
        Llava packed = io.llava4j.bench.BenchModel.build(config, 7, io.llava4j.nn.Precision.FP32);
        long bytes = InferenceWeights.prepare(packed, io.llava4j.nn.Precision.FP32); // as generate holds fp32 weights
        assertEquals(2L * (4 * 64 * 64 + 3 * 64 * 192) * 4 + 256L * 64 * 4, bytes, "every projection and the head packed");
        int[] ids = new int[40];
        ids[0] = 1;
        ids[1] = 255;
        for (int i = 2; i < ids.length; i++) ids[i] = (i * 37) % 250 + 3;
        float[] px = new float[3 * 64 * 64];
        for (int i = 0; i < px.length; i++) px[i] = (float) Math.sin(0.01 * i);
        Tensor pixels = Tensors.floats(px, 1, 3, 64, 64);
        int[] a = new Generator(packed).generate(pixels, ids, Sampling.greedy(24), null).tokens();
        int[] b = new Generator(plain).generate(pixels, ids, Sampling.greedy(24), null).tokens();
        assertArrayEquals(b, a);
        assertTrue(Arrays.stream(b).distinct().count() > 3, "a varied sequence: " + Arrays.toString(b));
        float[] la = new Generator(packed).firstLogits(pixels, ids), lb = new Generator(plain).firstLogits(pixels, ids);
        for (int i = 0; i < la.length; i++) assertEquals(lb[i], la[i], 1e-4 * (1 + Math.abs(lb[i])), "logit " + i);
        // one decoding step (the few-row path) after the prompt (the many-row path): the same logits
        float[][] step = new float[2][];
        for (int k = 0; k < 2; k++) {
            Llava m = k == 0 ? packed : plain;
            try (org.bytedeco.javacpp.PointerScope s = new org.bytedeco.javacpp.PointerScope(); NoGradGuard g = new NoGradGuard();
                 io.llava4j.model.KvCache cache = new io.llava4j.model.KvCache(config.text(), 1, 64)) {
                m.languageModel.forwardCached(m.embedPrompt(pixels, null, Arrays.stream(ids).asLongStream().toArray()), null, null, cache);
                Tensor e = m.languageModel.model.embedTokens.forward(Tensors.longs(new long[]{b[0]}, 1, 1));
                step[k] = Tensors.toFloats(m.languageModel.head(m.languageModel.forwardCached(e, null, null, cache)));
            }
        }
        for (int i = 0; i < step[0].length; i++) assertEquals(step[1][i], step[0][i], 1e-5 * (1 + Math.abs(step[1][i])), "step logit " + i);
        // a batched decoding step (serve's continuous batching): two rows, each against its own cache
        float[][] batched = new float[2][];
        for (int k = 0; k < 2; k++) {
            Llava m = k == 0 ? packed : plain;
            try (org.bytedeco.javacpp.PointerScope s = new org.bytedeco.javacpp.PointerScope(); NoGradGuard g = new NoGradGuard();
                 io.llava4j.model.KvCache c0 = new io.llava4j.model.KvCache(config.text(), 1, 64);
                 io.llava4j.model.KvCache c1 = new io.llava4j.model.KvCache(config.text(), 1, 64)) {
                m.languageModel.forwardCached(m.embedPrompt(pixels, null, Arrays.stream(ids).asLongStream().toArray()), null, null, c0);
                m.languageModel.forwardCached(m.embedPrompt(pixels, null, Arrays.stream(ids).limit(30).asLongStream().toArray()), null, null, c1);
                Tensor e = m.languageModel.model.embedTokens.forward(Tensors.longs(new long[]{b[0], b[1]}, 2, 1));
                batched[k] = Tensors.toFloats(m.languageModel.head(m.languageModel.forwardDecode(e, new io.llava4j.model.BatchKvCache(List.of(c0, c1)))));
            }
        }
        for (int i = 0; i < batched[0].length; i++)
            assertEquals(batched[1][i], batched[0][i], 1e-5 * (1 + Math.abs(batched[1][i])), "batched step logit " + i);
    }

    @Test
    void firstStepLogitsEqualTheScoreForward() {
        for (Assistant a : List.of(tiny, gqa)) {
            int[] ids = a.encode(Prompts.runLlava(Template.VICUNA_V1, "Describe the image.", true), true);
            Tensor px = a.pixels(TestData.tinyData().resolve("images/img1.png"));
            float[] cached = a.generator().firstLogits(px, ids);
            Tensor full;
            try (NoGradGuard g = new NoGradGuard()) {
                Tensor l = a.model().forward(px, new long[][]{Arrays.stream(ids).asLongStream().toArray()}, null).logits();
                full = l.get(0).get(l.size(1) - 1);
            }
            double err = Tensors.relativeError(Tensors.floats(cached, cached.length), full);
            assertTrue(err < 1e-4, a.name() + ": rel err " + err);
        }
    }

    @Test
    void bf16FirstStepIsCloseToFp32() {
        int[] ids = tiny.encode(Prompts.runLlava(Template.VICUNA_V1, "What shape is on top?", true), true);
        Tensor px = tiny.pixels(TestData.tinyData().resolve("images/img0.png"));
        float[] fp32 = tiny.generator().firstLogits(px, ids);
        try (Assistant bf16 = Assistant.load(TestData.tinyLlava(), new Assistant.Options(null, io.llava4j.nn.Precision.BF16))) {
            float[] half = bf16.generator().firstLogits(px, ids);
            double err = Tensors.relativeError(Tensors.floats(half, half.length), Tensors.floats(fp32, fp32.length));
            assertTrue(err > 0 && err < 2e-2, "bf16 vs fp32 rel err " + err);
            assertEquals(3, bf16.generator().generate(px, ids, Sampling.greedy(3), null).tokens().length);
        }
    }

    @Test
    void cachedGreedyEqualsFullSequenceLoopOnGqa() {
        assertNotEquals(gqa.model().config.text().numAttentionHeads(), gqa.model().config.text().numKeyValueHeads());
        int[] ids = gqa.encode(Prompts.runLlava(Template.VICUNA_V1, "What is in the picture?", true), true);
        Tensor px = gqa.pixels(TestData.gqa().resolve("data/images/img0.png"));
        Generator noStop = new Generator(gqa.model()); // no stop token: always 32 tokens
        Generator.Result r = noStop.generate(px, ids, Sampling.greedy(32), null);
        assertEquals(32, r.tokens().length);
        assertArrayEquals(noCacheGreedy(gqa.model(), px, ids, 32), r.tokens());
        assertTrue(r.cacheBytes() > 0);
    }

    @Test
    void batchWithLeftPaddingGivesEachPromptItsOwnTokens() {
        for (Assistant a : List.of(tiny, gqa)) {
            Generator g = new Generator(a.model()); // no stop token, so every step of every sample is compared
            List<int[]> prompts = List.of(
                    a.encode(Prompts.runLlava(Template.VICUNA_V1, "What shape is on top?", true), true),
                    a.encode(Prompts.runLlava(Template.PLAIN, "A", true), true),
                    a.encode(Prompts.runLlava(Template.VICUNA_V1, "Is there any text in this picture at all, or only shapes?", false), false));
            List<Tensor> px = new ArrayList<>();
            px.add(a.pixels(TestData.tinyData().resolve("images/img0.png")));
            px.add(a.pixels(TestData.tinyData().resolve("images/img1.png")));
            px.add(null);
            List<int[]> batch = g.greedyBatch(px, prompts, 12);
            for (int i = 0; i < prompts.size(); i++) {
                int[] alone = g.generate(px.get(i), prompts.get(i), Sampling.greedy(12), null).tokens();
                assertArrayEquals(alone, batch.get(i), a.name() + " prompt " + i);
            }
        }
    }

    @Test
    void batchStopsEachSampleAtItsStopToken() {
        int[] ids = tiny.encode(Prompts.runLlava(Template.VICUNA_V1, "What shape is on top?", true), true);
        Tensor px = tiny.pixels(TestData.tinyData().resolve("images/img0.png"));
        int[] free = new Generator(tiny.model()).generate(px, ids, Sampling.greedy(8), null).tokens();
        Generator stopAt3 = new Generator(tiny.model(), free[2]); // the third token acts as the stop token
        int firstStop = 0;
        while (free[firstStop] != free[2]) firstStop++;
        List<int[]> out = stopAt3.greedyBatch(List.of(px, px), List.of(ids, ids), 8);
        for (int[] o : out) assertArrayEquals(Arrays.copyOf(free, firstStop + 1), o);
        Generator.Result single = stopAt3.generate(px, ids, Sampling.greedy(8), null);
        assertEquals("stop", single.stopReason());
        assertArrayEquals(Arrays.copyOf(free, firstStop + 1), single.tokens());
    }

    @Test
    void samplingIsSeededAndTopPNarrowsToGreedy() {
        int[] ids = tiny.encode(Prompts.runLlava(Template.VICUNA_V1, "What shape is on top?", true), true);
        Tensor px = tiny.pixels(TestData.tinyData().resolve("images/img0.png"));
        Generator g = new Generator(tiny.model());
        int[] greedy = g.generate(px, ids, Sampling.greedy(16), null).tokens();
        int[] a = g.generate(px, ids, new Sampling(16, 1.0, 1.0, 7), null).tokens();
        int[] b = g.generate(px, ids, new Sampling(16, 1.0, 1.0, 7), null).tokens();
        int[] c = g.generate(px, ids, new Sampling(16, 1.0, 1.0, 8), null).tokens();
        assertArrayEquals(a, b, "same seed, same tokens");
        assertFalse(Arrays.equals(a, c) && Arrays.equals(a, greedy), "seeds 7 and 8 and greedy all agree: sampling looks inert");
        // a nucleus smaller than the top token's mass keeps only the top token: greedy, whatever the temperature
        assertArrayEquals(greedy, g.generate(px, ids, new Sampling(16, 2.0, 1e-6, 3), null).tokens());
        // listener can stop generation
        Generator.Result r = g.generate(px, ids, Sampling.greedy(16), t -> false);
        assertEquals("cancelled", r.stopReason());
        assertEquals(1, r.tokens().length);
    }

    @Test
    void nucleusFollowsHfTopP() {
        float[] logits = {(float) Math.log(0.5), (float) Math.log(0.3), (float) Math.log(0.15), (float) Math.log(0.05)};
        double[] p = TokenPicker.nucleus(logits, 1.0, 0.8);
        // ascending cumulative 0.05, 0.20, 0.50, 1.0: drop while <= 0.2 → the two smallest go
        assertArrayEquals(new double[]{0.5 / 0.8, 0.3 / 0.8, 0, 0}, p, 1e-6);
        double[] all = TokenPicker.nucleus(logits, 1.0, 1.0);
        assertArrayEquals(new double[]{0.5, 0.3, 0.15, 0.05}, all, 1e-6);
        double[] hot = TokenPicker.nucleus(logits, 2.0, 1.0); // softmax(log p / 2) ∝ sqrt(p)
        double z = Math.sqrt(0.5) + Math.sqrt(0.3) + Math.sqrt(0.15) + Math.sqrt(0.05);
        assertEquals(Math.sqrt(0.5) / z, hot[0], 1e-6);
    }
}
