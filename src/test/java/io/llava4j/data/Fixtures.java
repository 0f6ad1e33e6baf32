package io.llava4j.data;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Path;

/** Paths of the test fixtures and small utilities. */
final class Fixtures {
    static final Path REF = Path.of("src/test/resources/reference");
    static final Path MODEL = REF.resolve("tiny-llava");
    static final Path DATA = REF.resolve("tiny-data");
    static final Path IMAGES = DATA.resolve("images");
    static final Path OWN = Path.of("src/test/resources/data");
    static final int IMAGE_TOKEN = 1023;
    static final ObjectMapper JSON = new ObjectMapper();

    private Fixtures() {
    }

    static JsonNode json(Path p) throws IOException {
        return JSON.readTree(p.toFile());
    }

    static int[] ints(JsonNode arr) {
        int[] out = new int[arr.size()];
        for (int i = 0; i < out.length; i++) out[i] = arr.get(i).asInt();
        return out;
    }

    static LlavaRecord record(String json) throws IOException {
        return LlavaJson.parse("test.json", 0, JSON.readTree(json));
    }
}
