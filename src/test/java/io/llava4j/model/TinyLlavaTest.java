package io.llava4j.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.TestData;
import io.llava4j.config.LlavaConfig;
import io.llava4j.config.LlavaConfig.Family;
import io.llava4j.engine.Tensors;
import io.llava4j.io.HostTensor;
import io.llava4j.io.Layout;
import io.llava4j.io.Safetensors;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.*;

/**
 * TinyLLaVA (model_type tinyllava, TinyLLaVA_Factory names) built from the tiny OneVision weights (SigLIP 2 layers width
 * 32 on 16 px / patch 4 = 16 patches, mlp2x_gelu, Qwen2 width 48 with tied embeddings): it computes what the same weights
 * compute as a transformers {@code llava} folder with layer −2 and {@code default}, its {@code patch} strategy drops the
 * first patch (15 image rows), it loads strictly in its own names, and it saves back to the same files and config.
 */
class TinyLlavaTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    static final Path ONEVISION = TestData.onevision().resolve("tiny-onevision");
    /** The HF llava folder's image token (the OneVision config's, inside the vocabulary of 1040). */
    static final long HF_IMAGE_TOKEN = 1027;

    @TempDir
    Path tmp;

    /** TinyLLaVA's name for a tiny-onevision (transformers 5) tensor; null for {@code model.image_newline} (no AnyRes). */
    static String tinyLlavaName(String key) {
        if (key.equals("model.image_newline")) return null;
        if (key.startsWith("model.vision_tower.")) return "vision_tower._vision_tower." + key.substring("model.vision_tower.".length());
        if (key.startsWith("model.language_model.")) return "language_model.model." + key.substring("model.language_model.".length());
        if (key.equals("model.multi_modal_projector.linear_1.weight")) return "connector._connector.0.weight";
        if (key.equals("model.multi_modal_projector.linear_1.bias")) return "connector._connector.0.bias";
        if (key.equals("model.multi_modal_projector.linear_2.weight")) return "connector._connector.2.weight";
        if (key.equals("model.multi_modal_projector.linear_2.bias")) return "connector._connector.2.bias";
        throw new AssertionError("unexpected tiny-onevision tensor " + key);
    }

    static Map<String, HostTensor> onevisionTensors() throws IOException {
        return Safetensors.read(ONEVISION.resolve("model.safetensors")).tensors();
    }

    static HostTensor copy(HostTensor h) {
        return new HostTensor(h.dtype(), h.shape(), h.data().duplicate());
    }

    static HostTensor zeros(long... shape) {
        long n = 1;
        for (long d : shape) n *= d;
        return HostTensor.ofFloats(shape, new float[(int) n]);
    }

    /** TinyLLaVA's config.json for the tiny weights, as TinyLlavaConfig writes one (resampler fields included, unused). */
    static ObjectNode tinyLlavaConfig() throws IOException {
        JsonNode ov = JSON.readTree(ONEVISION.resolve("config.json").toFile());
        ObjectNode c = JSON.createObjectNode();
        c.putArray("architectures").add("TinyLlavaForConditionalGeneration");
        c.put("model_type", "tinyllava");
        c.put("connector_type", "mlp2x_gelu");
        c.put("hidden_size", 48);
        c.put("vocab_size", 1040);
        c.put("ignore_index", -100);
        c.put("image_aspect_ratio", "square");
        c.put("image_token_index", -200);
        c.put("llm_model_name_or_path", "tiny/qwen2");
        c.put("num_queries", 128);
        c.put("num_resampler_layers", 3);
        c.put("resampler_hidden_size", 768);
        c.putNull("pad_token");
        c.put("tokenizer_model_max_length", 512);
        c.put("tokenizer_padding_side", "right");
        c.put("tune_type_connector", "full");
        c.put("tune_type_llm", "full");
        c.put("tune_type_vision_tower", "frozen");
        c.put("vision_feature_layer", -2);
        c.put("vision_feature_select_strategy", "patch");
        c.put("vision_hidden_size", 32);
        c.put("vision_model_name_or_path", "tiny/siglip");
        c.put("vision_model_name_or_path2", "");
        c.set("text_config", ov.get("text_config").deepCopy());
        ObjectNode vision = ov.get("vision_config").deepCopy();
        vision.remove("vision_use_head"); // TinyLLaVA's SigLIP keeps its head: SiglipVisionConfig's default
        vision.put("model_name_or_path", "tiny/siglip");
        vision.put("model_name_or_path2", "");
        c.set("vision_config", vision);
        return c;
    }

    /** A TinyLLaVA folder of the tiny weights, with the (unused) pooling head's tensors as TinyLLaVA's files carry them. */
    Path tinyLlava(String name, Consumer<ObjectNode> editConfig, Consumer<Map<String, HostTensor>> editWeights) throws IOException {
        Map<String, HostTensor> t = new LinkedHashMap<>();
        onevisionTensors().forEach((k, v) -> {
            String n = tinyLlavaName(k);
            if (n != null) t.put(n, v);
        });
        t.put("vision_tower._vision_tower.vision_model.head.probe", zeros(1, 1, 32));
        t.put("vision_tower._vision_tower.vision_model.head.attention.in_proj_weight", zeros(96, 32));
        t.put("vision_tower._vision_tower.vision_model.head.mlp.fc1.weight", zeros(80, 32));
        editWeights.accept(t);
        ObjectNode c = tinyLlavaConfig();
        editConfig.accept(c);
        return folder(name, c, t);
    }

    Path tinyLlava() throws IOException {
        return tinyLlava("tinyllava", c -> {}, t -> {});
    }

    /** The same weights as a transformers {@code llava} folder (transformers 5 names), layer −2, {@code default}. */
    Path hfLlava(String strategy) throws IOException {
        JsonNode ov = JSON.readTree(ONEVISION.resolve("config.json").toFile());
        ObjectNode c = JSON.createObjectNode();
        c.putArray("architectures").add("LlavaForConditionalGeneration");
        c.put("model_type", "llava");
        c.put("image_token_index", HF_IMAGE_TOKEN);
        c.put("projector_hidden_act", "gelu");
        c.put("vision_feature_layer", -2);
        c.put("vision_feature_select_strategy", strategy);
        c.put("tie_word_embeddings", true);
        c.set("text_config", ov.get("text_config").deepCopy());
        c.set("vision_config", ov.get("vision_config").deepCopy());
        Map<String, HostTensor> t = new LinkedHashMap<>(onevisionTensors());
        t.remove("model.image_newline");
        return folder("llava-" + strategy, c, t);
    }

    private Path folder(String name, ObjectNode config, Map<String, HostTensor> tensors) throws IOException {
        Path dir = Files.createDirectories(tmp.resolve(name));
        Files.writeString(dir.resolve("config.json"), config.toPrettyString());
        Safetensors.write(dir.resolve("model.safetensors"), tensors, Map.of("format", "pt"));
        return dir;
    }

    /** img0_16x16's base tile [1, 3, 16, 16] (its AnyRes tiles after it are not used). */
    static Tensor pixels() {
        Map<String, HostTensor> ex = TestData.tensors(TestData.onevision().resolve("expected/forward-and-grads.safetensors"));
        return Tensors.fromHost(ex.get("img0_16x16.pixel_values")).narrow(0, 0, 1);
    }

    static Llava.Output forward(Llava m, long imageToken) {
        long[] ids = {5, imageToken, 7, 9, 11};
        return m.forward(pixels(), new long[][]{ids}, null);
    }

    @Test
    void configIsReadAsTinyLlava() throws IOException {
        LlavaConfig c = LlavaConfig.load(tinyLlava(), null, null);
        assertEquals(Family.TINYLLAVA, c.family());
        assertEquals("qwen2", c.text().modelType());
        assertTrue(c.vision().isSiglip());
        assertEquals(2, c.vision().numHiddenLayers(), "the whole tower: TinyLLaVA deletes no layer");
        assertEquals(-2, c.visionFeatureLayer());
        assertEquals(1, c.featureLayerIndex(), "hidden state 1 of [embeddings, layer 1, layer 2]");
        assertEquals("default", c.visionFeatureSelectStrategy(), "patch: drop the first row");
        assertEquals(15, c.imageFeatureTokens(), "16 patches less the dropped top-left one");
        assertEquals("mlp2x_gelu", c.projectorType());
        assertEquals(LlavaConfig.LLAVA_IMAGE_TOKEN_INDEX, c.imageTokenIndex());
        assertEquals("square", c.imageAspectRatio());
        assertEquals(512, c.tokenizerModelMaxLength());
        assertEquals("right", c.tokenizerPaddingSide());
        assertNull(c.anyres());
    }

    @Test
    void logitsEqualTheSameWeightsAsHfLlava() throws IOException {
        Checkpoints.Loaded tiny = Checkpoints.load(tinyLlava());
        Checkpoints.Loaded hf = Checkpoints.load(hfLlava("default"));
        assertEquals(Layout.TINYLLAVA, tiny.layout());
        assertEquals(Layout.TRANSFORMERS, hf.layout());
        Llava.Output a = forward(tiny.model(), LlavaConfig.LLAVA_IMAGE_TOKEN_INDEX);
        Llava.Output b = forward(hf.model(), HF_IMAGE_TOKEN);
        assertEquals(4 + 15, a.lengths()[0], "4 text tokens + 15 image rows");
        assertArrayEquals(Tensors.shape(b.logits()), Tensors.shape(a.logits()));
        assertTrue(a.logits().equal(b.logits()), "logits differ: rel err " + Tensors.relativeError(a.logits(), b.logits()));
        assertArrayEquals(Tensors.toLongs(b.labels()), Tensors.toLongs(a.labels()));
    }

    /**
     * The image rows are the projected hidden state 1 without its first (top-left) patch, computed here from the tower's
     * full output: independent of how the model drops the row.
     */
    @Test
    void imageRowsAreHiddenState1WithoutTheFirstPatch() throws IOException {
        Llava tiny = Checkpoints.load(tinyLlava()).model();
        Tensor px = pixels();
        Tensor all = tiny.visionTower.features(px, 1);                       // [1, 16, 32]
        assertEquals(16, all.size(1));
        Tensor want = tiny.projector.forward(all.narrow(1, 1, 15).contiguous()); // [1, 15, 48]
        Tensor got = tiny.imageFeatures(px);
        assertArrayEquals(Tensors.shape(want), Tensors.shape(got), "image rows");
        assertTrue(got.equal(want), "rel err " + Tensors.relativeError(got, want));
        assertEquals(15, tiny.imageTokens(16, 16));
    }

    @Test
    void clsPatchKeepsEveryPatch() throws IOException {
        Llava full = Checkpoints.load(tinyLlava("cls", c -> c.put("vision_feature_select_strategy", "cls_patch"), t -> {})).model();
        assertEquals("full", full.config.visionFeatureSelectStrategy());
        assertEquals(16, full.config.imageFeatureTokens());
        assertEquals(16, full.imageFeatures(pixels()).size(1));
    }

    @Test
    void aTiedHeadInTheFileIsAccepted() throws IOException {
        Path dir = tinyLlava("with-head", c -> {}, t -> t.put("language_model.lm_head.weight", copy(t.get("language_model.model.embed_tokens.weight"))));
        Llava m = Checkpoints.load(dir).model();
        Llava ref = Checkpoints.load(tinyLlava()).model();
        assertTrue(forward(m, -200).logits().equal(forward(ref, -200).logits()));
    }

    /** Score, train and generate take TinyLLaVA's −200 placeholder as the HF folder takes its image token. */
    @Test
    void lossGradientsAndGreedyTokensMatchHfLlava() throws IOException {
        Llava tiny = Checkpoints.load(tinyLlava()).model(), hf = Checkpoints.load(hfLlava("default")).model();
        long[] labels = {-100, -100, 7, 9, 11};
        double[] losses = new double[2];
        Tensor[] grads = new Tensor[2];
        Llava[] models = {tiny, hf};
        long[] tokens = {LlavaConfig.LLAVA_IMAGE_TOKEN_INDEX, HF_IMAGE_TOKEN};
        for (int i = 0; i < 2; i++) {
            Map<String, Tensor> p = Tensors.namedParameters(models[i]);
            p.forEach((n, t) -> t.requires_grad_(!n.startsWith("vision_tower.")));
            Llava.Step step = models[i].forwardBackward(pixels(), new long[][]{{5, tokens[i], 7, 9, 11}}, new long[][]{labels},
                    null, 0, 1.0, false);
            losses[i] = step.loss();
            grads[i] = p.get("multi_modal_projector.linear_1.weight").grad();
        }
        assertTrue(Double.isFinite(losses[0]) && losses[0] > 0);
        assertEquals(losses[1], losses[0], 0.0);
        assertTrue(grads[0].equal(grads[1]), "projector gradient");
        int[] a = new io.llava4j.generate.Generator(tiny).generate(pixels(), new int[]{5, -200, 7},
                io.llava4j.generate.Sampling.greedy(6), null).tokens();
        int[] b = new io.llava4j.generate.Generator(hf).generate(pixels(), new int[]{5, (int) HF_IMAGE_TOKEN, 7},
                io.llava4j.generate.Sampling.greedy(6), null).tokens();
        assertArrayEquals(b, a);
        assertEquals(6, a.length);
    }

    @Test
    void layoutNamesAndDetection() throws IOException {
        assertEquals("connector._connector.0.weight", Layout.TINYLLAVA.fileName("multi_modal_projector.linear_1.weight", 2));
        assertEquals("connector._connector.2.bias", Layout.TINYLLAVA.fileName("multi_modal_projector.linear_2.bias", 2));
        assertEquals("connector._connector.weight", Layout.TINYLLAVA.fileName("multi_modal_projector.linear_1.weight", 1));
        assertEquals("vision_tower._vision_tower.vision_model.post_layernorm.weight",
                Layout.TINYLLAVA.fileName("vision_tower.vision_model.post_layernorm.weight", 2));
        assertEquals("language_model.model.norm.weight", Layout.TINYLLAVA.fileName("language_model.model.norm.weight", 2));
        assertEquals("language_model.lm_head.weight", Layout.TINYLLAVA.fileName("language_model.lm_head.weight", 2));
        assertEquals(Layout.TINYLLAVA, Layout.detect(Safetensors.read(tinyLlava().resolve("model.safetensors")).tensors().keySet()));
        // llava-hf names of the LLM alone stay llava-hf: the tower or the connector makes a TinyLLaVA file
        assertEquals(Layout.LLAVA_HF, Layout.detect(Set.of("language_model.model.norm.weight", "vision_tower.vision_model.post_layernorm.weight",
                "multi_modal_projector.linear_1.weight")));
        assertEquals(Layout.TINYLLAVA, Layout.detect(Set.of("language_model.model.norm.weight", "connector._connector.0.weight")));
    }

    @Test
    void configAndWeightsOfDifferentFamiliesAreRefused() throws IOException {
        Path tiny = tinyLlava(), hf = hfLlava("default");
        Files.copy(hf.resolve("config.json"), tiny.resolve("config.json"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        String m = assertThrows(CheckpointException.class, () -> Checkpoints.load(tiny)).getMessage();
        assertTrue(m.contains("HF_LLAVA") && m.contains("TINYLLAVA layout"), m);
        Files.writeString(hf.resolve("config.json"), tinyLlavaConfig().toPrettyString());
        m = assertThrows(CheckpointException.class, () -> Checkpoints.load(hf)).getMessage();
        assertTrue(m.contains("TINYLLAVA model") && m.contains("TRANSFORMERS layout"), m);
    }

    @Test
    void strictLoadingNamesTinyLlavaKeys() throws IOException {
        Path dir = tinyLlava("broken", c -> {}, t -> {
            t.remove("connector._connector.2.weight");
            t.remove("vision_tower._vision_tower.vision_model.encoder.layers.1.mlp.fc1.weight");
            t.put("connector._connector.4.bias", zeros(48));
            t.put("language_model.model.norm.weight", zeros(47));
        });
        String m = assertThrows(CheckpointException.class, () -> Checkpoints.load(dir)).getMessage();
        for (String part : new String[]{"TINYLLAVA layout", "connector._connector.2.weight",
                "vision_tower._vision_tower.vision_model.encoder.layers.1.mlp.fc1.weight", "connector._connector.4.bias",
                "language_model.model.norm.weight"})
            assertTrue(m.contains(part), "expected '" + part + "' in:\n" + m);
        assertFalse(m.contains("head."), "the pooling head is ignored:\n" + m);
        assertFalse(m.contains("multi_modal_projector"), "names are the file's, not llava4j's:\n" + m);
    }

    @Test
    void saveAndReloadIsBitIdenticalInTheSameLayoutAndConfig() throws IOException {
        Path src = tinyLlava();
        Llava m = Checkpoints.load(src).model();
        Path out = tmp.resolve("saved");
        Checkpoints.save(m, Layout.TINYLLAVA, out, src, false);
        Set<String> srcKeys = Safetensors.read(src.resolve("model.safetensors")).tensors().keySet().stream()
                .filter(k -> !k.contains(".head.")).collect(Collectors.toSet());
        Map<String, HostTensor> saved = Safetensors.read(out.resolve("model.safetensors")).tensors();
        assertEquals(srcKeys, saved.keySet(), "TinyLLaVA names; the unused pooling head is not written");
        assertEquals(JSON.readTree(src.resolve("config.json").toFile()), JSON.readTree(out.resolve("config.json").toFile()));
        Checkpoints.Loaded back = Checkpoints.load(out);
        assertEquals(Layout.TINYLLAVA, back.layout());
        assertEquals(Family.TINYLLAVA, back.model().config.family());
        LayoutTest.assertSameParameters(m, back.model());

        // a trained tensor is written with its new values
        Tensor w = Tensors.namedParameters(m).get("multi_modal_projector.linear_2.weight");
        w.requires_grad_(true);
        try (NoGradGuard g = new NoGradGuard()) {
            w.add_(new Scalar(0.25));
        }
        Path trained = tmp.resolve("trained");
        Checkpoints.save(m, Layout.TINYLLAVA, trained, src, false);
        Llava t = Checkpoints.load(trained).model();
        assertTrue(Tensors.namedParameters(t).get("multi_modal_projector.linear_2.weight").equal(w));
        LayoutTest.assertSameParameters(m, t);
    }

    @Test
    void aTinyLlavaIsNotWrittenInAnotherLayout() throws IOException {
        Llava m = Checkpoints.load(tinyLlava()).model();
        for (Layout l : new Layout[]{Layout.LLAVA_HF, Layout.ORIGINAL_LLAVA}) {
            Path out = tmp.resolve("as-" + l);
            Exception e = assertThrows(RuntimeException.class, () -> Checkpoints.save(m, l, out, null, false));
            assertTrue(e.getMessage().contains("TinyLLaVA"), e.getMessage());
            assertFalse(Files.exists(out));
        }
    }

    @Test
    void inspectPrintsLayoutAndCounts() throws IOException {
        Path dir = tinyLlava();
        PrintStream old = System.out;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        System.setOut(new PrintStream(buf));
        try {
            assertEquals(0, io.llava4j.cli.Main.run("inspect", "--model_name_or_path", dir.toString()));
        } finally {
            System.setOut(old);
        }
        String out = buf.toString();
        assertTrue(out.contains("TINYLLAVA (TINYLLAVA config)"), out);
        assertTrue(out.contains("SigLIP 2 layers"), out);
        assertTrue(out.contains("15 rows per image"), out);
        assertTrue(out.contains("Qwen2 2 layers"), out);
        // SigLIP: 2 layers of width 32 (MLP 80), 16 patches of 4x4x3, no class token, no pre-LN, post-LN; the head not counted
        long h = 32, inter = 80, layers = 2, patches = 16;
        long vision = h * 3 * 16 + h + patches * h + 2 * h
                + layers * (4 * (h * h + h) + 2 * 2 * h + h * inter + inter + inter * h + h);
        assertTrue(out.matches("(?s).*vision\\s+" + String.format("%,d", vision) + "\\n.*"), out);
        long proj = 32 * 48 + 48 + 48 * 48 + 48;
        assertTrue(out.matches("(?s).*projector\\s+" + String.format("%,d", proj) + "\\n.*"), out);
    }

    private static java.util.List<Double> trainLosses(java.util.List<String> flags) throws Exception {
        io.llava4j.train.Trainer t = new io.llava4j.train.Trainer(io.llava4j.cli.TrainCommand.parse(flags.toArray(new String[0])));
        t.run();
        return t.losses();
    }

    /** TinyLLaVA's stage 1 and stage 2 through train's flags, with its qwen2_instruct template; stage 2 writes its layout. */
    @Test
    void trainsBothStagesThroughTheFlags() throws Exception {
        Path model = tinyLlava();
        for (String f : new String[]{"tokenizer.json", "tokenizer_config.json", "preprocessor_config.json"})
            Files.copy(ONEVISION.resolve(f), model.resolve(f));
        Path data = TestData.onevision().resolve("tiny-data");
        java.util.function.BiFunction<Path, String[], java.util.List<String>> flags = (out, more) -> {
            java.util.List<String> f = new java.util.ArrayList<>(java.util.List.of("--model_name_or_path", model.toString(),
                    "--version", "qwen2_instruct", "--data_path", data.resolve("stage2.json").toString(),
                    "--image_folder", data.resolve("images").toString(), "--per_device_train_batch_size", "3",
                    "--max_steps", "3", "--learning_rate", "1e-3", "--lr_scheduler_type", "constant", "--weight_decay", "0",
                    "--logging_steps", "1", "--output_dir", out.toString()));
            f.addAll(java.util.List.of(more));
            return f;
        };
        Path s1 = tmp.resolve("s1"), s2 = tmp.resolve("s2");
        var t1 = trainLosses(flags.apply(s1, new String[]{"--tune_mm_mlp_adapter", "True"}));
        assertTrue(t1.get(2) < t1.get(0), "stage 1 learns: " + t1);
        assertTrue(Files.isRegularFile(s1.resolve("mm_projector.safetensors")));
        var t2 = trainLosses(flags.apply(s2, new String[]{"--pretrain_mm_mlp_adapter",
                s1.resolve("mm_projector.safetensors").toString()}));
        assertTrue(t2.get(2) < t2.get(0), "stage 2 learns: " + t2);
        Checkpoints.Loaded again = Checkpoints.load(s2);
        assertEquals(Layout.TINYLLAVA, again.layout());
        Map<String, HostTensor> in = Safetensors.read(model.resolve("model.safetensors")).tensors();
        Map<String, HostTensor> out = Safetensors.read(s2.resolve("model.safetensors")).tensors();
        String tower = "vision_tower._vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight";
        assertArrayEquals(in.get(tower).toFloats(), out.get(tower).toFloats(), 0f, "the frozen tower is bit-identical");
    }
}
