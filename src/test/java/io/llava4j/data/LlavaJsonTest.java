package io.llava4j.data;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class LlavaJsonTest {

    @TempDir
    Path dir;

    private static final String GOOD = "{\"id\": \"ok\", \"image\": \"a.png\", \"conversations\": [{\"from\": \"human\", \"value\": \"<image>\\nq\"}, {\"from\": \"gpt\", \"value\": \"a\"}]}";

    private Path write(String name, String text) throws IOException {
        Path p = dir.resolve(name);
        Files.writeString(p, text);
        return p;
    }

    /** Reads a two-record array whose second record is {@code bad}; returns the error message. */
    private String errorOf(String bad) throws IOException {
        Path p = write("data.json", "[" + GOOD + ",\n" + bad + "]");
        DataException e = assertThrows(DataException.class, () -> LlavaJson.read(p));
        assertTrue(e.getMessage().startsWith(p.toString()), e.getMessage());
        assertTrue(e.getMessage().contains("record #1"), e.getMessage());
        return e.getMessage();
    }

    @Test
    void readsReferenceFiles() throws IOException {
        List<LlavaRecord> pre = LlavaJson.read(Fixtures.DATA.resolve("pretrain.json"));
        assertEquals(2, pre.size());
        assertEquals("p1", pre.get(1).id());
        assertEquals("img1.png", pre.get(1).image());
        assertEquals(LlavaRecord.Role.HUMAN, pre.get(1).conversations().get(0).role());
        assertEquals("two green triangles on a white background", pre.get(1).conversations().get(1).value());
        assertEquals(4, LlavaJson.read(Fixtures.DATA.resolve("finetune.json")).get(0).conversations().size());
    }

    @Test
    void readsJsonLinesAndOptionalFields() throws IOException {
        Path p = write("data.jsonl", GOOD + "\n\n{\"id\": 17, \"conversations\": [{\"from\": \"user\", \"value\": \"hi\"},"
                + " {\"from\": \"assistant\", \"value\": \"hello\"}], \"model\": \"ignored\"}\n");
        List<LlavaRecord> rs = LlavaJson.read(p);
        assertEquals(2, rs.size());
        assertEquals("17", rs.get(1).id());
        assertFalse(rs.get(1).hasImage());
        assertEquals(1, rs.get(1).index());
        assertEquals(LlavaRecord.Role.GPT, rs.get(1).conversations().get(1).role());
    }

    @Test
    void malformedRecordsNameFileRecordAndField() throws IOException {
        String m = errorOf("{\"id\": \"x1\", \"image\": \"a.png\"}");
        assertTrue(m.contains("(id \"x1\")") && m.contains("conversations: missing"), m);
        m = errorOf("{\"id\": \"x2\", \"conversations\": \"hi\"}");
        assertTrue(m.contains("conversations: expected a list, got a string"), m);
        m = errorOf("{\"id\": \"x3\", \"conversations\": []}");
        assertTrue(m.contains("conversations: empty list"), m);
        m = errorOf("{\"id\": \"x6\", \"conversations\": [{\"from\": \"human\", \"value\": 3}]}");
        assertTrue(m.contains("conversations[0].value: expected a string, got a number"), m);
        m = errorOf("{\"id\": \"x7\", \"conversations\": [{\"value\": \"q\"}]}");
        assertTrue(m.contains("conversations[0].from: missing"), m);
        m = errorOf("{\"id\": \"x8\", \"image\": [\"a.png\", \"b.png\"], \"conversations\": [{\"from\": \"human\", \"value\": \"q\"}]}");
        assertTrue(m.contains("(id \"x8\")") && m.contains("image: multiple images not supported"), m);
        m = errorOf("{\"id\": \"v1\", \"video\": \"clip.mp4\", \"conversations\": [{\"from\": \"human\", \"value\": \"<video>\\nq\"}]}");
        assertTrue(m.contains("(id \"v1\")") && m.contains("field video: video samples are not supported"), m);
        m = errorOf("{\"id\": \"x9\", \"image\": 5, \"conversations\": [{\"from\": \"human\", \"value\": \"q\"}]}");
        assertTrue(m.contains("image: expected a file name"), m);
        m = errorOf("[1, 2]");
        assertTrue(m.contains("expected a JSON object, got a list"), m);
    }

    @Test
    void syntaxErrorsAndWrongTopLevel() throws IOException {
        Path p = write("broken.json", "[" + GOOD + ", {\"id\": \"b\", \"conversations\": [}]");
        DataException e = assertThrows(DataException.class, () -> LlavaJson.read(p));
        assertTrue(e.getMessage().contains("broken.json") && e.getMessage().contains("record #1") && e.getMessage().contains("line"), e.getMessage());
        Path obj = write("object.json", GOOD);
        e = assertThrows(DataException.class, () -> LlavaJson.read(obj));
        assertTrue(e.getMessage().contains("JSON array"), e.getMessage());
        Path lines = write("bad.jsonl", GOOD + "\n{oops\n");
        e = assertThrows(DataException.class, () -> LlavaJson.read(lines));
        assertTrue(e.getMessage().contains("record #1 (line 2)"), e.getMessage());
        e = assertThrows(DataException.class, () -> LlavaJson.read(dir.resolve("none.json")));
        assertTrue(e.getMessage().contains("none.json"), e.getMessage());
    }

    /** LLaVA-NeXT's YAML mixture: each file's first / last share or all of it, in order, numbered in the mixture. */
    @Test
    void yamlMixtureSelectsAsLlavaNext() throws IOException {
        StringBuilder a = new StringBuilder("["), b = new StringBuilder();
        for (int i = 0; i < 3; i++)
            a.append(i > 0 ? "," : "").append("{\"id\": \"a").append(i).append("\", \"conversations\": [{\"from\": \"human\", \"value\": \"q\"}]}");
        a.append("]");
        for (int i = 0; i < 4; i++) b.append("{\"id\": \"b").append(i).append("\", \"conversations\": [{\"from\": \"human\", \"value\": \"q\"}]}\n");
        Files.writeString(dir.resolve("a.json"), a);
        Files.writeString(dir.resolve("b.jsonl"), b);
        Path yaml = dir.resolve("mix.yaml");
        Files.writeString(yaml, String.join("\n", "datasets:",
                "  - json_path: a.json", "    sampling_strategy: \"first:50%\"",   // ceil(1.5) = 2
                "  - json_path: " + dir.resolve("b.jsonl"), "    sampling_strategy: end:1",
                "  - json_path: a.json", ""));
        List<LlavaRecord> rs = LlavaJson.read(yaml);
        assertEquals(List.of("a0", "a1", "b3", "a0", "a1", "a2"), rs.stream().map(LlavaRecord::id).toList());
        assertEquals(List.of(0, 1, 2, 3, 4, 5), rs.stream().map(LlavaRecord::index).toList(), "numbered in the mixture");
        assertTrue(rs.get(2).describe().contains("b.jsonl record #3"), rs.get(2).describe());
        Files.writeString(yaml, "datasets:\n  - json_path: a.json\n    sampling_strategy: random:10%\n");
        DataException e = assertThrows(DataException.class, () -> LlavaJson.read(yaml));
        assertTrue(e.getMessage().contains("random") && e.getMessage().contains("datasets[0]"), e.getMessage());
        Files.writeString(yaml, "datasets:\n  - json_path: missing.json\n");
        e = assertThrows(DataException.class, () -> LlavaJson.read(yaml));
        assertTrue(e.getMessage().contains("missing.json"), e.getMessage());
    }
}
