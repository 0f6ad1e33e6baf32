package io.llava4j.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.llava4j.TestData;
import io.llava4j.cli.Main;
import io.llava4j.io.Safetensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The real-shaped OneVision-0.5B folder of bench/onevision-real-size.sh (written here in a temporary folder: its data are
 * holes, no disk): its weight map is consistent (every index entry in the shard it names, {@code total_size} = the data
 * bytes), its tensor counts per module equal the counts derived by hand from the config (SigLIP-so400m cut to 26 layers,
 * mlp2x_gelu projector, image_newline, Qwen2-0.5B with vocab 152000: 0.894 B), and {@code llava4j inspect} — which loads
 * the folder strictly, so every name and shape must match the model — prints the same counts, the tied
 * {@code language_model.lm_head.weight} copy not counted twice. Loads in a child JVM (≈1.9 GB, 10-30 s on two cores).
 */
class OnevisionRealShapeTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final Path REAL = Path.of("src/test/resources/real-configs/llava-hf__llava-onevision-qwen2-0.5b-ov-hf");

    @TempDir
    Path tmp;

    /** Parameters per inspect module (vision, projector, image_newline, llm) and the head copy, from the files. */
    static Map<String, Long> countsFromWeightMap(Path model) throws Exception {
        JsonNode index = JSON.readTree(model.resolve("model.safetensors.index.json").toFile());
        Map<String, Long> counts = new LinkedHashMap<>();
        for (String k : List.of("vision", "projector", "image_newline", "llm", "lm_head")) counts.put(k, 0L);
        Set<String> shards = new TreeSet<>();
        index.get("weight_map").properties().forEach(e -> shards.add(e.getValue().asText()));
        long bytes = 0;
        Set<String> listed = new TreeSet<>();
        for (String shard : shards) {
            Safetensors.SafetensorsFile f = Safetensors.read(model.resolve(shard));
            for (var t : f.tensors().entrySet()) {
                String name = t.getKey();
                assertEquals(shard, index.get("weight_map").path(name).asText(null), name + " is in " + shard);
                assertEquals("BF16", t.getValue().dtype().name(), name);
                listed.add(name);
                long n = t.getValue().numel();
                bytes += 2 * n;
                String part = name.startsWith("vision_tower.vision_model.") ? "vision"
                        : name.startsWith("multi_modal_projector.") ? "projector"
                        : name.equals("image_newline") ? "image_newline"
                        : name.equals("language_model.lm_head.weight") ? "lm_head"
                        : name.startsWith("language_model.model.") ? "llm" : null;
                assertNotNull(part, "unexpected tensor " + name);
                counts.merge(part, n, Long::sum);
            }
        }
        assertEquals(index.get("weight_map").size(), listed.size(), "every index entry is in a shard");
        assertEquals(bytes, index.get("metadata").get("total_size").asLong());
        return counts;
    }

    @Test
    void inspectCountsEqualTheWeightMapAndTheConfig() throws Exception {
        Path model = tmp.resolve("llava-onevision-qwen2-0.5b-ov-hf");
        long bytes = SparseCheckpoints.onevision(REAL, TestData.onevision().resolve("tiny-onevision"), model);
        assertTrue(Files.size(model.resolve("model-00001-of-00002.safetensors")) > 1_000_000_000L);
        assertTrue(Files.isRegularFile(model.resolve("model-00002-of-00002.safetensors")));
        Map<String, Long> files = countsFromWeightMap(model);

        // by hand from config.json
        long h = 1152, inter = 4304, layers = 26, patches = (384 / 14) * (384 / 14);
        long siglip = h * 3 * 14 * 14 + h + patches * h // biased patch conv, positions (no class token)
                + layers * (4 * (h * h + h) + 2 * 2 * h + h * inter + inter + inter * h + h) + 2 * h; // post_layernorm
        long d = 896, dInter = 4864, kv = 2 * (896 / 14), vocab = 152000;
        long qwen = vocab * d + 24 * (d * d + d + 2 * (d * kv + kv) + d * d + 3 * d * dInter + 2 * d) + d;
        long projector = h * d + d + d * d + d;
        assertEquals(siglip, files.get("vision"));
        assertEquals(projector, files.get("projector"));
        assertEquals(d, files.get("image_newline"));
        assertEquals(qwen, files.get("llm"));
        assertEquals(vocab * d, files.get("lm_head"), "the tied head's copy");
        assertEquals(2 * (siglip + projector + d + qwen + vocab * d), bytes);

        String out = inspect(model);
        Map<String, Long> printed = new LinkedHashMap<>();
        Matcher m = Pattern.compile("(?m)^(vision|projector|image_newline|llm|total)\\s+([0-9,]+)$").matcher(out);
        while (m.find()) printed.put(m.group(1), Long.parseLong(m.group(2).replace(",", "")));
        assertEquals(files.get("vision"), printed.get("vision"), out);
        assertEquals(files.get("projector"), printed.get("projector"), out);
        assertEquals(files.get("image_newline"), printed.get("image_newline"), out);
        assertEquals(files.get("llm"), printed.get("llm"), out + "\n(the tied lm_head copy must not be counted)");
        long total = files.values().stream().mapToLong(Long::longValue).sum() - files.get("lm_head");
        assertEquals(total, printed.get("total"), out);
        assertEquals(893_675_552L, total);
        assertEquals(0.89e9, total, 0.01e9);
        assertTrue(out.contains("SigLIP 26 layers") && out.contains("Qwen2 24 layers") && out.contains("over 36 pinpoints"), out);
    }

    /** {@code llava4j inspect --bf16 True} in a fresh JVM (the load's ≈1.9 GB freed with it); its output. */
    private String inspect(Path model) throws Exception {
        Path log = tmp.resolve("inspect.log");
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> cmd = new ArrayList<>(List.of(java, "-Xss8m", "-Dorg.bytedeco.javacpp.maxPhysicalBytes=0",
                "-Dorg.bytedeco.javacpp.maxBytes=0", "-cp", System.getProperty("java.class.path"), Main.class.getName(),
                "inspect", "--bf16", "True", "--model_name_or_path", model.toString()));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().put("OMP_WAIT_POLICY", "PASSIVE");
        Process p = pb.start();
        if (!p.waitFor(4, TimeUnit.MINUTES)) {
            p.destroyForcibly();
            fail("inspect did not finish:\n" + Files.readString(log));
        }
        String out = Files.readString(log);
        assertEquals(0, p.exitValue(), out);
        return out;
    }
}
