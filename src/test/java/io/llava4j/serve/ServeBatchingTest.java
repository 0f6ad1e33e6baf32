package io.llava4j.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.TestData;
import io.llava4j.generate.Prompts;
import io.llava4j.generate.Sampling;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.OutputStream;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.function.Predicate;

import static io.llava4j.serve.LlavaServerTest.*;
import static org.junit.jupiter.api.Assertions.*;

/** Continuous batching through HTTP: requests join a running batch and get the one-at-a-time answers; --max_batch bounds it. */
class ServeBatchingTest {
    @BeforeAll
    static void start() throws Exception {
        LlavaServerTest.start();
    }

    @AfterAll
    static void stop() {
        LlavaServerTest.stop();
    }

    static String expectedIgnoringEos(String question, int maxTokens) {
        int[] ids = tiny.encode(Prompts.runLlava(io.llava4j.data.Conversation.Template.VICUNA_V1, question, true), true);
        return tiny.decode(tiny.generator().ignoringStopTokens().generate(tiny.pixels(TestData.tinyData().resolve("images/img0.png")), ids,
                Sampling.greedy(maxTokens), null).tokens());
    }

    static HttpRequest postRequest(LlavaServer s, JsonNode body) throws Exception {
        return HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + s.port() + "/v1/chat/completions"))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(JSON.writeValueAsString(body))).build();
    }

    static JsonNode healthOf(LlavaServer s) throws Exception {
        return JSON.readTree(http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + s.port() + "/health")).build(),
                HttpResponse.BodyHandlers.ofString()).body());
    }

    static void await(LlavaServer s, Predicate<JsonNode> health, String what) throws Exception {
        long until = System.nanoTime() + 20_000_000_000L;
        JsonNode h;
        while (!health.test(h = healthOf(s))) {
            assertTrue(System.nanoTime() < until, what + ": " + h);
            Thread.sleep(10);
        }
    }

    /** The content a stream's next chunks carry, up to [DONE]. */
    static String content(Iterator<String> lines) throws Exception {
        StringBuilder text = new StringBuilder();
        while (lines.hasNext()) {
            String l = lines.next();
            if (!l.startsWith("data: ")) continue;
            if (l.equals("data: [DONE]")) return text.toString();
            text.append(JSON.readTree(l.substring(6)).at("/choices/0/delta/content").asText(""));
        }
        fail("the stream ended without [DONE]");
        return null;
    }

    @Test
    void requestsJoiningARunningBatchGetTheOneAtATimeAnswers() throws Exception {
        try (LlavaServer s = new LlavaServer(tiny, LIMITS.withMaxBatch(4)).start("127.0.0.1", 0)) {
            // a long request keeps the batch running while the others arrive, join it and leave it
            CompletableFuture<HttpResponse<String>> longOne = http.sendAsync(postRequest(s, request(QUESTION, image, 250, false)
                    .put("ignore_eos", true)), HttpResponse.BodyHandlers.ofString());
            await(s, h -> h.get("running").asInt() == 1, "the long request never started");
            String[] questions = {"Colour?", "Count the shapes, please.", "Where is the circle?"};
            int[] maxTokens = {20, 6, 14};
            List<CompletableFuture<HttpResponse<String>>> answers = new ArrayList<>();
            for (int i = 0; i < questions.length; i++)
                answers.add(http.sendAsync(postRequest(s, request(questions[i], image, maxTokens[i], i == 1)), HttpResponse.BodyHandlers.ofString()));
            for (int i = 0; i < questions.length; i++) {
                HttpResponse<String> r = answers.get(i).get();
                assertEquals(200, r.statusCode(), r.body());
                String text = i == 1 ? content(r.body().lines().iterator()).strip() : JSON.readTree(r.body()).at("/choices/0/message/content").asText();
                assertEquals(expectedAnswer(questions[i], maxTokens[i]), text, questions[i]);
            }
            HttpResponse<String> longAnswer = longOne.get();
            assertEquals(200, longAnswer.statusCode(), longAnswer.body());
            assertEquals(expectedIgnoringEos(QUESTION, 250), JSON.readTree(longAnswer.body()).at("/choices/0/message/content").asText());
            double most = batchRowsMax(s);
            assertTrue(most >= 2, "requests shared decoding steps: at most " + most + " rows");
        }
    }

    /** The most rows a decoding step had, from /metrics (which must also have the batch-size gauge). */
    static double batchRowsMax(LlavaServer s) throws Exception {
        String metrics = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + s.port() + "/metrics")).build(),
                HttpResponse.BodyHandlers.ofString()).body();
        assertTrue(metrics.contains("llava4j_batch_size "), metrics);
        return metrics.lines().filter(l -> l.startsWith("llava4j_batch_rows_max ")).mapToDouble(l -> Double.parseDouble(l.split(" ")[1]))
                .findFirst().orElseThrow(() -> new AssertionError("no llava4j_batch_rows in " + metrics));
    }

    static Socket openStream(LlavaServer s, ObjectNode body) throws Exception {
        byte[] bytes = JSON.writeValueAsBytes(body);
        Socket sock = new Socket("127.0.0.1", s.port());
        OutputStream out = sock.getOutputStream();
        out.write(("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:" + s.port() + "\r\nContent-Type: application/json\r\n"
                + "Content-Length: " + bytes.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
        out.write(bytes);
        out.flush();
        return sock;
    }

    @Test
    void maxBatchBoundsTheRunningRequestsAndADroppedOneMakesRoom() throws Exception {
        try (LlavaServer s = new LlavaServer(tiny, LIMITS.withMaxBatch(2)).start("127.0.0.1", 0)) { // 2 rows, 1 waiting
            ObjectNode longRequest = request(QUESTION, image, 4000, true).put("ignore_eos", true);
            Socket first = openStream(s, longRequest);
            await(s, h -> h.get("running").asInt() == 1, "the first request never started");
            Socket second = openStream(s, longRequest);
            await(s, h -> h.get("running").asInt() == 2, "the second request never joined");
            Socket third = openStream(s, longRequest);
            await(s, h -> h.get("queued").asInt() == 1, "the third request does not wait");
            Thread.sleep(300); // many decoding steps of the tiny model: the third request must still wait
            JsonNode h = healthOf(s);
            assertEquals(2, h.get("running").asInt(), "max_batch 2: " + h);
            assertEquals(1, h.get("queued").asInt(), "max_batch 2: " + h);
            assertEquals(2, healthOf(s).get("max_batch").asInt());
            HttpResponse<String> refused = http.send(postRequest(s, request(QUESTION, image, 4, false)), HttpResponse.BodyHandlers.ofString());
            assertTrue(assertError(refused, 429, "queue_full").get("message").asText().contains("max_batch"), refused.body());
            first.close(); // its client leaves: its row goes, the waiting request takes it
            await(s, x -> x.get("queued").asInt() == 0 && x.get("running").asInt() == 2, "the waiting request did not take the free row");
            second.close();
            third.close();
            await(s, x -> x.get("running").asInt() == 0, "still generating after every client left");
            assertEquals(2.0, batchRowsMax(s), "rows of the largest decoding step");
            HttpResponse<String> r = http.send(postRequest(s, request(QUESTION, image, 4, false)), HttpResponse.BodyHandlers.ofString());
            assertEquals(expectedAnswer(QUESTION, 4), JSON.readTree(r.body()).at("/choices/0/message/content").asText());
        }
    }
}
