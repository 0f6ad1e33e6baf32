package io.llava4j.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.TestData;
import io.llava4j.TestImages;
import io.llava4j.data.Conversation.Template;
import io.llava4j.generate.Assistant;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static io.llava4j.serve.LlavaServerTest.*;
import static org.junit.jupiter.api.Assertions.*;

/** The server probed as an attacker (loopback only): size bombs, dropped connections, foreign hosts and pages, keys; and OpenAI's fields. */
class ServeHardeningTest {
    static Assistant tiny;
    static LlavaServer server;
    static String base, image;

    @BeforeAll
    static void start() throws Exception {
        LlavaServerTest.start();
        tiny = LlavaServerTest.tiny;
        server = LlavaServerTest.server;
        base = LlavaServerTest.base;
        image = LlavaServerTest.image;
    }

    @AfterAll
    static void stop() {
        LlavaServerTest.stop();
    }

    static long rssKb() throws Exception {
        for (String l : Files.readAllLines(Path.of("/proc/self/status")))
            if (l.startsWith("VmRSS:")) return Long.parseLong(l.replaceAll("\\D+", ""));
        throw new IllegalStateException("no VmRSS");
    }

    static HttpResponse<String> postTo(LlavaServer s, JsonNode body) throws Exception {
        return http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + s.port() + "/v1/chat/completions"))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(JSON.writeValueAsString(body))).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    /** The 117 KB PNG of 40,000,000 x 1 px, under the default byte and pixel limits: 400 in under a second, under 100 MB of RSS. */
    @Test
    void imageSizeBombIsRefusedFromItsHeader() throws Exception {
        byte[] bomb = TestImages.blackPng(40_000_000, 1);
        assertTrue(bomb.length < 150_000, "a small file: " + bomb.length);
        try (LlavaServer s = new LlavaServer(tiny, ServeLimits.defaults()).start("127.0.0.1", 0)) {
            assertEquals(200, postTo(s, request(QUESTION, image, 2, false)).statusCode()); // everything loaded once
            System.gc();
            long rss0 = rssKb(), t0 = System.nanoTime();
            HttpResponse<String> r = postTo(s, request(QUESTION, dataUri(bomb), 2, false));
            double seconds = (System.nanoTime() - t0) / 1e9;
            long grewMb = (rssKb() - rss0) / 1024;
            JsonNode e = assertError(r, 400, "image_aspect_ratio_too_large");
            assertTrue(e.get("message").asText().contains("max_image_aspect_ratio") && e.get("message").asText().contains("40000000x1"),
                    e.get("message").asText());
            System.out.printf("image bomb: 400 in %.3f s, RSS grew %d MB%n", seconds, grewMb);
            assertTrue(seconds < 1, "answered in " + seconds + " s");
            assertTrue(grewMb < 100, "RSS grew " + grewMb + " MB");
            assertEquals(200, postTo(s, request(QUESTION, image, 2, false)).statusCode());
        }
    }

    /** A 3 MB prompt is refused by its length before the tokenizer sees it. */
    @Test
    void hugePromptIsRefusedBeforeTokenizing() throws Exception {
        HttpResponse<String> r;
        double seconds;
        try (LlavaServer s = new LlavaServer(tiny, ServeLimits.defaults()).start("127.0.0.1", 0)) {
            long t0 = System.nanoTime();
            r = postTo(s, request("word ".repeat(600_000), image, 2, false));
            seconds = (System.nanoTime() - t0) / 1e9;
        }
        assertTrue(assertError(r, 400, "prompt_too_long").get("message").asText().contains("max_prompt_chars"));
        assertTrue(seconds < 1, "answered in " + seconds + " s");
    }

    static JsonNode health() throws Exception {
        return JSON.readTree(http.send(HttpRequest.newBuilder(URI.create(base + "/health")).build(), HttpResponse.BodyHandlers.ofString()).body());
    }

    /** Sends a long request on a raw connection, waits until it generates, closes the connection: the worker must be free at once. */
    void dropWhileGenerating(boolean stream) throws Exception {
        byte[] body = JSON.writeValueAsBytes(request(QUESTION, image, 4000, stream).put("ignore_eos", true));
        try (Socket sock = new Socket("127.0.0.1", server.port())) {
            OutputStream out = sock.getOutputStream();
            out.write(("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:" + server.port() + "\r\nContent-Type: application/json\r\n"
                    + "Content-Length: " + body.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(body);
            out.flush();
            long until = System.nanoTime() + 20_000_000_000L;
            while (health().get("running").asInt() == 0) {
                assertTrue(System.nanoTime() < until, "never started");
                Thread.sleep(20);
            }
            if (stream) assertTrue(new BufferedReader(new InputStreamReader(sock.getInputStream())).readLine().startsWith("HTTP/1.1 200"));
        }
        long closed = System.nanoTime();
        while (health().get("running").asInt() != 0) {
            assertTrue(System.nanoTime() - closed < 2_000_000_000L, "still generating 2 s after the client left");
            Thread.sleep(10);
        }
        assertStillServes();
    }

    @Test
    void droppedNonStreamedRequestFreesTheWorker() throws Exception {
        dropWhileGenerating(false);
    }

    @Test
    void droppedStreamedRequestFreesTheWorker() throws Exception {
        dropWhileGenerating(true);
    }

    /** A raw request with this Host header; returns the status line's code. */
    static int statusWithHost(int port, String host, String path) throws Exception {
        try (Socket sock = new Socket("127.0.0.1", port)) {
            sock.getOutputStream().write(("GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            String status = new BufferedReader(new InputStreamReader(sock.getInputStream())).readLine();
            return Integer.parseInt(status.split(" ")[1]);
        }
    }

    @Test
    void foreignHostsKeysAndContentTypes() throws Exception {
        ServeOptions o = ServeOptions.DEFAULT.withApiKey("sekret-key").withAllowedHosts(List.of("llava.example"));
        try (LlavaServer s = new LlavaServer(tiny, Template.of(tiny.defaultConvMode()), LIMITS, o).start("127.0.0.1", 0)) {
            int port = s.port();
            String url = "http://127.0.0.1:" + port;
            // Host: the bind address, loopback names and --allowed_hosts; a rebinding page's name gets 421
            assertEquals(421, statusWithHost(port, "attacker.example", "/health"));
            assertEquals(421, statusWithHost(port, "attacker.example:" + port, "/"));
            assertEquals(200, statusWithHost(port, "127.0.0.1:" + port, "/health"));
            assertEquals(200, statusWithHost(port, "localhost:" + port, "/health"));
            assertEquals(200, statusWithHost(port, "LLAVA.example", "/health"));
            // the key: /v1/ and /metrics need it; /health and the page do not
            HttpResponse<String> none = http.send(HttpRequest.newBuilder(URI.create(url + "/v1/models")).build(), HttpResponse.BodyHandlers.ofString());
            assertError(none, 401, "invalid_api_key");
            assertEquals("Bearer", none.headers().firstValue("WWW-Authenticate").orElse(""));
            assertError(http.send(HttpRequest.newBuilder(URI.create(url + "/v1/models")).header("Authorization", "Bearer wrong").build(),
                    HttpResponse.BodyHandlers.ofString()), 401, "invalid_api_key");
            assertEquals(401, http.send(HttpRequest.newBuilder(URI.create(url + "/metrics")).build(), HttpResponse.BodyHandlers.ofString()).statusCode());
            assertEquals(200, http.send(HttpRequest.newBuilder(URI.create(url + "/v1/models")).header("Authorization", "Bearer sekret-key").build(),
                    HttpResponse.BodyHandlers.ofString()).statusCode());
            assertEquals(200, http.send(HttpRequest.newBuilder(URI.create(url + "/health")).build(), HttpResponse.BodyHandlers.ofString()).statusCode());
            HttpResponse<String> page = http.send(HttpRequest.newBuilder(URI.create(url + "/")).build(), HttpResponse.BodyHandlers.ofString());
            assertTrue(page.body().contains("Authorization"), "the page sends the key it asks for");
            String body = JSON.writeValueAsString(request(QUESTION, image, 2, false));
            assertError(http.send(HttpRequest.newBuilder(URI.create(url + "/v1/chat/completions")).header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString()), 401, "invalid_api_key");
            // Content-Type: only application/json (a cross-origin form or simple request cannot send it)
            for (String type : new String[]{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"})
                assertError(http.send(HttpRequest.newBuilder(URI.create(url + "/v1/chat/completions")).header("Content-Type", type)
                        .header("Authorization", "Bearer sekret-key").POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                        HttpResponse.BodyHandlers.ofString()), 415, "unsupported_media_type");
            assertError(http.send(HttpRequest.newBuilder(URI.create(url + "/v1/chat/completions")).header("Authorization", "Bearer sekret-key")
                    .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString()), 415, "unsupported_media_type");
            HttpResponse<String> ok = http.send(HttpRequest.newBuilder(URI.create(url + "/v1/chat/completions"))
                    .header("Content-Type", "application/json; charset=utf-8").header("Authorization", "Bearer sekret-key")
                    .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(200, ok.statusCode(), ok.body());
        }
    }

    @Test
    void hostNames() {
        assertEquals("localhost", LlavaServer.hostName("LocalHost:8000"));
        assertEquals("[::1]", LlavaServer.hostName("[::1]:8000"));
        assertEquals("[::1]", LlavaServer.hostName("::1"));
        assertEquals("example.com", LlavaServer.hostName("example.com."));
    }

    /** {@code stop} cuts the answer where the stop string starts, streamed or not, with finish_reason "stop". */
    @Test
    void stopStringsCutTheAnswer() throws Exception {
        String full = expectedAnswer(QUESTION, 16);
        int cutAt = full.indexOf(' ', full.length() / 2);
        assertTrue(cutAt > 0, "needs an answer of several words: " + full);
        String stop = full.substring(cutAt, Math.min(full.length(), cutAt + 4));
        String want = full.substring(0, full.indexOf(stop)).strip();
        HttpResponse<String> r = post(request(QUESTION, image, 16, false).put("stop", stop));
        assertEquals(200, r.statusCode(), r.body());
        JsonNode j = JSON.readTree(r.body());
        assertEquals(want, j.at("/choices/0/message/content").asText());
        assertEquals("stop", j.at("/choices/0/finish_reason").asText());
        ObjectNode streamed = request(QUESTION, image, 16, true);
        streamed.putArray("stop").add("never appears").add(stop);
        streamed.putObject("stream_options").put("include_usage", true);
        List<JsonNode> chunks = LlavaServerTest.streamChunks(streamed);
        StringBuilder text = new StringBuilder();
        for (JsonNode c : chunks) text.append(c.at("/choices/0/delta/content").asText(""));
        assertEquals(want, text.toString().strip());
        assertEquals("stop", chunks.get(chunks.size() - 2).at("/choices/0/finish_reason").asText());
        JsonNode usage = chunks.get(chunks.size() - 1);
        assertEquals(0, usage.get("choices").size());
        assertEquals(j.at("/usage/completion_tokens").asInt(), usage.at("/usage/completion_tokens").asInt());
        assertError(post(request(QUESTION, image, 4, false).put("stop", "")), 400, "invalid_value");
    }

    /** Without a seed, sampling differs between requests (it used to be seed 0 every time); with one, it repeats. */
    @Test
    void samplingSeedIsRandomUnlessGiven() throws Exception {
        Set<String> unseeded = new HashSet<>();
        for (int i = 0; i < 3; i++) {
            HttpResponse<String> r = post(request(QUESTION, image, 24, false).put("temperature", 1.5).put("ignore_eos", true));
            assertEquals(200, r.statusCode(), r.body());
            unseeded.add(JSON.readTree(r.body()).at("/choices/0/message/content").asText());
        }
        assertTrue(unseeded.size() >= 2, "three unseeded answers were the same: " + unseeded);
        Set<String> seeded = new HashSet<>();
        for (int i = 0; i < 2; i++)
            seeded.add(JSON.readTree(post(request(QUESTION, image, 24, false).put("temperature", 1.5).put("ignore_eos", true).put("seed", 7)).body())
                    .at("/choices/0/message/content").asText());
        assertEquals(1, seeded.size(), seeded.toString());
    }

    @Test
    void unsupportedFieldsAreRefusedByName() throws Exception {
        assertEquals("n", assertError(post(request(QUESTION, image, 4, false).put("n", 2)), 400, "unsupported_value").get("param").asText());
        assertEquals("logprobs", assertError(post(request(QUESTION, image, 4, false).put("logprobs", true)), 400, "unsupported_parameter").get("param").asText());
        assertEquals("top_logprobs", assertError(post(request(QUESTION, image, 4, false).put("top_logprobs", 3)), 400, "unsupported_parameter").get("param").asText());
        ObjectNode json = request(QUESTION, image, 4, false);
        json.putObject("response_format").put("type", "json_object");
        assertEquals("response_format", assertError(post(json), 400, "unsupported_parameter").get("param").asText());
        ObjectNode text = request(QUESTION, image, 4, false);
        text.putObject("response_format").put("type", "text");
        assertEquals(200, post(text).statusCode());
        ObjectNode tools = request(QUESTION, image, 4, false);
        tools.putArray("tools").addObject().put("type", "function");
        assertEquals("tools", assertError(post(tools), 400, "unsupported_parameter").get("param").asText());
        assertEquals("presence_penalty", assertError(post(request(QUESTION, image, 4, false).put("presence_penalty", 2.5)), 400, "invalid_value").get("param").asText());
        HttpResponse<String> penalized = post(request(QUESTION, image, 4, false).put("frequency_penalty", 1.0).put("presence_penalty", 0.5));
        assertEquals(200, penalized.statusCode(), penalized.body());
    }

    /** max_tokens and the prompt must fit the model's max_position_embeddings (256 for the tiny model). */
    @Test
    void maxTokensMustFitTheContext() throws Exception {
        try (Assistant small = Assistant.load(TestData.tinyLlava(), Assistant.Options.DEFAULT);
             LlavaServer s = new LlavaServer(small, LIMITS).start("127.0.0.1", 0)) {
            JsonNode e = assertError(postTo(s, request(QUESTION, image, 250, false)), 400, "context_length_exceeded");
            assertEquals("max_tokens", e.get("param").asText());
            assertTrue(e.get("message").asText().contains("max_position_embeddings"));
            assertEquals(200, postTo(s, request(QUESTION, image, 8, false)).statusCode());
        }
    }

    @Test
    void modelsByIdServedNameAndMetrics() throws Exception {
        HttpResponse<String> m = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/models/" + tiny.name())).build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, m.statusCode());
        assertEquals(tiny.name(), JSON.readTree(m.body()).get("id").asText());
        assertError(http.send(HttpRequest.newBuilder(URI.create(base + "/v1/models/gpt-4o")).build(), HttpResponse.BodyHandlers.ofString()), 404, "model_not_found");
        try (LlavaServer s = new LlavaServer(tiny, Template.of(tiny.defaultConvMode()), LIMITS, ServeOptions.DEFAULT.withServedModelName("llava-tiny"))
                .start("127.0.0.1", 0)) {
            String url = "http://127.0.0.1:" + s.port();
            assertEquals("llava-tiny", JSON.readTree(http.send(HttpRequest.newBuilder(URI.create(url + "/v1/models")).build(),
                    HttpResponse.BodyHandlers.ofString()).body()).at("/data/0/id").asText());
            HttpResponse<String> r = postTo(s, request(QUESTION, image, 3, false).put("model", "llava-tiny"));
            assertEquals(200, r.statusCode(), r.body());
            assertEquals("llava-tiny", JSON.readTree(r.body()).get("model").asText());
            assertError(postTo(s, request(QUESTION, image, 3, false)), 404, "model_not_found");
            String metrics = http.send(HttpRequest.newBuilder(URI.create(url + "/metrics")).build(), HttpResponse.BodyHandlers.ofString()).body();
            for (String want : new String[]{"llava4j_requests_total{status=\"200\"} 1", "llava4j_requests_total{status=\"404\"} 1",
                    "llava4j_generated_tokens_total 3", "llava4j_queue_depth", "llava4j_running",
                    "llava4j_time_to_first_token_seconds_bucket", "llava4j_time_per_output_token_seconds_bucket"})
                assertTrue(metrics.contains(want), want + " in\n" + metrics);
        }
    }

    /** An Error (OutOfMemoryError) out of a handler becomes an exception Javalin maps to a JSON 500, not an empty 500. */
    @Test
    void errorsBecomeExceptions() {
        RuntimeException e = assertThrows(RuntimeException.class, () -> LlavaServer.guarded(ctx -> {
            throw new OutOfMemoryError("planted");
        }).handle(null));
        assertInstanceOf(OutOfMemoryError.class, e.getCause());
    }
}
