package io.llava4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.llava4j.TestData;
import io.llava4j.data.Conversation.Template;
import io.llava4j.generate.Assistant;
import io.llava4j.generate.Prompts;
import io.llava4j.generate.Sampling;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/** generate and chat end to end through Main.run. */
class GenerateCliTest {
    static final ObjectMapper JSON = new ObjectMapper();

    /** Runs the CLI with {@code stdin} as standard input; returns {exit code, stdout}. */
    static Object[] run(String stdin, String... args) {
        PrintStream oldOut = System.out;
        InputStream oldIn = System.in;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
            System.setIn(new ByteArrayInputStream(stdin.getBytes(StandardCharsets.UTF_8)));
            int rc = Main.run(args);
            return new Object[]{rc, buf.toString(StandardCharsets.UTF_8)};
        } finally {
            System.setOut(oldOut);
            System.setIn(oldIn);
        }
    }

    @Test
    void generateWritesTheReferenceTokens(@TempDir Path tmp) throws Exception {
        JsonNode ref = JSON.readTree(TestData.expected().resolve("generate.json").toFile());
        Path out = tmp.resolve("g.json");
        Object[] r = run("", "generate", "--model_name_or_path", TestData.tinyLlava().toString(),
                "--image", TestData.tinyData().resolve("images/img0.png").toString(),
                "--prompt", ref.get("args").get("prompt").asText(), "--max_new_tokens", String.valueOf(ref.get("tokens").size()),
                "--output_json", out.toString());
        assertEquals(0, r[0]);
        JsonNode g = JSON.readTree(out.toFile());
        assertEquals(ref.get("tokens"), g.get("tokens"));
        assertEquals(ref.get("prompt_ids"), g.get("prompt_ids"));
        assertEquals("length", g.get("stop_reason").asText());
        assertEquals(g.get("text").asText() + "\n", r[1]);
        assertTrue(g.get("timings").get("time_to_first_token_s").asDouble() > 0);
        assertTrue(g.get("timings").get("decode_tokens_per_s").asDouble() > 0);
        try (Assistant a = Assistant.load(TestData.tinyLlava(), Assistant.Options.DEFAULT)) {
            int[] toks = JSON.treeToValue(g.get("tokens"), int[].class);
            assertEquals(a.decode(toks), g.get("text").asText());
        }
    }

    /** The tiny OneVision folder (SigLIP + Qwen2 + AnyRes): qwen_1_5 by default, the reference's prompt ids and tokens. */
    @Test
    void generateOnevisionUsesQwenTemplateByDefault(@TempDir Path tmp) throws Exception {
        JsonNode ref = JSON.readTree(TestData.onevision().resolve("expected/generate.json").toFile());
        JsonNode req = JSON.readTree(TestData.onevision().resolve("tiny-data/generate.json").toFile());
        Path out = tmp.resolve("g.json");
        int n = 24; // the 13th token (1030) is an embedding row past the tokenizer: it has no text, as in HF
        Object[] r = run("", "generate", "--model_name_or_path", TestData.onevision().resolve("tiny-onevision").toString(),
                "--image", TestData.onevision().resolve("tiny-data/images").resolve(req.get("image").asText()).toString(),
                "--prompt", req.get("prompt").asText(), "--max_new_tokens", String.valueOf(n), "--output_json", out.toString());
        assertEquals(0, r[0], String.valueOf(r[1]));
        JsonNode g = JSON.readTree(out.toFile());
        assertEquals("qwen_1_5", g.get("conv_mode").asText());
        assertEquals(ref.get("prompt").asText(), g.get("prompt").asText());
        assertEquals(ref.get("prompt_ids"), g.get("prompt_ids"));
        for (int i = 0; i < n; i++) assertEquals(ref.get("tokens").get(i), g.get("tokens").get(i), "token " + i);
        assertEquals(n, g.get("tokens").size());
        assertEquals("length", g.get("stop_reason").asText());
        assertEquals(ref.get("prompt_ids").size() - 1 + ref.get("num_image_tokens").asInt(), g.get("timings").get("prompt_positions").asInt());
        assertEquals(g.get("text").asText() + "\n", r[1]);
    }

    @Test
    void generateRefusesBadValues() {
        assertNotEquals(0, run("", "generate", "--model_name_or_path", TestData.tinyLlava().toString(), "--prompt", "x",
                "--temperature", "-1")[0]);
        assertNotEquals(0, run("", "generate", "--model_name_or_path", TestData.tinyLlava().toString(), "--prompt", "x",
                "--conv_mode", "v0.5")[0]);
    }

    @Test
    void chatStreamsEachTurnAndEndsAtEndOfInput() throws Exception {
        Path img = TestData.tinyData().resolve("images/img0.png");
        Object[] r = run("What shape is on top?\nAnd below?\n", "chat", "--model_name_or_path", TestData.tinyLlava().toString(),
                "--image", img.toString(), "--temperature", "0", "--max_new_tokens", "6");
        assertEquals(0, r[0]);
        String out = (String) r[1];
        // the same two turns built by hand: the image token in turn 1, turn 1's answer + </s> in turn 2's prompt
        try (Assistant a = Assistant.load(TestData.tinyLlava(), Assistant.Options.DEFAULT)) {
            var px = a.pixels(img);
            Prompts p = new Prompts(Template.VICUNA_V1).user(Prompts.withImage("What shape is on top?"));
            String a1 = a.decode(a.generator().generate(px, a.encode(p.prompt(), true), Sampling.greedy(6), null).tokens());
            p.answer(a1).user("And below?");
            String a2 = a.decode(a.generator().generate(px, a.encode(p.prompt(), true), Sampling.greedy(6), null).tokens());
            String[] lines = out.split("\n");
            assertEquals(3, lines.length, out);
            assertEquals("USER: ASSISTANT: " + a1, lines[0].strip());
            assertEquals("USER: ASSISTANT: " + a2, lines[1].strip());
            assertEquals("USER: exit...", lines[2]);
        }
    }
}
