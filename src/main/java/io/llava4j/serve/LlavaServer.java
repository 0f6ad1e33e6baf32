package io.llava4j.serve;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.Javalin;
import io.javalin.http.Context;
import io.javalin.http.HttpResponseException;
import io.llava4j.data.Conversation.Template;
import io.llava4j.generate.Assistant;
import io.llava4j.generate.Generator;
import io.llava4j.generate.TextStream;
import org.bytedeco.javacpp.PointerScope;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.UUID;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * An OpenAI-compatible HTTP server over one loaded model (Javalin):
 * <ul>
 *   <li>{@code POST /v1/chat/completions}: OpenAI's chat format with one image as a {@code data:} URI; a JSON answer,
 *       or with {@code "stream": true} server-sent events of {@code chat.completion.chunk}s ending in {@code [DONE]};</li>
 *       ({@code "ignore_eos": true}, as vLLM has it, generates {@code max_tokens} whatever comes);</li>
 *   <li>{@code GET /v1/models}, {@code GET /health}, and a chat page at {@code /}.</li>
 * </ul>
 * Prompts are built in one conversation template (by default the model's, {@link Assistant#defaultConvMode()}) and
 * generation stops at the tokenizer's EOS or the template's stop token ({@link Assistant#generator(Template)}).
 * Requests run one at a time on one worker thread in front of the model; up to {@link ServeLimits#queue()} more wait,
 * the rest get 429. Errors are OpenAI's JSON error object: 400 for a bad request (naming the limit or field), 404 for
 * an unknown model, 429 when the queue is full, 504 when a request runs past its timeout, 500 otherwise.
 */
public final class LlavaServer implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Assistant assistant;
    private final Template template;
    private final Generator generator;
    private final ServeLimits limits;
    private final ThreadPoolExecutor worker;
    private final String page;
    private final long created = System.currentTimeMillis() / 1000;
    private Javalin app;

    /** A server in the model's own conversation template ({@link Assistant#defaultConvMode()}). */
    public LlavaServer(Assistant assistant, ServeLimits limits) {
        this(assistant, Template.of(assistant.defaultConvMode()), limits);
    }

    public LlavaServer(Assistant assistant, Template template, ServeLimits limits) {
        this.assistant = assistant;
        this.template = template;
        this.generator = assistant.generator(template);
        this.limits = limits;
        BlockingQueue<Runnable> waiting = limits.queue() == 0 ? new java.util.concurrent.SynchronousQueue<>() : new ArrayBlockingQueue<>(limits.queue());
        this.worker = new ThreadPoolExecutor(1, 1, 0, TimeUnit.SECONDS, waiting, r -> {
            Thread t = new Thread(r, "llava4j-generate");
            t.setDaemon(true);
            return t;
        });
        try (InputStream in = LlavaServer.class.getResourceAsStream("index.html")) {
            page = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Starts listening; port 0 picks a free port ({@link #port()}). */
    public LlavaServer start(String host, int port) {
        app = Javalin.create(c -> {
            c.showJavalinBanner = false;
            c.startupWatcherEnabled = false;
            c.http.disableCompression();
            c.http.maxRequestSize = limits.maxRequestBytes();
        });
        app.get("/", ctx -> ctx.contentType("text/html; charset=utf-8").result(page));
        app.get("/health", ctx -> json(ctx, 200, health()));
        app.get("/v1/models", ctx -> json(ctx, 200, models()));
        app.post("/v1/chat/completions", this::completions);
        app.exception(ApiError.class, (e, ctx) -> error(ctx, e));
        app.exception(HttpResponseException.class, (e, ctx) -> error(ctx, new ApiError(e.getStatus(), "invalid_request_error",
                e.getStatus() == 404 ? "not_found" : "http_" + e.getStatus(), null, e.getMessage() + ": " + ctx.method() + " " + ctx.path())));
        app.exception(Exception.class, (e, ctx) -> error(ctx, new ApiError(500, "server_error", "internal_error", null,
                e.getClass().getSimpleName() + ": " + e.getMessage())));
        app.start(host, port);
        return this;
    }

    public int port() {
        return app.port();
    }

    @Override
    public void close() {
        if (app != null) app.stop();
        worker.shutdownNow();
    }

    private ObjectNode health() {
        ObjectNode o = JSON.createObjectNode();
        o.put("status", "ok");
        o.put("model", assistant.name());
        o.put("running", worker.getActiveCount());
        o.put("queued", worker.getQueue().size());
        o.put("queue_capacity", limits.queue());
        return o;
    }

    private ObjectNode models() {
        ObjectNode o = JSON.createObjectNode();
        o.put("object", "list");
        ObjectNode m = o.putArray("data").addObject();
        m.put("id", assistant.name());
        m.put("object", "model");
        m.put("created", created);
        m.put("owned_by", "llava4j");
        return o;
    }

    /** One request's run on the worker: tokens as text pieces into {@code events}, then a {@link Generator.Result} or an error. */
    private final class Job implements Runnable {
        final ChatInput in;
        final long deadline;
        final AtomicBoolean cancelled = new AtomicBoolean();
        final AtomicBoolean timedOut = new AtomicBoolean();
        final BlockingQueue<Object> events = new LinkedBlockingQueue<>();
        final CompletableFuture<Generator.Result> done = new CompletableFuture<>();

        Job(ChatInput in, long deadline) {
            this.in = in;
            this.deadline = deadline;
        }

        @Override
        public void run() {
            try (PointerScope scope = new PointerScope()) {
                if (System.nanoTime() > deadline) {
                    timedOut.set(true);
                    throw new TimeoutException("timed out while waiting in the queue");
                }
                TextStream text = new TextStream(assistant.tokenizer());
                Generator g = in.ignoreEos() ? generator.ignoringStopTokens() : generator;
                Generator.Result r = assistant.generate(g, in.image(), in.promptIds(), in.sampling(), t -> {
                    if (cancelled.get()) return false;
                    if (System.nanoTime() > deadline) {
                        timedOut.set(true);
                        return false;
                    }
                    String piece = text.push(t);
                    if (!piece.isEmpty()) events.add(piece);
                    return true;
                });
                String rest = text.flush();
                if (!rest.isEmpty()) events.add(rest);
                events.add(r);
                done.complete(r);
            } catch (Throwable e) {
                events.add(e);
                done.completeExceptionally(e);
            }
        }
    }

    private void completions(Context ctx) throws Exception {
        long arrived = System.nanoTime();
        ChatInput in = ChatInput.parse(body(ctx), assistant, template, limits);
        Job job = new Job(in, arrived + (long) (limits.timeoutSeconds() * 1e9));
        try {
            worker.execute(job);
        } catch (RejectedExecutionException e) {
            throw new ApiError(429, "rate_limit_error", "queue_full", null, "the server is busy: 1 request running and "
                    + limits.queue() + " waiting (the queue limit); retry later");
        }
        String id = "chatcmpl-" + UUID.randomUUID();
        long createdAt = System.currentTimeMillis() / 1000;
        if (in.stream()) stream(ctx, job, id, createdAt);
        else complete(ctx, job, id, createdAt);
    }

    private void complete(Context ctx, Job job, String id, long createdAt) throws Exception {
        Generator.Result r;
        try {
            r = job.done.get(Math.max(1, job.deadline - System.nanoTime()) + TimeUnit.SECONDS.toNanos(5), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            job.cancelled.set(true);
            throw timeout();
        } catch (ExecutionException e) {
            if (job.timedOut.get()) throw timeout();
            throw e.getCause() instanceof Exception ex ? ex : e;
        }
        if (job.timedOut.get()) throw timeout();
        ObjectNode o = JSON.createObjectNode();
        o.put("id", id);
        o.put("object", "chat.completion");
        o.put("created", createdAt);
        o.put("model", job.in.model());
        ObjectNode choice = o.putArray("choices").addObject();
        choice.put("index", 0);
        ObjectNode msg = choice.putObject("message");
        msg.put("role", "assistant");
        msg.put("content", assistant.decode(r.tokens()));
        choice.put("finish_reason", finishReason(r));
        ObjectNode usage = o.putObject("usage");
        usage.put("prompt_tokens", r.promptLength());
        usage.put("completion_tokens", r.tokens().length);
        usage.put("total_tokens", r.promptLength() + r.tokens().length);
        json(ctx, 200, o);
    }

    /** Server-sent events as OpenAI streams them: a role chunk, content chunks, a finish chunk, {@code data: [DONE]}. */
    private void stream(Context ctx, Job job, String id, long createdAt) throws IOException {
        var res = ctx.res();
        res.setStatus(200);
        res.setContentType("text/event-stream; charset=utf-8");
        res.setHeader("Cache-Control", "no-cache");
        res.setHeader("X-Accel-Buffering", "no");
        OutputStream out = res.getOutputStream();
        try {
            ObjectNode delta = JSON.createObjectNode();
            delta.put("role", "assistant");
            delta.put("content", "");
            send(out, chunk(id, createdAt, job.in.model(), delta, null));
            boolean first = true;
            while (true) {
                Object e = job.events.poll(Math.max(1, job.deadline - System.nanoTime()) + TimeUnit.SECONDS.toNanos(5), TimeUnit.NANOSECONDS);
                if (e == null) {
                    job.cancelled.set(true);
                    send(out, errorJson(timeout()));
                    break;
                }
                if (e instanceof String piece) {
                    ObjectNode d = JSON.createObjectNode();
                    d.put("content", first ? piece.stripLeading() : piece); // as the non-streamed answer, which is stripped
                    first = first && piece.isBlank();
                    if (!d.get("content").asText().isEmpty()) send(out, chunk(id, createdAt, job.in.model(), d, null));
                } else if (e instanceof Generator.Result r) {
                    if (job.timedOut.get()) send(out, errorJson(timeout()));
                    else send(out, chunk(id, createdAt, job.in.model(), JSON.createObjectNode(), finishReason(r)));
                    break;
                } else {
                    Throwable t = (Throwable) e;
                    send(out, errorJson(job.timedOut.get() ? timeout()
                            : new ApiError(500, "server_error", "internal_error", null, t.getClass().getSimpleName() + ": " + t.getMessage())));
                    break;
                }
            }
            out.write("data: [DONE]\n\n".getBytes(StandardCharsets.UTF_8));
            out.flush();
        } catch (IOException | InterruptedException e) {
            job.cancelled.set(true); // the client went away: stop generating for it
        }
    }

    private static ObjectNode chunk(String id, long createdAt, String model, ObjectNode delta, String finish) {
        ObjectNode o = JSON.createObjectNode();
        o.put("id", id);
        o.put("object", "chat.completion.chunk");
        o.put("created", createdAt);
        o.put("model", model);
        ObjectNode c = o.putArray("choices").addObject();
        c.put("index", 0);
        c.set("delta", delta);
        if (finish == null) c.putNull("finish_reason"); else c.put("finish_reason", finish);
        return o;
    }

    private static void send(OutputStream out, ObjectNode event) throws IOException {
        out.write(("data: " + JSON.writeValueAsString(event) + "\n\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    private static String finishReason(Generator.Result r) {
        return r.stopReason().equals("stop") ? "stop" : "length";
    }

    private ApiError timeout() {
        return new ApiError(504, "timeout_error", "timeout", null, "the request ran past the server's timeout of "
                + limits.timeoutSeconds() + " s (waiting in the queue included)");
    }

    /** The body, at most maxRequestBytes (read here so the error names the limit). */
    private byte[] body(Context ctx) throws IOException {
        try (InputStream in = ctx.req().getInputStream()) {
            ByteArrayOutputStream b = new ByteArrayOutputStream();
            byte[] buf = new byte[1 << 16];
            for (int n; (n = in.read(buf)) > 0; ) {
                b.write(buf, 0, n);
                if (b.size() > limits.maxRequestBytes())
                    throw ApiError.invalid("request_too_large", null, "the request body is over the server's limit (max_request_bytes) of "
                            + limits.maxRequestBytes() + " bytes");
            }
            return b.toByteArray();
        }
    }

    private static ObjectNode errorJson(ApiError e) {
        ObjectNode o = JSON.createObjectNode();
        ObjectNode err = o.putObject("error");
        err.put("message", e.getMessage());
        err.put("type", e.type);
        if (e.param == null) err.putNull("param"); else err.put("param", e.param);
        err.put("code", e.code);
        return o;
    }

    private static void error(Context ctx, ApiError e) {
        json(ctx, e.status, errorJson(e));
    }

    private static void json(Context ctx, int status, ObjectNode body) {
        try {
            ctx.status(status).contentType("application/json").result(JSON.writeValueAsString(body));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
