package io.llava4j.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.TestData;
import io.llava4j.generate.Assistant;
import io.llava4j.generate.Prompts;
import io.llava4j.generate.Sampling;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/** The server through plain JDK HttpClient requests in OpenAI's wire format: answers, streams, and every bad request. */
class LlavaServerTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final String QUESTION = "What shape is on top?";
    static Assistant tiny;
    static LlavaServer server;
    static String base, image;
    static final HttpClient http = HttpClient.newHttpClient();
    static final ServeLimits LIMITS = new ServeLimits(1, 60, 1 << 20, 4000, 1000, 120, 4000);

    /**
     * The tiny model with a context of 8192 positions instead of 256 (the weights are the same), so that requests can
     * generate long enough to be running when a test needs them to be.
     */
    static java.nio.file.Path longContextTiny() throws Exception {
        java.nio.file.Path dir = Files.createTempDirectory("llava4j-serve-").resolve("tiny-llava");
        Files.createDirectories(dir);
        try (Stream<java.nio.file.Path> files = Files.list(TestData.tinyLlava())) {
            for (java.nio.file.Path f : files.toList()) Files.copy(f, dir.resolve(f.getFileName()));
        }
        ObjectNode config = (ObjectNode) JSON.readTree(dir.resolve("config.json").toFile());
        ((ObjectNode) config.get("text_config")).put("max_position_embeddings", 8192);
        JSON.writeValue(dir.resolve("config.json").toFile(), config);
        return dir;
    }

    @BeforeAll
    static void start() throws Exception {
        tiny = Assistant.load(longContextTiny(), Assistant.Options.DEFAULT);
        server = new LlavaServer(tiny, LIMITS).start("127.0.0.1", 0);
        base = "http://127.0.0.1:" + server.port();
        image = dataUri(Files.readAllBytes(TestData.tinyData().resolve("images/img0.png")));
    }

    @AfterAll
    static void stop() {
        server.close();
        tiny.close();
    }

    static String dataUri(byte[] png) {
        return "data:image/png;base64," + Base64.getEncoder().encodeToString(png);
    }

    static ObjectNode request(String text, String imageUrl, int maxTokens, boolean stream) {
        return requestFor(tiny.name(), text, imageUrl, maxTokens, stream);
    }

    static ObjectNode requestFor(String model, String text, String imageUrl, int maxTokens, boolean stream) {
        ObjectNode r = JSON.createObjectNode();
        r.put("model", model);
        r.put("max_tokens", maxTokens);
        r.put("stream", stream);
        ArrayNode content = r.putArray("messages").addObject().put("role", "user").putArray("content");
        if (imageUrl != null) content.addObject().put("type", "image_url").putObject("image_url").put("url", imageUrl);
        content.addObject().put("type", "text").put("text", text);
        return r;
    }

    static HttpResponse<String> post(String body) throws Exception {
        return http.send(HttpRequest.newBuilder(URI.create(base + "/v1/chat/completions"))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    /** The chunks of a streamed answer (the data lines before [DONE], which must end it). */
    static List<JsonNode> streamChunks(JsonNode body) throws Exception {
        HttpResponse<Stream<String>> r = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/chat/completions"))
                        .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(JSON.writeValueAsString(body))).build(),
                HttpResponse.BodyHandlers.ofLines());
        assertEquals(200, r.statusCode());
        List<String> data = new ArrayList<>();
        r.body().filter(l -> l.startsWith("data: ")).forEach(l -> data.add(l.substring(6)));
        assertEquals("[DONE]", data.get(data.size() - 1));
        List<JsonNode> out = new ArrayList<>();
        for (String d : data.subList(0, data.size() - 1)) out.add(JSON.readTree(d));
        return out;
    }

    static HttpResponse<String> post(JsonNode body) throws Exception {
        return post(JSON.writeValueAsString(body));
    }

    static String expectedAnswer(String question, int maxTokens) {
        int[] ids = tiny.encode(Prompts.runLlava(io.llava4j.data.Conversation.Template.VICUNA_V1, question, true), true);
        return tiny.decode(tiny.generator().generate(tiny.pixels(TestData.tinyData().resolve("images/img0.png")), ids,
                Sampling.greedy(maxTokens), null).tokens());
    }

    /** Asserts status and an OpenAI error object with this code; returns the error. */
    static JsonNode assertError(HttpResponse<String> r, int status, String code) throws Exception {
        assertEquals(status, r.statusCode(), r.body());
        assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("application/json"));
        JsonNode e = JSON.readTree(r.body()).get("error");
        assertNotNull(e, r.body());
        assertEquals(code, e.get("code").asText(), r.body());
        assertFalse(e.get("message").asText().isEmpty());
        return e;
    }

    static void assertStillServes() throws Exception {
        HttpResponse<String> r = post(request(QUESTION, image, 4, false));
        assertEquals(200, r.statusCode(), r.body());
        assertEquals(expectedAnswer(QUESTION, 4), JSON.readTree(r.body()).at("/choices/0/message/content").asText());
    }

    @Test
    void healthAndModels() throws Exception {
        HttpResponse<String> h = http.send(HttpRequest.newBuilder(URI.create(base + "/health")).build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, h.statusCode());
        assertEquals("ok", JSON.readTree(h.body()).get("status").asText());
        HttpResponse<String> m = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/models")).build(), HttpResponse.BodyHandlers.ofString());
        JsonNode models = JSON.readTree(m.body());
        assertEquals("list", models.get("object").asText());
        assertEquals(tiny.name(), models.at("/data/0/id").asText());
        HttpResponse<String> page = http.send(HttpRequest.newBuilder(URI.create(base + "/")).build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, page.statusCode());
        assertTrue(page.body().contains("/v1/chat/completions"));
        assertError(http.send(HttpRequest.newBuilder(URI.create(base + "/nothing")).build(), HttpResponse.BodyHandlers.ofString()), 404, "not_found");
    }

    @Test
    void nonStreamingAnswerIsTheGreedyGeneration() throws Exception {
        HttpResponse<String> r = post(request(QUESTION, image, 12, false));
        assertEquals(200, r.statusCode(), r.body());
        JsonNode j = JSON.readTree(r.body());
        assertEquals("chat.completion", j.get("object").asText());
        assertEquals(tiny.name(), j.get("model").asText());
        assertEquals("assistant", j.at("/choices/0/message/role").asText());
        assertEquals(expectedAnswer(QUESTION, 12), j.at("/choices/0/message/content").asText());
        assertEquals("length", j.at("/choices/0/finish_reason").asText());
        assertEquals(12, j.at("/usage/completion_tokens").asInt());
        assertEquals(j.at("/usage/prompt_tokens").asInt() + 12, j.at("/usage/total_tokens").asInt());
    }

    @Test
    void streamingSendsChunksThatAddUpToTheAnswer() throws Exception {
        HttpResponse<Stream<String>> r = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/chat/completions"))
                        .header("Content-Type", "application/json")
                        .POST(HttpRequest.BodyPublishers.ofString(JSON.writeValueAsString(request(QUESTION, image, 12, true)))).build(),
                HttpResponse.BodyHandlers.ofLines());
        assertEquals(200, r.statusCode());
        assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("text/event-stream"));
        List<String> data = new ArrayList<>();
        r.body().filter(l -> l.startsWith("data: ")).forEach(l -> data.add(l.substring(6)));
        assertEquals("[DONE]", data.get(data.size() - 1));
        StringBuilder text = new StringBuilder();
        int contentChunks = 0;
        for (String d : data.subList(0, data.size() - 1)) {
            JsonNode c = JSON.readTree(d);
            assertEquals("chat.completion.chunk", c.get("object").asText());
            JsonNode delta = c.at("/choices/0/delta");
            if (delta.has("content") && !delta.get("content").asText().isEmpty()) contentChunks++;
            text.append(delta.path("content").asText(""));
        }
        assertEquals("assistant", JSON.readTree(data.get(0)).at("/choices/0/delta/role").asText());
        assertEquals("length", JSON.readTree(data.get(data.size() - 2)).at("/choices/0/finish_reason").asText());
        assertTrue(contentChunks > 1, "streamed in pieces: " + data);
        assertEquals(expectedAnswer(QUESTION, 12), text.toString().strip());
    }

    @Test
    void multiTurnWithSystemMessage() throws Exception {
        ObjectNode r = request(QUESTION, image, 3, false);
        ArrayNode msgs = (ArrayNode) r.get("messages");
        msgs.addObject().put("role", "assistant").put("content", "A circle.");
        msgs.addObject().put("role", "user").put("content", "And below?");
        msgs.insertObject(0).put("role", "system").put("content", "Be brief.");
        HttpResponse<String> res = post(r);
        assertEquals(200, res.statusCode(), res.body());
        Prompts p = new Prompts(io.llava4j.data.Conversation.Template.VICUNA_V1, "Be brief.")
                .user(Prompts.withImage(QUESTION)).answer("A circle.").user("And below?");
        int[] ids = tiny.encode(p.prompt(), true);
        String want = tiny.decode(tiny.generator().generate(tiny.pixels(TestData.tinyData().resolve("images/img0.png")), ids,
                Sampling.greedy(3), null).tokens());
        assertEquals(want, JSON.readTree(res.body()).at("/choices/0/message/content").asText());
        assertEquals(ids.length - 1 + tiny.model().config.imageFeatureTokens(), JSON.readTree(res.body()).at("/usage/prompt_tokens").asInt());
    }

    static byte[] png(int w, int h) throws Exception {
        BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < h; y++) for (int x = 0; x < w; x++) img.setRGB(x, y, (x * 7919 + y * 104729) * 2654435761L > 0 ? x * y * 31 : 0xffffff);
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        ImageIO.write(img, "png", b);
        return b.toByteArray();
    }

    @Test
    void badRequestsGetTheirStatusAndAJsonError() throws Exception {
        assertError(post(request(QUESTION, null, 4, false)), 400, "image_required");
        assertError(post(request(QUESTION, "data:image/png;base64," + Base64.getEncoder().encodeToString("not an image".getBytes()), 4, false)),
                400, "invalid_image");
        assertError(post(request(QUESTION, "data:image/png;base64,@@@", 4, false)), 400, "invalid_image");
        byte[] big = png(60, 60);
        assertTrue(big.length > LIMITS.maxImageBytes(), "fixture must exceed the byte limit: " + big.length);
        assertTrue(assertError(post(request(QUESTION, dataUri(big), 4, false)), 400, "image_too_large").get("message").asText().contains("max_image_bytes"));
        byte[] wide = png(100, 11); // 1100 px > 1000, small file
        assertTrue(wide.length < LIMITS.maxImageBytes());
        assertTrue(assertError(post(request(QUESTION, dataUri(wide), 4, false)), 400, "image_too_many_pixels").get("message").asText().contains("max_image_pixels"));
        assertError(post(request(QUESTION, "http://example.invalid/a.png", 4, false)), 400, "invalid_image_url");
        assertError(post(request(QUESTION, "file:///etc/passwd", 4, false)), 400, "invalid_image_url");
        ObjectNode unknown = request(QUESTION, image, 4, false).put("model", "gpt-4o");
        assertError(post(unknown), 404, "model_not_found");
        assertTrue(assertError(post(request("word ".repeat(200), image, 4, false)), 400, "context_length_exceeded").get("message").asText().contains("max_prompt_tokens"));
        assertError(post(request(QUESTION, image, LIMITS.maxNewTokens() + 1, false)), 400, "max_tokens_limit");
        assertError(post("{\"model\": \"x\", \"messages\": ["), 400, "invalid_json");
        assertError(post("[1, 2]"), 400, "invalid_json");
        ObjectNode twoImages = request(QUESTION, image, 4, false);
        ((ArrayNode) twoImages.at("/messages/0/content")).addObject().put("type", "image_url").putObject("image_url").put("url", image);
        assertError(post(twoImages), 400, "too_many_images");
        ObjectNode endsWithAssistant = request(QUESTION, image, 4, false);
        ((ArrayNode) endsWithAssistant.get("messages")).addObject().put("role", "assistant").put("content", "x");
        assertError(post(endsWithAssistant), 400, "invalid_messages");
        assertStillServes();
    }

    @Test
    void moreConcurrentRequestsThanTheQueueHoldsGet429() throws Exception {
        // one runs, one waits (queue 1): of four long requests sent at once, at least two are refused
        String body = JSON.writeValueAsString(request(QUESTION, image, 600, false).put("ignore_eos", true));
        List<CompletableFuture<HttpResponse<String>>> all = new ArrayList<>();
        for (int i = 0; i < 4; i++)
            all.add(http.sendAsync(HttpRequest.newBuilder(URI.create(base + "/v1/chat/completions"))
                    .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                    HttpResponse.BodyHandlers.ofString()));
        int ok = 0, refused = 0;
        for (var f : all) {
            HttpResponse<String> r = f.get();
            if (r.statusCode() == 200) {
                ok++;
                assertEquals(600, JSON.readTree(r.body()).at("/usage/completion_tokens").asInt());
            }
            else {
                assertError(r, 429, "queue_full");
                assertTrue(r.headers().firstValue("Retry-After").isPresent());
                refused++;
            }
        }
        assertTrue(refused >= 2 && ok >= 1, ok + " answered, " + refused + " refused");
        assertStillServes();
    }

    @Test
    void aRequestPastItsTimeoutGets504() throws Exception {
        try (LlavaServer quick = new LlavaServer(tiny, new ServeLimits(1, 0.2, 1 << 20, 4000, 1000, 120, 4000)).start("127.0.0.1", 0)) {
            String url = "http://127.0.0.1:" + quick.port() + "/v1/chat/completions";
            HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(url)).header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(JSON.writeValueAsString(request(QUESTION, image, 4000, false).put("ignore_eos", true)))).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertError(r, 504, "timeout");
            HttpResponse<String> s = http.send(HttpRequest.newBuilder(URI.create(url)).header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(JSON.writeValueAsString(request(QUESTION, image, 4000, true).put("ignore_eos", true)))).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, s.statusCode());
            assertTrue(s.body().contains("\"code\":\"timeout\""), s.body().substring(Math.max(0, s.body().length() - 400)));
            assertTrue(s.body().strip().endsWith("data: [DONE]"));
            HttpResponse<String> small = http.send(HttpRequest.newBuilder(URI.create(url)).header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(JSON.writeValueAsString(request(QUESTION, image, 2, false)))).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, small.statusCode(), small.body());
        }
        assertStillServes();
    }

    /** The tiny OneVision model (AnyRes tiles, qwen_1_5 by default) answers a posted image as generate does. */
    @Test
    void onevisionAnswersAnImage() throws Exception {
        JsonNode ref = JSON.readTree(TestData.onevision().resolve("expected/generate.json").toFile());
        JsonNode req = JSON.readTree(TestData.onevision().resolve("tiny-data/generate.json").toFile());
        java.nio.file.Path img = TestData.onevision().resolve("tiny-data/images").resolve(req.get("image").asText());
        ServeLimits limits = new ServeLimits(1, 60, 1 << 20, 1 << 16, 4000, 120, 64);
        try (Assistant ov = Assistant.load(TestData.onevision().resolve("tiny-onevision"), Assistant.Options.DEFAULT);
             LlavaServer s = new LlavaServer(ov, limits).start("127.0.0.1", 0)) {
            ObjectNode body = request(req.get("prompt").asText(), dataUri(Files.readAllBytes(img)), 8, false);
            body.put("model", ov.name());
            HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + s.port() + "/v1/chat/completions"))
                    .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(JSON.writeValueAsString(body))).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, r.statusCode(), r.body());
            JsonNode o = JSON.readTree(r.body());
            int[] want = new int[8];
            for (int i = 0; i < 8; i++) want[i] = ref.get("tokens").get(i).asInt();
            assertEquals(ov.decode(want), o.at("/choices/0/message/content").asText());
            assertFalse(o.at("/choices/0/message/content").asText().isEmpty());
            assertEquals("length", o.at("/choices/0/finish_reason").asText());
            assertEquals(ref.get("prompt_ids").size() - 1 + ref.get("num_image_tokens").asInt(), o.at("/usage/prompt_tokens").asInt());
        }
    }
}
