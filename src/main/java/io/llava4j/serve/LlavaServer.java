package io.llava4j.serve;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.Javalin;
import io.javalin.http.Context;
import io.javalin.http.Handler;
import io.javalin.http.HttpResponseException;
import io.llava4j.data.Conversation.Template;
import io.llava4j.generate.Assistant;
import io.llava4j.generate.ContinuousBatcher;
import io.llava4j.generate.Generator;
import io.llava4j.generate.StopString;
import io.llava4j.generate.TextStream;
import org.bytedeco.javacpp.PointerScope;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * An OpenAI-compatible HTTP server over one loaded model (Javalin):
 * <ul>
 *   <li>{@code POST /v1/chat/completions}: OpenAI's chat format with one image as a {@code data:} URI ({@link ChatInput});
 *       a JSON answer, or with {@code "stream": true} server-sent events of {@code chat.completion.chunk}s ending in
 *       {@code [DONE]} ({@code "ignore_eos": true}, as vLLM has it, generates {@code max_tokens} whatever comes);</li>
 *   <li>{@code GET /v1/models}, {@code GET /v1/models/{id}}, {@code GET /health}, {@code GET /metrics} (Prometheus
 *       text, {@link ServeMetrics}) and a chat page at {@code /}.</li>
 * </ul>
 * Prompts are built in one conversation template (by default the model's, {@link Assistant#defaultConvMode()}) and
 * generation stops at the tokenizer's EOS, the template's stop token or stop string, or a request's {@code stop}.
 *
 * <p>Admission: a request holds one of {@code max_batch + queue} places from before its body is read until its answer
 * is written, so reading, parsing, decoding the image and tokenizing are bounded like generation; with no place free it
 * gets 429 and {@code Retry-After}. Up to {@link ServeLimits#maxBatch} requests generate at once in one continuous
 * decode batch ({@link ContinuousBatcher}: they join and leave it at token boundaries and share each step's GEMMs);
 * with a max batch of 1 they generate one at a time on one worker thread. The timeout runs from arrival (504). A
 * client that closes its connection stops its generation at the next token ({@link ClientWatch}).
 * {@link #drain} stops admitting (503) and lets admitted requests finish.
 *
 * <p>Before any route: the {@code Host} header must name this server (421 otherwise: no DNS rebinding), {@code /v1/}
 * and {@code /metrics} need {@code Authorization: Bearer KEY} when a key is set (401), and a POST must be
 * {@code Content-Type: application/json} (415), which no cross-origin form or simple request can send.
 * Errors are OpenAI's JSON error object; whatever else goes wrong (an {@link Error} included) is a logged JSON 500.
 * One log line per chat request ({@code io.llava4j.serve.requests}).
 */
public final class LlavaServer implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Logger LOG = LoggerFactory.getLogger(LlavaServer.class);
    private static final Logger REQUESTS = LoggerFactory.getLogger("io.llava4j.serve.requests");
    private static final String JOB = "llava4j.job", COUNTED = "llava4j.counted", ERROR = "llava4j.error";

    private final Assistant assistant;
    private final Template template;
    private final Generator generator;
    private final ServeLimits limits;
    private final ServeOptions options;
    private final String modelName;
    private final List<String> templateStops;
    private final Semaphore admission;
    private final ExecutorService worker;       // max batch 1: runs one request at a time
    private final ContinuousBatcher batcher;    // max batch > 1 (null otherwise)
    private final AtomicInteger running = new AtomicInteger();
    private final AtomicInteger inFlight = new AtomicInteger(); // chat requests from before their checks to their log line
    private final Set<Job> jobs = ConcurrentHashMap.newKeySet();
    private final AtomicBoolean draining = new AtomicBoolean();
    private final ServeMetrics metrics;
    private final String page;
    private final long created = System.currentTimeMillis() / 1000;
    private Set<String> hostNames;
    private boolean anyIpHost, anyHost;
    private Javalin app;

    /** A server in the model's own conversation template ({@link Assistant#defaultConvMode()}). */
    public LlavaServer(Assistant assistant, ServeLimits limits) {
        this(assistant, Template.of(assistant.defaultConvMode()), limits);
    }

    public LlavaServer(Assistant assistant, Template template, ServeLimits limits) {
        this(assistant, template, limits, ServeOptions.DEFAULT);
    }

    public LlavaServer(Assistant assistant, Template template, ServeLimits limits, ServeOptions options) {
        this.assistant = assistant;
        this.template = template;
        this.generator = assistant.generator(template);
        this.limits = limits;
        this.options = options;
        this.modelName = options.servedModelName() != null ? options.servedModelName() : assistant.name();
        String stop = assistant.stopString(template);
        this.templateStops = stop.isEmpty() ? List.of() : List.of(stop);
        this.admission = new Semaphore(places());
        this.metrics = new ServeMetrics(this::queued, running::get, this::batchSize);
        if (limits.maxBatch() > 1) {
            this.worker = null;
            this.batcher = assistant.batcher(limits.maxBatch(), metrics::decodeStep);
        } else {
            this.batcher = null;
            this.worker = Executors.newSingleThreadExecutor(r -> {
                Thread t = new Thread(r, "llava4j-generate");
                t.setDaemon(true);
                return t;
            });
        }
        try (InputStream in = LlavaServer.class.getResourceAsStream("index.html")) {
            page = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Starts listening; port 0 picks a free port ({@link #port()}). */
    public LlavaServer start(String host, int port) {
        allowHosts(host);
        app = Javalin.create(c -> {
            c.showJavalinBanner = false;
            c.startupWatcherEnabled = false;
            c.http.disableCompression();
            c.http.maxRequestSize = limits.maxRequestBytes();
            c.requestLogger.http(this::logged);
        });
        app.before(guarded(this::guard));
        app.get("/", guarded(ctx -> ctx.contentType("text/html; charset=utf-8").result(page)));
        app.get("/health", guarded(ctx -> json(ctx, draining.get() ? 503 : 200, health())));
        app.get("/metrics", guarded(ctx -> ctx.contentType("text/plain; version=0.0.4; charset=utf-8").result(metrics.scrape())));
        app.get("/v1/models", guarded(ctx -> json(ctx, 200, models())));
        app.get("/v1/models/{id}", guarded(ctx -> {
            if (!ctx.pathParam("id").equals(modelName))
                throw new ApiError(404, "invalid_request_error", "model_not_found", "model",
                        "The model '" + ctx.pathParam("id") + "' does not exist; this server serves '" + modelName + "'");
            json(ctx, 200, model());
        }));
        app.post("/v1/chat/completions", guarded(this::completions));
        app.exception(ApiError.class, (e, ctx) -> error(ctx, e));
        app.exception(HttpResponseException.class, (e, ctx) -> error(ctx, new ApiError(e.getStatus(), "invalid_request_error",
                e.getStatus() == 404 ? "not_found" : "http_" + e.getStatus(), null, e.getMessage() + ": " + ctx.method() + " " + ctx.path())));
        app.exception(Exception.class, (e, ctx) -> error(ctx, internal(ctx, e)));
        app.start(host, port);
        return this;
    }

    public int port() {
        return app.port();
    }

    /** The model id requests name ({@link ServeOptions#servedModelName()} or the model folder's name). */
    public String modelName() {
        return modelName;
    }

    /**
     * Stops admitting (new chat requests get 503, {@code /health} says {@code draining}) and waits up to {@code timeout}
     * for admitted requests, running and queued, to finish; past it, cancels what still runs. True if all finished.
     */
    public boolean drain(Duration timeout) throws InterruptedException {
        draining.set(true);
        int places = places();
        boolean done = admission.tryAcquire(places, timeout.toNanos(), TimeUnit.NANOSECONDS);
        if (!done) {
            for (Job j : jobs) j.cancelled.set(true);
            if (admission.tryAcquire(places, 5, TimeUnit.SECONDS)) admission.release(places);
        } else {
            admission.release(places);
        }
        // answers are written once their place is given back (errors by Javalin after the handler): let them finish
        for (long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(5); inFlight.get() > 0 && System.nanoTime() < until; )
            Thread.sleep(10);
        return done;
    }

    @Override
    public void close() {
        if (app != null) app.stop();
        if (worker != null) worker.shutdownNow();
        if (batcher != null) batcher.close();
    }

    /** Admission places: the rows of the decode batch and the queue. */
    private int places() {
        return limits.maxBatch() + limits.queue();
    }

    private int queued() {
        return Math.max(0, places() - admission.availablePermits() - running.get());
    }

    /** Rows in the decode batch now (with a max batch of 1: the one running request, or none). */
    private int batchSize() {
        return batcher != null ? batcher.batchSize() : running.get();
    }

    // ---- checks before every route ----

    /** The Host names this server answers to: the bind address; loopback names when bound to loopback; --allowed_hosts. */
    private void allowHosts(String bind) {
        hostNames = new HashSet<>();
        for (String h : options.allowedHosts()) hostNames.add(hostName(h.strip()));
        anyHost = hostNames.contains("*");
        String b = hostName(bind);
        hostNames.add(b);
        try {
            InetAddress a = InetAddress.getByName(bind.startsWith("[") ? bind.substring(1, bind.length() - 1) : bind);
            if (a.isLoopbackAddress()) hostNames.addAll(List.of("localhost", "127.0.0.1", "[::1]"));
            if (a.isAnyLocalAddress()) { // every interface: any address literal (a rebinding attack needs a name), and localhost
                anyIpHost = true;
                hostNames.add("localhost");
            }
        } catch (IOException e) {
            // a name that does not resolve here: only itself
        }
    }

    /** A Host header's name: lowercase, without the port and a trailing dot; IPv6 literals in brackets. */
    static String hostName(String host) {
        String h = host.toLowerCase(Locale.ROOT);
        if (h.startsWith("[")) {
            int end = h.indexOf(']');
            return end < 0 ? h : h.substring(0, end + 1);
        }
        if (h.indexOf(':') != h.lastIndexOf(':')) return "[" + h + "]"; // a bare IPv6 address (a bind address)
        int colon = h.indexOf(':');
        if (colon >= 0) h = h.substring(0, colon);
        return h.endsWith(".") ? h.substring(0, h.length() - 1) : h;
    }

    private static boolean isIpLiteral(String name) {
        return name.startsWith("[") || name.matches("\\d{1,3}(\\.\\d{1,3}){3}");
    }

    private void guard(Context ctx) {
        if (ctx.path().equals("/v1/chat/completions")) {
            inFlight.incrementAndGet();
            ctx.attribute(COUNTED, true);
        }
        String host = ctx.header("Host");
        String name = host == null ? "" : hostName(host);
        if (!anyHost && !hostNames.contains(name) && !(anyIpHost && isIpLiteral(name)))
            throw new ApiError(421, "invalid_request_error", "host_not_allowed", null, "this server does not answer to the host '"
                    + host + "' (it answers to " + String.join(", ", hostNames) + (anyIpHost ? " and its addresses" : "")
                    + "; --allowed_hosts adds names)");
        String path = ctx.path();
        if (options.apiKey() != null && (path.startsWith("/v1/") || path.equals("/metrics")) && !authorized(ctx.header("Authorization"))) {
            ctx.header("WWW-Authenticate", "Bearer");
            throw new ApiError(401, "invalid_request_error", "invalid_api_key", null,
                    "a valid API key is needed: send the header 'Authorization: Bearer <key>'");
        }
        if (ctx.method().name().equals("POST")) {
            String type = ctx.header("Content-Type");
            String media = type == null ? "" : type.split(";", 2)[0].strip().toLowerCase(Locale.ROOT);
            if (!media.equals("application/json"))
                throw new ApiError(415, "invalid_request_error", "unsupported_media_type", null,
                        "the request body must be sent with 'Content-Type: application/json', got " + (type == null ? "none" : "'" + type + "'"));
        }
    }

    private boolean authorized(String header) {
        if (header == null || !header.regionMatches(true, 0, "Bearer ", 0, 7)) return false;
        byte[] given = header.substring(7).strip().getBytes(StandardCharsets.UTF_8);
        return MessageDigest.isEqual(given, options.apiKey().getBytes(StandardCharsets.UTF_8)); // constant time
    }

    /** A handler whose every {@link Throwable} (OutOfMemoryError included) becomes an exception Javalin answers as JSON. */
    static Handler guarded(Handler h) {
        return ctx -> {
            try {
                h.handle(ctx);
            } catch (Exception e) {
                throw e;
            } catch (Throwable t) {
                throw new InternalError(t);
            }
        };
    }

    /** An unexpected failure wrapped by {@link #guarded}: logged with its cause, answered as 500. */
    private static final class InternalError extends RuntimeException {
        InternalError(Throwable cause) {
            super(cause.getClass().getSimpleName() + ": " + cause.getMessage(), cause);
        }
    }

    private ApiError internal(Context ctx, Throwable e) {
        Throwable cause = e instanceof InternalError ? e.getCause() : e;
        LOG.error("{} {} failed", ctx.method(), ctx.path(), cause);
        return new ApiError(500, "server_error", "internal_error", null, cause.getClass().getSimpleName() + ": " + cause.getMessage());
    }

    // ---- routes ----

    private ObjectNode health() {
        ObjectNode o = JSON.createObjectNode();
        o.put("status", draining.get() ? "draining" : "ok");
        o.put("model", modelName);
        o.put("running", running.get());
        o.put("queued", queued());
        o.put("queue_capacity", limits.queue());
        o.put("max_batch", limits.maxBatch());
        return o;
    }

    private ObjectNode models() {
        ObjectNode o = JSON.createObjectNode();
        o.put("object", "list");
        o.putArray("data").add(model());
        return o;
    }

    private ObjectNode model() {
        ObjectNode m = JSON.createObjectNode();
        m.put("id", modelName);
        m.put("object", "model");
        m.put("created", created);
        m.put("owned_by", "llava4j");
        return m;
    }

    /**
     * One request's generation, on the worker ({@link #run}, max batch 1) or in the decode batch ({@link ContinuousBatcher}):
     * text pieces into {@code events}, then a {@link Generator.Result} or an error.
     */
    private final class Job implements Runnable, ContinuousBatcher.Client {
        final String id;
        final ChatInput in;
        final long arrived, deadline;
        final AtomicBoolean cancelled = new AtomicBoolean(); // by the client leaving (clientGone) or a drain past its timeout
        volatile boolean clientGone;
        final AtomicBoolean timedOut = new AtomicBoolean();
        final AtomicBoolean stopMatched = new AtomicBoolean();
        final AtomicBoolean ended = new AtomicBoolean();
        final BlockingQueue<Object> events = new LinkedBlockingQueue<>();
        final CompletableFuture<Generator.Result> done = new CompletableFuture<>();
        volatile long started, firstToken, finished;
        volatile Generator.Result result;
        private TextStream text;
        private StopString stop;
        private long lastToken;

        Job(String id, ChatInput in, long arrived, long deadline) {
            this.id = id;
            this.in = in;
            this.arrived = arrived;
            this.deadline = deadline;
        }

        /** The generator whose stop tokens end this request ({@code ignore_eos}: none). */
        Generator generator() {
            return in.ignoreEos() ? generator.ignoringStopTokens() : generator;
        }

        /** Queues it: on the worker, or in the decode batch. */
        void submit() {
            if (batcher != null) assistant.submit(batcher, generator(), in.image(), in.promptIds(), in.sampling(), this);
            else worker.execute(this);
        }

        /** The one-at-a-time path. */
        @Override
        public void run() {
            try (PointerScope scope = new PointerScope()) {
                start();
                finished(assistant.generate(generator(), in.image(), in.promptIds(), in.sampling(), this::onToken));
            } catch (Throwable e) {
                failed(e);
            }
        }

        @Override
        public void start() throws Exception {
            started = System.nanoTime();
            running.incrementAndGet();
            metrics.queueWait(started - arrived);
            if (cancelled.get()) throw new IllegalStateException("cancelled while waiting in the queue");
            if (started > deadline) {
                timedOut.set(true);
                throw new TimeoutException("timed out while waiting in the queue");
            }
            text = new TextStream(assistant.tokenizer());
            List<String> stops = new ArrayList<>(in.stop());
            stops.addAll(templateStops);
            stop = new StopString(stops);
        }

        @Override
        public boolean onToken(int t) {
            long now = System.nanoTime();
            if (lastToken == 0) {
                firstToken = now;
                metrics.firstToken(now - arrived);
            } else {
                metrics.nextToken(now - lastToken);
                if (batcher == null) metrics.decodeStep(1);
            }
            lastToken = now;
            if (cancelled.get()) return false;
            if (now > deadline) {
                timedOut.set(true);
                return false;
            }
            String piece = stop.push(text.push(t));
            if (!piece.isEmpty()) events.add(piece);
            if (stop.stopped()) {
                stopMatched.set(true);
                return false;
            }
            return true;
        }

        @Override
        public void finished(Generator.Result r) {
            if (!stop.stopped()) {
                String rest = stop.push(text.flush()) + stop.flush();
                if (!rest.isEmpty()) events.add(rest);
            }
            result = r;
            end();
            events.add(r);
            done.complete(r);
        }

        @Override
        public void failed(Throwable e) {
            end();
            events.add(e);
            done.completeExceptionally(e);
        }

        private void end() {
            if (!ended.compareAndSet(false, true)) return;
            finished = System.nanoTime();
            if (started != 0) running.decrementAndGet();
        }

        String finishReason(Generator.Result r) {
            return stopMatched.get() || r.stopReason().equals("stop") ? "stop" : "length";
        }
    }

    private void completions(Context ctx) throws Exception {
        long arrived = System.nanoTime();
        if (draining.get()) throw shuttingDown(ctx);
        if (!admission.tryAcquire()) {
            if (draining.get()) throw shuttingDown(ctx);
            ctx.header("Retry-After", "1");
            throw new ApiError(429, "rate_limit_error", "queue_full", null, "the server is busy: " + limits.maxBatch()
                    + (limits.maxBatch() == 1 ? " request" : " requests") + " running (max_batch) and " + limits.queue()
                    + " waiting (the queue limit); retry later");
        }
        try {
            if (draining.get()) throw shuttingDown(ctx);
            long deadline = arrived + (long) (limits.timeoutSeconds() * 1e9);
            Runnable checkpoint = () -> {
                if (System.nanoTime() > deadline) throw timeout();
            };
            byte[] body = body(ctx, checkpoint);
            ChatInput in = ChatInput.parse(body, assistant, modelName, template, limits, checkpoint);
            Job job = new Job("chatcmpl-" + UUID.randomUUID(), in, arrived, deadline);
            ctx.attribute(JOB, job);
            jobs.add(job);
            try (ClientWatch watch = ClientWatch.start(ctx.req(), () -> {
                job.clientGone = true;
                job.cancelled.set(true);
            })) {
                job.submit();
                long createdAt = System.currentTimeMillis() / 1000;
                if (in.stream()) stream(ctx, job, createdAt, watch);
                else complete(ctx, job, createdAt, watch);
            } finally {
                jobs.remove(job);
            }
        } finally {
            admission.release();
        }
    }

    private ApiError shuttingDown(Context ctx) {
        ctx.header("Retry-After", "5");
        return new ApiError(503, "server_error", "shutting_down", null, "the server is shutting down: it takes no new requests, and stops running ones past its drain timeout");
    }

    /** The JSON answer; {@code watch} is closed before it is written (the client may send its next request right after it). */
    private void complete(Context ctx, Job job, long createdAt, ClientWatch watch) throws Exception {
        Generator.Result r = null;
        Throwable failure = null;
        try {
            r = job.done.get(Math.max(1, job.deadline - System.nanoTime()) + TimeUnit.SECONDS.toNanos(5), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            job.cancelled.set(true);
            throw timeout();
        } catch (ExecutionException e) {
            failure = e.getCause();
        }
        if (job.timedOut.get()) throw timeout();
        if (job.clientGone) // nobody reads this; the status is for the log and the metrics (nginx's)
            throw new ApiError(499, "invalid_request_error", "client_closed_request", null, "the client closed the connection");
        if (job.cancelled.get()) throw shuttingDown(ctx);
        watch.close();
        if (failure != null) throw failure instanceof Exception ex ? ex : new InternalError(failure);
        ObjectNode o = JSON.createObjectNode();
        o.put("id", job.id);
        o.put("object", "chat.completion");
        o.put("created", createdAt);
        o.put("model", job.in.model());
        ObjectNode choice = o.putArray("choices").addObject();
        choice.put("index", 0);
        ObjectNode msg = choice.putObject("message");
        msg.put("role", "assistant");
        String text = assistant.decode(r.tokens());
        if (job.stopMatched.get()) {
            List<String> stops = new ArrayList<>(job.in.stop());
            stops.addAll(templateStops);
            text = StopString.cut(text, stops).strip();
        }
        msg.put("content", text);
        choice.put("finish_reason", job.finishReason(r));
        o.set("usage", usage(r));
        byte[] bytes = JSON.writeValueAsBytes(o); // written and completed here, before the place is given back (drain)
        var res = ctx.res();
        res.setStatus(200);
        res.setContentType("application/json");
        res.setContentLength(bytes.length);
        try (OutputStream out = res.getOutputStream()) {
            out.write(bytes);
        } catch (IOException e) {
            job.clientGone = true;
        }
    }

    private static ObjectNode usage(Generator.Result r) {
        ObjectNode usage = JSON.createObjectNode();
        usage.put("prompt_tokens", r.promptLength());
        usage.put("completion_tokens", r.tokens().length);
        usage.put("total_tokens", r.promptLength() + r.tokens().length);
        return usage;
    }

    /** Server-sent events as OpenAI streams them: a role chunk, content chunks, a finish chunk, (usage), {@code data: [DONE]}. */
    private void stream(Context ctx, Job job, long createdAt, ClientWatch watch) throws IOException {
        var res = ctx.res();
        res.setStatus(200);
        res.setContentType("text/event-stream; charset=utf-8");
        res.setHeader("Cache-Control", "no-cache");
        res.setHeader("X-Accel-Buffering", "no");
        OutputStream out = res.getOutputStream();
        String model = job.in.model();
        try {
            ObjectNode delta = JSON.createObjectNode();
            delta.put("role", "assistant");
            delta.put("content", "");
            send(out, chunk(job.id, createdAt, model, delta, null));
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
                    if (!d.get("content").asText().isEmpty()) send(out, chunk(job.id, createdAt, model, d, null));
                } else if (e instanceof Generator.Result r) {
                    if (job.timedOut.get()) send(out, errorJson(timeout()));
                    else if (job.cancelled.get() && !job.stopMatched.get()) send(out, errorJson(shuttingDown(ctx)));
                    else {
                        send(out, chunk(job.id, createdAt, model, JSON.createObjectNode(), job.finishReason(r)));
                        if (job.in.includeUsage()) {
                            ObjectNode u = chunk(job.id, createdAt, model, null, null);
                            u.set("usage", usage(r));
                            send(out, u);
                        }
                    }
                    break;
                } else {
                    Throwable t = (Throwable) e;
                    if (!job.timedOut.get() && !job.cancelled.get()) LOG.error("{} failed while generating", job.id, t);
                    send(out, errorJson(job.timedOut.get() ? timeout() : job.cancelled.get() ? shuttingDown(ctx)
                            : new ApiError(500, "server_error", "internal_error", null, t.getClass().getSimpleName() + ": " + t.getMessage())));
                    break;
                }
            }
            watch.close();
            out.write("data: [DONE]\n\n".getBytes(StandardCharsets.UTF_8));
            out.close(); // the last chunk goes now, before the place is given back (drain)
        } catch (IOException | InterruptedException e) {
            job.cancelled.set(true); // the client went away: stop generating for it
        }
    }

    /** A chunk; {@code delta} null: one with no choices (the usage chunk). */
    private static ObjectNode chunk(String id, long createdAt, String model, ObjectNode delta, String finish) {
        ObjectNode o = JSON.createObjectNode();
        o.put("id", id);
        o.put("object", "chat.completion.chunk");
        o.put("created", createdAt);
        o.put("model", model);
        var choices = o.putArray("choices");
        if (delta == null) return o;
        ObjectNode c = choices.addObject();
        c.put("index", 0);
        c.set("delta", delta);
        if (finish == null) c.putNull("finish_reason"); else c.put("finish_reason", finish);
        return o;
    }

    private static void send(OutputStream out, ObjectNode event) throws IOException {
        out.write(("data: " + JSON.writeValueAsString(event) + "\n\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    private ApiError timeout() {
        return new ApiError(504, "timeout_error", "timeout", null, "the request ran past the server's timeout of "
                + limits.timeoutSeconds() + " s (reading, decoding and waiting in the queue included)");
    }

    /** The body, at most maxRequestBytes (read here so the error names the limit), within the deadline. */
    private byte[] body(Context ctx, Runnable checkpoint) throws IOException {
        try (InputStream in = ctx.req().getInputStream()) {
            ByteArrayOutputStream b = new ByteArrayOutputStream();
            byte[] buf = new byte[1 << 16];
            for (int n; (n = in.read(buf)) > 0; ) {
                b.write(buf, 0, n);
                if (b.size() > limits.maxRequestBytes())
                    throw ApiError.invalid("request_too_large", null, "the request body is over the server's limit (max_request_bytes) of "
                            + limits.maxRequestBytes() + " bytes");
                checkpoint.run();
            }
            return b.toByteArray();
        }
    }

    /** After every request: metrics and, for chat requests, one log line. */
    private void logged(Context ctx, Float ms) {
        if (ctx.attribute(COUNTED) != null) inFlight.decrementAndGet();
        if (!ctx.path().equals("/v1/chat/completions")) return;
        int status = ctx.res().getStatus();
        metrics.request(status);
        Job job = ctx.attribute(JOB);
        Generator.Result r = job == null ? null : job.result;
        if (r != null) metrics.tokens(r.promptLength(), r.tokens().length);
        if (!REQUESTS.isInfoEnabled()) return;
        StringBuilder line = new StringBuilder();
        line.append(job == null ? "-" : job.id).append(" status=").append(status);
        if (job != null) {
            line.append(" prompt_tokens=").append(r != null ? r.promptLength() : job.in.promptPositions())
                    .append(" generated_tokens=").append(r != null ? r.tokens().length : 0);
            long started = job.started, finished = job.finished;
            if (started != 0) line.append(String.format(" queue_ms=%.1f", (started - job.arrived) / 1e6));
            if (started != 0 && finished != 0) line.append(String.format(" generate_ms=%.1f", (finished - started) / 1e6));
            line.append(" finish=").append(job.cancelled.get() ? "cancelled" : job.timedOut.get() ? "timeout" : r != null ? job.finishReason(r) : "error");
            if (job.in.stream()) line.append(" stream");
        }
        if (ctx.attribute(ERROR) != null) line.append(" error=").append((String) ctx.attribute(ERROR));
        line.append(String.format(" total_ms=%.1f", ms));
        REQUESTS.info(line.toString());
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
        ctx.attribute(ERROR, e.code);
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
