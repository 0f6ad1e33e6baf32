package io.llava4j.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.llava4j.TestData;
import io.llava4j.data.Conversation.Template;
import io.llava4j.generate.Assistant;
import io.llava4j.generate.Prompts;
import io.llava4j.generate.Sampling;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The official OpenAI Node client (npm {@code openai}, pinned in {@code src/test/node/openai-client/package.json})
 * against the server with an API key: {@code check.mjs} lists and retrieves the model, asks non-streamed and streamed,
 * cuts an answer with {@code stop}, and expects the SDK's typed errors for a wrong key (401), an invalid image (400)
 * and an unknown model (404). Skipped where {@code node} or the client's {@code node_modules} ({@code npm ci} in that
 * folder, as {@code .ci/run} does) are missing.
 */
class OpenAiClientTest {
    static final Path CLIENT = Path.of("src/test/node/openai-client");
    static final String KEY = "llava4j-test-key", QUESTION = "What shape is on top?";
    static final int MAX_TOKENS = 16; // check.mjs's

    static boolean nodeRuns() {
        try {
            Process p = new ProcessBuilder("node", "--version").redirectErrorStream(true).start();
            return p.waitFor(30, TimeUnit.SECONDS) && p.exitValue() == 0;
        } catch (Exception e) {
            return false;
        }
    }

    @Test
    void officialClientPassesItsChecks(@TempDir Path tmp) throws Exception {
        assumeTrue(nodeRuns(), "needs node on the PATH");
        assumeTrue(Files.isRegularFile(CLIENT.resolve("node_modules/openai/package.json")),
                "needs the openai package installed: npm ci in " + CLIENT);
        Path img = TestData.tinyData().resolve("images/img0.png");
        ServeOptions options = ServeOptions.DEFAULT.withApiKey(KEY);
        try (Assistant tiny = Assistant.load(TestData.tinyLlava(), Assistant.Options.DEFAULT);
             LlavaServer server = new LlavaServer(tiny, Template.of(tiny.defaultConvMode()), ServeLimits.defaults(), options)
                     .start("127.0.0.1", 0)) {
            Path out = tmp.resolve("stdout.json"), err = tmp.resolve("stderr.txt");
            Process p = new ProcessBuilder("node", "check.mjs", "http://127.0.0.1:" + server.port(), KEY, img.toAbsolutePath().toString())
                    .directory(CLIENT.toFile()).redirectOutput(out.toFile()).redirectError(err.toFile()).start();
            if (!p.waitFor(180, TimeUnit.SECONDS)) {
                p.destroyForcibly().waitFor();
                fail("check.mjs still running after 180 s; stderr: " + Files.readString(err));
            }
            String stdout = Files.readString(out, StandardCharsets.UTF_8), stderr = Files.readString(err, StandardCharsets.UTF_8);
            assertEquals(0, p.exitValue(), "check.mjs failed:\n" + stderr + stdout);
            JsonNode s = new ObjectMapper().readTree(stdout);
            System.out.println("openai " + s.get("openai_version").asText() + " on node " + s.get("node_version").asText() + " against serve: " + s.path("non_streamed"));

            int[] ids = tiny.encode(Prompts.runLlava(Template.of(tiny.defaultConvMode()), QUESTION, true), true);
            String want = tiny.decode(tiny.generator().generate(tiny.pixels(img), ids, Sampling.greedy(MAX_TOKENS), null).tokens());
            assertEquals(tiny.name(), s.get("model").asText());
            assertEquals(want, s.at("/non_streamed/content").asText(), "the greedy answer through the client");
            assertEquals(want, s.at("/streamed/content").asText().strip(), "the streamed answer through the client");
            assertTrue(s.at("/streamed/content_chunks").asInt() > 1, s.path("streamed").toString());
            assertEquals("stop", s.at("/stop/finish_reason").asText());
            assertTrue(want.startsWith(s.at("/stop/content").asText()) && s.at("/stop/content").asText().length() < want.length(),
                    s.path("stop").toString());
            String[][] errors = {
                    {"wrong_key_models", "AuthenticationError", "401"}, {"wrong_key_chat", "AuthenticationError", "401"},
                    {"invalid_image", "BadRequestError", "400"}, {"invalid_image_streamed", "BadRequestError", "400"},
                    {"unknown_model_retrieve", "NotFoundError", "404"}, {"unknown_model_chat", "NotFoundError", "404"}};
            for (String[] e : errors) {
                JsonNode got = s.at("/errors/" + e[0]);
                assertEquals(e[1], got.path("class").asText(), e[0] + ": " + got);
                assertEquals(Integer.parseInt(e[2]), got.path("status").asInt(), e[0] + ": " + got);
            }
        }
    }
}
