package io.llava4j.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.data.Conversation.Template;
import io.llava4j.generate.Assistant;
import io.llava4j.generate.Generator;
import io.llava4j.generate.Prompts;
import io.llava4j.generate.Sampling;
import io.llava4j.io.JsonFiles;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/** {@code llava4j generate}: one answer, the prompt built as LLaVA's {@code run_llava} builds it. */
@Command(name = "generate", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Answer one question about an image (LLaVA's run_llava): greedy at temperature 0, stops at EOS, the template's stop token (<|im_end|> for qwen_1_5) or the limit.")
public class GenerateCommand implements Callable<Integer> {
    @picocli.CommandLine.Mixin DeviceOption device = new DeviceOption();
    @Option(names = "--model_name_or_path", required = true, description = "LLaVA model folder") Path model;
    @Option(names = "--vision_tower", description = "CLIP folder (original LLaVA folders whose mm_vision_tower is not local)") Path visionTower;
    @Option(names = "--image", description = "image file (without one the prompt has no image)") Path image;
    @Option(names = "--prompt", required = true, description = "the question; <image-placeholder> marks where the image goes (else it goes first)") String prompt;
    @Option(names = "--conv_mode", description = "template, a name of LLaVA's conv_templates: v1 / vicuna_v1, llava_v1, v0, llava_v0, llava_llama_2, llama_2, mistral_instruct, chatml_direct, mpt, plain, qwen_1_5 / qwen_2, qwen2_base or qwen2_instruct (default: the model's, v1 for LLaVA-1.5, qwen_1_5 for Qwen2 LLaVA-NeXT / OneVision)") String convMode;
    @Option(names = "--max_new_tokens", defaultValue = "512", description = "default: ${DEFAULT-VALUE}") int maxNewTokens;
    @Option(names = "--temperature", defaultValue = "0", description = "0 = greedy (default: ${DEFAULT-VALUE})") double temperature;
    @Option(names = "--top_p", defaultValue = "1.0", description = "nucleus sampling mass (default: ${DEFAULT-VALUE})") double topP;
    @Option(names = "--seed", defaultValue = "0", description = "sampling seed (default: ${DEFAULT-VALUE})") long seed;
    @picocli.CommandLine.Mixin PrecisionOption precisionOption = new PrecisionOption();
    @picocli.CommandLine.Mixin LoadQuantOption quantOption = new LoadQuantOption();
    @Option(names = "--output_json", description = "also write {tokens, text, conv_mode, prompt, prompt_ids, stop_reason, timings} here") Path output;

    @Override
    public Integer call() throws Exception {
        device.apply();
        Sampling sampling = new Sampling(maxNewTokens, temperature, topP, seed);
        Template given = convMode == null ? null : Template.of(convMode); // an unknown name fails before the model loads
        long t0 = System.nanoTime();
        try (Assistant a = Assistant.load(model, new Assistant.Options(visionTower, precisionOption.precision(), quantOption.spec()))) {
            long loaded = System.nanoTime();
            String mode = given != null ? convMode : a.defaultConvMode();
            Template template = Template.of(mode);
            String text = Prompts.runLlava(template, prompt, image != null);
            int[] ids = a.encode(text, image != null);
            Assistant.Image pixels = image == null ? null : a.image(image);
            Generator.Result r = a.generate(a.generator(template), pixels, ids, sampling, null);
            String answer = a.decode(r.tokens());
            System.out.println(answer);
            if (output != null) {
                ObjectMapper json = new ObjectMapper();
                ObjectNode o = json.createObjectNode();
                o.set("tokens", json.valueToTree(r.tokens()));
                o.put("text", answer);
                o.put("conv_mode", mode);
                o.put("prompt", text);
                o.set("prompt_ids", json.valueToTree(ids));
                o.put("stop_reason", r.stopReason());
                ObjectNode t = o.putObject("timings");
                t.put("load_s", (loaded - t0) / 1e9);
                t.put("time_to_first_token_s", r.prefillNanos() / 1e9);
                t.put("decode_s", r.decodeNanos() / 1e9);
                double tps = r.decodeTokensPerSecond();
                if (Double.isNaN(tps)) t.putNull("decode_tokens_per_s"); else t.put("decode_tokens_per_s", tps);
                t.put("prompt_positions", r.promptLength());
                t.put("kv_cache_bytes", r.cacheBytes());
                JsonFiles.write(output, o);
            }
        }
        return 0;
    }
}
