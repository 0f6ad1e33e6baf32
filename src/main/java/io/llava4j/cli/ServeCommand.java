package io.llava4j.cli;

import io.llava4j.data.Conversation.Template;
import io.llava4j.generate.Assistant;
import io.llava4j.serve.LlavaServer;
import io.llava4j.serve.ServeLimits;
import io.llava4j.serve.ServeOptions;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.net.InetAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;

/**
 * {@code llava4j serve}: an OpenAI-compatible chat server with a web page, over one loaded model. SIGTERM or Ctrl-C
 * (SIGINT) drain it: no new requests (503), running and queued ones finish (up to {@code --drain_timeout}), exit 0.
 */
@Command(name = "serve", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Serve POST /v1/chat/completions (OpenAI format, data: URI images, stream true/false), GET /v1/models, "
                + "GET /health, GET /metrics (Prometheus) and a chat page at /.")
public class ServeCommand implements Callable<Integer> {
    static final String API_KEY_ENV = "LLAVA4J_API_KEY";

    @picocli.CommandLine.Mixin DeviceOption device = new DeviceOption();
    @Option(names = "--model_name_or_path", required = true, description = "LLaVA model folder") Path model;
    @Option(names = "--vision_tower", description = "CLIP folder (original LLaVA folders whose mm_vision_tower is not local)") Path visionTower;
    @Option(names = "--conv_mode", description = "template of every conversation, a name of LLaVA's conv_templates (default: the model's, v1 for LLaVA-1.5, qwen_1_5 for Qwen2 LLaVA-NeXT / OneVision)") String convMode;
    @Option(names = "--served_model_name", description = "the model id clients send and /v1/models lists (default: the model folder's name)") String servedModelName;
    @Option(names = "--host", defaultValue = "127.0.0.1", description = "bind address (default: ${DEFAULT-VALUE}; another needs --api_key or a trusted network)") String host;
    @Option(names = "--port", defaultValue = "8000", description = "default: ${DEFAULT-VALUE}") int port;
    @Option(names = "--api_key", description = "requests to /v1/ and /metrics must send 'Authorization: Bearer KEY' (default: the environment variable " + API_KEY_ENV + "; none: no key asked)") String apiKey;
    @Option(names = "--allowed_hosts", split = ",", description = "Host header names accepted besides the bind address (and localhost on loopback); * accepts any. Others get 421") List<String> allowedHosts = new ArrayList<>();
    @Option(names = "--max_batch", defaultValue = "8", description = "requests generating at once in one continuous decode batch (they join and leave it at token boundaries and share each step's GEMMs); 1 = one at a time (default: ${DEFAULT-VALUE})") int maxBatch;
    @Option(names = "--queue", defaultValue = "4", description = "requests that may wait while the batch is full; more get 429 (default: ${DEFAULT-VALUE})") int queue;
    @Option(names = "--timeout", defaultValue = "300", description = "seconds per request, reading and waiting included; past it 504 (default: ${DEFAULT-VALUE})") double timeout;
    @Option(names = "--drain_timeout", defaultValue = "60", description = "seconds SIGTERM waits for running and queued requests before exiting (default: ${DEFAULT-VALUE})") double drainTimeout;
    @Option(names = "--max_image_bytes", defaultValue = "20971520", description = "default: ${DEFAULT-VALUE}") long maxImageBytes;
    @Option(names = "--max_image_pixels", defaultValue = "40000000", description = "width x height (default: ${DEFAULT-VALUE})") long maxImagePixels;
    @Option(names = "--max_image_aspect_ratio", defaultValue = "200", description = "long side / short side (default: ${DEFAULT-VALUE})") double maxImageAspectRatio;
    @Option(names = "--max_resized_image_pixels", defaultValue = "33554432", description = "width x height after the processor's resize (default: ${DEFAULT-VALUE})") long maxResizedImagePixels;
    @Option(names = "--max_prompt_chars", defaultValue = "65536", description = "characters of the messages' text, checked before tokenizing (default: ${DEFAULT-VALUE})") int maxPromptChars;
    @Option(names = "--max_prompt_tokens", defaultValue = "2048", description = "prompt positions, image rows included (default: ${DEFAULT-VALUE})") int maxPromptTokens;
    @Option(names = "--max_new_tokens", defaultValue = "1024", description = "the most max_tokens a request may ask for (default: ${DEFAULT-VALUE})") int maxNewTokens;
    @picocli.CommandLine.Mixin PrecisionOption precisionOption = new PrecisionOption();
    @picocli.CommandLine.Mixin LoadQuantOption quantOption = new LoadQuantOption();

    @Override
    public Integer call() throws Exception {
        device.apply();
        if (port < 0 || port > 65535) throw new IllegalArgumentException("--port must be in 0..65535, got " + port);
        if (!(drainTimeout >= 0)) throw new IllegalArgumentException("--drain_timeout must be >= 0, got " + drainTimeout);
        ServeLimits limits = new ServeLimits(queue, timeout, maxImageBytes * 4 / 3 + (1 << 20), maxImageBytes, maxImagePixels,
                maxPromptTokens, maxNewTokens).withMaxPromptChars(maxPromptChars).withImageShape(maxImageAspectRatio, maxResizedImagePixels)
                .withMaxBatch(maxBatch);
        String key = apiKey != null ? apiKey : System.getenv(API_KEY_ENV);
        ServeOptions options = new ServeOptions(servedModelName, key == null || key.isEmpty() ? null : key, allowedHosts);
        Template given = convMode == null ? null : Template.of(convMode); // an unknown name fails before the model loads
        CountDownLatch stop = new CountDownLatch(1);
        boolean signals = onSignals(stop);
        try (Assistant a = Assistant.load(model, new Assistant.Options(visionTower, precisionOption.precision(), quantOption.spec()));
             LlavaServer server = new LlavaServer(a, given != null ? given : Template.of(a.defaultConvMode()), limits, options).start(host, port)) {
            System.out.printf("serving %s as %s on http://%s:%d/ (POST /v1/chat/completions, GET /v1/models, GET /health, GET /metrics;"
                            + " template %s; max batch %d%s); Ctrl-C or SIGTERM drains and stops%n", a.name(), server.modelName(), host, server.port(),
                    given != null ? convMode : a.defaultConvMode(), maxBatch, options.apiKey() != null ? "; API key required" : "");
            if (options.apiKey() == null && !InetAddress.getByName(host).isLoopbackAddress())
                System.err.println("warning: serving on " + host + " without --api_key: anyone who reaches it can use the model");
            System.out.flush();
            if (!signals) Runtime.getRuntime().addShutdownHook(new Thread(stop::countDown));
            stop.await();
            System.err.println("draining: no new requests; waiting up to " + drainTimeout + " s for running and queued ones");
            boolean drained = server.drain(Duration.ofMillis((long) (drainTimeout * 1000)));
            System.err.println(drained ? "drained; stopping" : "drain timeout: cancelled what still ran; stopping");
        }
        return 0;
    }

    /**
     * SIGTERM and SIGINT count {@code stop} down instead of exiting at once (a second one exits with 1 without waiting);
     * false where the JVM does not allow it.
     */
    @SuppressWarnings("restriction")
    private static boolean onSignals(CountDownLatch stop) {
        try {
            for (String name : new String[]{"TERM", "INT"}) sun.misc.Signal.handle(new sun.misc.Signal(name), s -> {
                if (stop.getCount() == 0) System.exit(1);
                stop.countDown();
            });
            return true;
        } catch (IllegalArgumentException | UnsupportedOperationException | LinkageError e) {
            return false; // e.g. -Xrs: the shutdown hook stops without draining
        }
    }
}
