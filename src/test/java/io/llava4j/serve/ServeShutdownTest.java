package io.llava4j.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.llava4j.TestData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code llava4j serve} in a child JVM, stopped by SIGTERM ({@link Process#destroy()} on Linux) while it streams: the
 * stream runs to {@code [DONE]}, a new request meanwhile gets 503, and the process exits 0.
 */
class ServeShutdownTest {
    static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void sigtermDrainsARunningStreamThenExitsZero(@TempDir Path dir) throws Exception {
        Path model = LlavaServerTest.longContextTiny();
        Path console = dir.resolve("console.txt");
        List<String> cmd = List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx512m", "-Xss8m",
                "-cp", System.getProperty("java.class.path"), "io.llava4j.cli.Main", "serve", "--model_name_or_path", model.toString(),
                "--port", "0", "--drain_timeout", "120", "--max_new_tokens", "8000");
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(console.toFile());
        pb.environment().put("OMP_WAIT_POLICY", "PASSIVE");
        Process p = pb.start();
        try {
            int port = -1;
            Pattern serving = Pattern.compile("on http://127\\.0\\.0\\.1:(\\d+)/");
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
            while (port < 0) {
                assertTrue(p.isAlive(), "serve exited: " + Files.readString(console));
                assertTrue(System.nanoTime() < until, "serve did not start: " + Files.readString(console));
                Matcher m = serving.matcher(Files.readString(console));
                if (m.find()) port = Integer.parseInt(m.group(1));
                else Thread.sleep(100);
            }
            String url = "http://127.0.0.1:" + port + "/v1/chat/completions";
            String image = "data:image/png;base64," + Base64.getEncoder().encodeToString(Files.readAllBytes(TestData.tinyData().resolve("images/img0.png")));
            String body = JSON.writeValueAsString(LlavaServerTest.requestFor(model.getFileName().toString(), "What shape is on top?", image, 7000, true)
                    .put("ignore_eos", true));
            HttpClient http = HttpClient.newHttpClient();
            HttpResponse<java.io.InputStream> r = http.send(HttpRequest.newBuilder(URI.create(url)).header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofInputStream());
            assertEquals(200, r.statusCode());
            BufferedReader lines = new BufferedReader(new InputStreamReader(r.body(), StandardCharsets.UTF_8));
            List<String> data = new ArrayList<>();
            for (String l; data.size() < 3 && (l = lines.readLine()) != null; ) if (l.startsWith("data: ")) data.add(l.substring(6));

            p.destroy(); // SIGTERM
            long drainingUntil = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            String health = url.replace("/v1/chat/completions", "/health");
            while (http.send(HttpRequest.newBuilder(URI.create(health)).build(), HttpResponse.BodyHandlers.ofString()).statusCode() != 503) {
                assertTrue(System.nanoTime() < drainingUntil, "never started draining"); // the signal is handled asynchronously
                Thread.sleep(20);
            }
            HttpResponse<String> late = http.send(HttpRequest.newBuilder(URI.create(url)).header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(body.replace("7000", "1"))).build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(503, late.statusCode(), late.body());
            assertEquals("shutting_down", JSON.readTree(late.body()).at("/error/code").asText());

            for (String l; (l = lines.readLine()) != null; ) if (l.startsWith("data: ")) data.add(l.substring(6));
            assertEquals("[DONE]", data.get(data.size() - 1), "the stream ran to its end");
            JsonNode finish = JSON.readTree(data.get(data.size() - 2));
            assertEquals("length", finish.at("/choices/0/finish_reason").asText(), data.get(data.size() - 2));
            assertTrue(p.waitFor(120, TimeUnit.SECONDS), "serve did not exit after draining");
            assertEquals(0, p.exitValue(), Files.readString(console));
        } finally {
            p.destroyForcibly();
        }
    }
}
