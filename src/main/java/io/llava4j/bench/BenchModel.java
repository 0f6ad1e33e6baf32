package io.llava4j.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.config.LlavaConfig;
import io.llava4j.engine.Engine;
import io.llava4j.engine.Tensors;
import io.llava4j.model.Llava;
import io.llava4j.nn.Precision;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * The benchmark model of {@code llava_ref.py bench} (CLIP-S/16 at 224 px: 12 layers width 384; projector 2-layer GELU
 * MLP; LLaMA 12 layers width 768, 12 heads, MLP 2048, vocab 32000; image token 31999; hidden state -2) with seeded
 * random weights spread as llava_ref.py's {@code build} spreads them — no files. With a half precision the tower's
 * and the LLM's matrices are stored in the half type, exactly as {@code Checkpoints.load} stores a loaded model.
 */
public final class BenchModel {
    private BenchModel() {}

    /** llava_ref.py's {@code hf_config("bench")}. */
    public static ObjectNode configJson() {
        ObjectMapper json = new ObjectMapper();
        ObjectNode c = json.createObjectNode();
        c.putArray("architectures").add("LlavaForConditionalGeneration");
        c.put("model_type", "llava").put("image_token_index", 31999).put("projector_hidden_act", "gelu")
                .put("vision_feature_layer", -2).put("vision_feature_select_strategy", "default").put("torch_dtype", "float32");
        c.putObject("vision_config").put("model_type", "clip_vision_model").put("hidden_size", 384).put("intermediate_size", 1536)
                .put("num_hidden_layers", 12).put("num_attention_heads", 6).put("image_size", 224).put("patch_size", 16)
                .put("num_channels", 3).put("hidden_act", "quick_gelu").put("layer_norm_eps", 1e-5);
        c.putObject("text_config").put("model_type", "llama").put("hidden_act", "silu").put("tie_word_embeddings", false)
                .put("hidden_size", 768).put("intermediate_size", 2048).put("num_hidden_layers", 12).put("num_attention_heads", 12)
                .put("num_key_value_heads", 12).put("vocab_size", 32000).put("rms_norm_eps", 1e-6).put("rope_theta", 10000.0)
                .put("max_position_embeddings", 2048);
        return c;
    }

    /**
     * The bench model's config with the LLM of {@code llm}: "bench" (as above), "tinyllama-1.1b" (TinyLlama-1.1B's
     * shape: 22 layers width 2048, MLP 5632, 32 heads, 4 key/value heads, vocab 32000; llama.cpp's decode figures in
     * bench/README.md use it) or "qwen2-0.5b" (the LLM of LLaVA-OneVision-0.5B: Qwen2, 24 layers width 896, MLP 4864,
     * 14 heads, 2 key/value heads, q/k/v biases, vocab 151,936, the head tied to the embedding).
     */
    public static ObjectNode configJson(String llm) {
        ObjectNode c = configJson();
        switch (llm) {
            case "bench" -> {}
            case "tinyllama-1.1b" -> ((ObjectNode) c.get("text_config")).put("hidden_size", 2048).put("intermediate_size", 5632)
                    .put("num_hidden_layers", 22).put("num_attention_heads", 32).put("num_key_value_heads", 4);
            case "qwen2-0.5b" -> ((ObjectNode) c.get("text_config")).put("model_type", "qwen2").put("tie_word_embeddings", true)
                    .put("hidden_size", 896).put("intermediate_size", 4864).put("num_hidden_layers", 24).put("num_attention_heads", 14)
                    .put("num_key_value_heads", 2).put("vocab_size", 151936).put("rope_theta", 1000000.0).put("max_position_embeddings", 32768);
            default -> throw new IllegalArgumentException("--llm " + llm + ": use bench, tinyllama-1.1b or qwen2-0.5b");
        }
        return c;
    }

    /** The config, read through the same parser as a model folder's config.json. */
    public static LlavaConfig config() {
        return config(configJson());
    }

    /** {@code json} (a config.json's tree) read through the same parser as a model folder's config.json. */
    public static LlavaConfig config(ObjectNode json) {
        try {
            Path dir = Files.createTempDirectory("llava4j-bench-config");
            Path file = dir.resolve("config.json");
            try {
                Files.writeString(file, new ObjectMapper().writeValueAsString(json));
                return LlavaConfig.load(dir, null, null);
            } finally {
                Files.deleteIfExists(file);
                Files.deleteIfExists(dir);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The model with seeded weights; matrices of the tower and the LLM in {@code precision}'s storage type. */
    public static Llava build(long seed, Precision precision) {
        return build(config(), seed, precision);
    }

    /** A model of any config with weights seeded and spread as {@link #build(long, Precision)} does. */
    public static Llava build(LlavaConfig config, long seed, Precision precision) {
        Engine.init();
        Llava m = new Llava(config);
        torch.manual_seed(seed);
        try (NoGradGuard g = new NoGradGuard()) {
            for (Map.Entry<String, Tensor> e : Tensors.namedParameters(m).entrySet()) {
                try (PointerScope s = new PointerScope()) { // one parameter's fp32 draw at a time
                    String n = e.getKey();
                    Tensor p = e.getValue();
                    String[] parts = n.split("\\.");
                    boolean norm = n.endsWith("norm.weight") || (parts.length > 1 && parts[parts.length - 2].contains("layernorm"))
                            || n.contains("layer_norm");
                    Tensor r = torch.randn(Tensors.shape(p));
                    if (norm && n.endsWith("weight")) r = r.mul(new Scalar(0.1)).add(new Scalar(1.0));
                    else if (p.dim() >= 2) r = r.mul(new Scalar(1.0 / Math.sqrt((double) p.numel() / p.size(0))));
                    else r = r.mul(new Scalar(0.05));
                    boolean half = precision != Precision.FP32 && p.dim() >= 2 && !n.startsWith("multi_modal_projector.");
                    p.__dispatch_set_data(half ? r.to(precision.storage) : r);
                }
            }
        }
        return m;
    }

    /**
     * Writes the bench model as an HF model folder (config.json + safetensors; no tokenizer): {@code OUT_DIR [--llm
     * bench|tinyllama-1.1b|qwen2-0.5b] [--bf16] [--seed N]}. What {@code bench/decode.sh} loads, to measure loading too.
     */
    public static void main(String[] args) {
        Path out = Path.of(args[0]);
        String llm = "bench";
        Precision p = Precision.FP32;
        long seed = 0;
        for (int i = 1; i < args.length; i++) {
            switch (args[i]) {
                case "--llm" -> llm = args[++i];
                case "--bf16" -> p = Precision.BF16;
                case "--seed" -> seed = Long.parseLong(args[++i]);
                default -> throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        Llava m = build(config(configJson(llm)), seed, p);
        io.llava4j.model.Checkpoints.save(m, io.llava4j.io.Layout.LLAVA_HF, out, null, true);
    }
}
