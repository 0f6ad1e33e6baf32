package io.llava4j.cli;

import io.llava4j.data.Conversation.Template;
import io.llava4j.generate.Assistant;
import io.llava4j.generate.Generator;
import io.llava4j.generate.Prompts;
import io.llava4j.generate.Sampling;
import io.llava4j.generate.StopString;
import io.llava4j.generate.TextStream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.Callable;

/**
 * {@code llava4j chat}: LLaVA's {@code llava.serve.cli} — a multi-turn conversation about one image (given with the
 * first question) in a template of LLaVA's conv_templates ({@code --conv_mode}, default the model's: vicuna_v1 for
 * LLaVA-1.5, qwen_1_5 for Qwen2 LLaVA-NeXT / OneVision), each answer streamed as it is generated and ended, as cli.py
 * ends it, at EOS or the template's stop string ({@code ###} for v0, {@code <|im_end|>} for mpt and qwen_1_5, as a
 * token where the tokenizer has it as one), which is not shown. An empty line or end of input (Ctrl-D) ends it.
 * An answer goes back into the conversation as the text of its tokens without {@code </s>}, followed by the template's
 * {@code </s>} (cli.py keeps the decoded {@code </s>} too, so its prompt ends that turn with two).
 */
@Command(name = "chat", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Chat about an image in the terminal (answers streamed). Ctrl-D or an empty line ends.")
public class ChatCommand implements Callable<Integer> {
    @picocli.CommandLine.Mixin DeviceOption device = new DeviceOption();
    @Option(names = "--model_name_or_path", required = true, description = "LLaVA model folder") Path model;
    @Option(names = "--vision_tower", description = "CLIP folder (original LLaVA folders whose mm_vision_tower is not local)") Path visionTower;
    @Option(names = "--conv_mode", description = "template, a name of LLaVA's conv_templates (default: the model's, v1 for LLaVA-1.5, qwen_1_5 for Qwen2 LLaVA-NeXT / OneVision)") String convMode;
    @Option(names = "--image", required = true, description = "image file") Path image;
    @Option(names = "--max_new_tokens", defaultValue = "512", description = "per answer (default: ${DEFAULT-VALUE})") int maxNewTokens;
    @Option(names = "--temperature", defaultValue = "0.2", description = "0 = greedy (default: ${DEFAULT-VALUE}, as LLaVA's cli)") double temperature;
    @Option(names = "--top_p", defaultValue = "1.0") double topP;
    @Option(names = "--seed", defaultValue = "0") long seed;
    @picocli.CommandLine.Mixin PrecisionOption precisionOption = new PrecisionOption();
    @picocli.CommandLine.Mixin LoadQuantOption quantOption = new LoadQuantOption();

    @Override
    public Integer call() throws Exception {
        device.apply();
        Template given = convMode == null ? null : Template.of(convMode); // an unknown name fails before the model loads
        PrintStream out = System.out;
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        try (Assistant a = Assistant.load(model, new Assistant.Options(visionTower, precisionOption.precision(), quantOption.spec()))) {
            Template template = given != null ? given : Template.of(a.defaultConvMode());
            Generator generator = a.generator(template);
            String stop = a.stopString(template); // "" when the generator stops at it as a token
            Assistant.Image pixels = a.image(image);
            Prompts conv = new Prompts(template);
            for (int turn = 0; ; turn++) {
                out.print("USER: ");
                out.flush();
                String line = in.readLine();
                if (line == null || line.isEmpty()) {
                    out.println("exit...");
                    return 0;
                }
                conv.user(turn == 0 ? Prompts.withImage(line) : line); // the image token sits in the first turn
                int[] ids = a.encode(conv.prompt(), true);
                out.print("ASSISTANT: ");
                out.flush();
                TextStream stream = new TextStream(a.tokenizer());
                StopString keyword = new StopString(stop);
                // each turn samples from its own seed so a conversation replays identically
                Generator.Result r = a.generate(generator, pixels, ids,
                        new Sampling(maxNewTokens, temperature, topP, seed + turn), t -> {
                            out.print(keyword.push(stream.push(t)));
                            out.flush();
                            return !keyword.stopped();
                        });
                out.println(keyword.push(stream.flush()) + keyword.flush());
                conv.answer(StopString.cut(a.decode(r.tokens()), stop).strip());
            }
        }
    }
}
