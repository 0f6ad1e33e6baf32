package io.llava4j.cli;

import io.llava4j.data.Conversation.Template;
import io.llava4j.generate.Assistant;
import io.llava4j.serve.LlavaServer;
import io.llava4j.serve.ServeLimits;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;

/** {@code llava4j serve}: an OpenAI-compatible chat server with a web page, over one loaded model. */
@Command(name = "serve", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Serve POST /v1/chat/completions (OpenAI format, data: URI images, stream true/false), GET /v1/models, "
                + "GET /health and a chat page at /.")
public class ServeCommand implements Callable<Integer> {
    @picocli.CommandLine.Mixin DeviceOption device = new DeviceOption();
    @Option(names = "--model_name_or_path", required = true, description = "LLaVA model folder") Path model;
    @Option(names = "--vision_tower", description = "CLIP folder (original LLaVA folders whose mm_vision_tower is not local)") Path visionTower;
    @Option(names = "--conv_mode", description = "template of every conversation, a name of LLaVA's conv_templates (default: the model's, v1 for LLaVA-1.5, qwen_1_5 for Qwen2 LLaVA-NeXT / OneVision)") String convMode;
    @Option(names = "--host", defaultValue = "127.0.0.1", description = "default: ${DEFAULT-VALUE}") String host;
    @Option(names = "--port", defaultValue = "8000", description = "default: ${DEFAULT-VALUE}") int port;
    @Option(names = "--queue", defaultValue = "4", description = "requests that may wait while one runs; more get 429 (default: ${DEFAULT-VALUE})") int queue;
    @Option(names = "--timeout", defaultValue = "300", description = "seconds per request, waiting included; past it 504 (default: ${DEFAULT-VALUE})") double timeout;
    @Option(names = "--max_image_bytes", defaultValue = "20971520", description = "default: ${DEFAULT-VALUE}") long maxImageBytes;
    @Option(names = "--max_image_pixels", defaultValue = "40000000", description = "default: ${DEFAULT-VALUE}") long maxImagePixels;
    @Option(names = "--max_prompt_tokens", defaultValue = "2048", description = "prompt positions, image rows included (default: ${DEFAULT-VALUE})") int maxPromptTokens;
    @Option(names = "--max_new_tokens", defaultValue = "1024", description = "the most max_tokens a request may ask for (default: ${DEFAULT-VALUE})") int maxNewTokens;
    @picocli.CommandLine.Mixin PrecisionOption precisionOption = new PrecisionOption();

    @Override
    public Integer call() throws Exception {
        device.apply();
        if (port < 0 || port > 65535) throw new IllegalArgumentException("--port must be in 0..65535, got " + port);
        ServeLimits limits = new ServeLimits(queue, timeout, maxImageBytes * 4 / 3 + (1 << 20), maxImageBytes, maxImagePixels,
                maxPromptTokens, maxNewTokens);
        Template given = convMode == null ? null : Template.of(convMode); // an unknown name fails before the model loads
        try (Assistant a = Assistant.load(model, new Assistant.Options(visionTower, precisionOption.precision()));
             LlavaServer server = new LlavaServer(a, given != null ? given : Template.of(a.defaultConvMode()), limits).start(host, port)) {
            System.out.printf("serving %s on http://%s:%d/ (POST /v1/chat/completions, GET /v1/models, GET /health; template %s); Ctrl-C stops%n",
                    a.name(), host, server.port(), given != null ? convMode : a.defaultConvMode());
            CountDownLatch stop = new CountDownLatch(1);
            Runtime.getRuntime().addShutdownHook(new Thread(stop::countDown));
            stop.await();
        }
        return 0;
    }
}
