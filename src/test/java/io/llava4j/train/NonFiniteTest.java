package io.llava4j.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.TestData;
import io.llava4j.cli.Main;
import io.llava4j.cli.TrainCommand;
import io.llava4j.data.LlavaTokenizer;
import io.llava4j.io.HostTensor;
import io.llava4j.io.Safetensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A NaN or Inf in a step stops the run before the update, saves the state before that step and names the step and its
 * samples. The fault is real, not simulated: one record ("poison") holds a word whose embedding row is crafted — NaN
 * for the fp32 run, 3.4e38 for the --bf16 run (finite in the fp32 file, beyond bf16's range: the frozen bf16 copy
 * overflows to Inf). The other records never read that row, so the steps before the bad one are the clean run's.
 */
class NonFiniteTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String WORD = "triangles";

    @TempDir
    Path tmp;

    @Test
    void nanLossStopsTheRunWithTheLastGoodState() throws Exception {
        check(Float.NaN, false);
    }

    @Test
    void bf16OverflowStopsTheRunWithTheLastGoodState() throws Exception {
        check(3.4e38f, true);
    }

    private void check(float poison, boolean bf16) throws Exception {
        Path data = data();
        Path clean = TestData.tinyLlava(), poisoned = poisonedModel(poison);

        // the clean run over the same records: the reference for the steps before the bad one
        Trainer ref = TrainRuns.run(flags(clean, data, tmp.resolve("clean"), bf16));
        assertEquals(6, ref.losses().size());
        for (double l : ref.losses()) assertTrue(Double.isFinite(l), "the clean run is finite: " + ref.losses());

        Path out = tmp.resolve("poisoned");
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream saved = System.err;
        int rc;
        try {
            System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
            rc = Main.run(prepend("train", flags(poisoned, data, out, bf16)));
        } finally {
            System.setErr(saved);
        }
        String stderr = err.toString(StandardCharsets.UTF_8);
        System.out.println("what the user sees:\n" + stderr.lines().filter(l -> l.startsWith("error:")).findFirst().orElse(stderr));
        assertEquals(1, rc, stderr);
        assertFalse(stderr.contains("\tat "), "no stack trace: " + stderr);

        // the first step holding the poisoned record, from the clean run's sample order
        NonFiniteException e = assertThrows(NonFiniteException.class, () -> TrainRuns.run(flags(poisoned, data, tmp.resolve("again"), bf16)));
        int bad = e.step();
        assertEquals(List.of("poison"), e.sampleIds());
        assertTrue(stderr.contains("error: step " + bad + ": the "), stderr);
        assertTrue(stderr.contains("samples poison"), stderr);
        if (bf16) assertTrue(stderr.contains("--bf16"), stderr);
        assertEquals("checkpoint-" + (bad - 1), e.checkpoint().getFileName().toString());
        assertTrue(stderr.contains(out.resolve("checkpoint-" + (bad - 1)).toString()), stderr);

        // nothing of the bad step was applied: the checkpoint holds the clean run's state after bad - 1 steps
        Map<String, HostTensor> saved0 = Safetensors.read(out.resolve("checkpoint-" + (bad - 1)).resolve("trainable.safetensors")).tensors();
        Map<String, float[]> expected = new LinkedHashMap<>();
        if (bad == 1) {
            Map<String, HostTensor> init = Safetensors.read(clean.resolve("model.safetensors")).tensors();
            for (String n : saved0.keySet()) expected.put(n, init.get(n).toFloats());
        } else {
            Trainer part = new Trainer(TrainCommand.parse(flags(clean, data, tmp.resolve("part"), bf16).toArray(new String[0])))
                    .stopAfterStep(bad - 1);
            part.run();
            assertEquals(ref.losses().subList(0, bad - 1), part.losses());
            for (String n : saved0.keySet()) expected.put(n, io.llava4j.engine.Tensors.toFloats(part.parameters().get(n)));
        }
        assertFalse(saved0.isEmpty());
        for (String n : saved0.keySet()) assertArrayEquals(expected.get(n), saved0.get(n).toFloats(), n);
        // the log has the good steps only, and no final output was written
        assertEquals(bad - 1, Files.exists(out.resolve("log.jsonl")) ? Files.readAllLines(out.resolve("log.jsonl")).size() : 0);
        assertFalse(Files.exists(out.resolve("config.json")));
    }

    /** Five clean copies of the first finetune record and one, "poison", that also holds {@link #WORD}. */
    private Path data() throws Exception {
        ArrayNode records = (ArrayNode) JSON.readTree(TestData.tinyData().resolve("finetune.json").toFile());
        ArrayNode out = JSON.createArrayNode();
        for (int i = 0; i < 5; i++) out.add(((ObjectNode) records.get(0).deepCopy()).put("id", "clean" + i));
        ObjectNode poison = (ObjectNode) records.get(1).deepCopy();
        poison.put("id", "poison");
        out.insert(2, poison);
        Path file = tmp.resolve("data.json");
        JSON.writeValue(file.toFile(), out);
        return file;
    }

    /** tiny-llava whose embedding rows of {@link #WORD}'s tokens (those no clean record uses) are {@code value}. */
    private Path poisonedModel(float value) throws Exception {
        Path dir = tmp.resolve("model-" + value);
        Files.createDirectories(dir);
        try (var files = Files.list(TestData.tinyLlava())) {
            for (Path f : files.toList()) if (!f.getFileName().toString().equals("model.safetensors")) Files.copy(f, dir.resolve(f.getFileName()));
        }
        Set<Integer> rows;
        try (LlavaTokenizer tok = LlavaTokenizer.load(TestData.tinyLlava())) {
            String cleanText = JSON.readTree(TestData.tinyData().resolve("finetune.json").toFile()).get(0).toString()
                    + " A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful,"
                    + " detailed, and polite answers to the human's questions. USER: ASSISTANT: </s>";
            Set<Integer> used = Arrays.stream(tok.encode(cleanText, true)).boxed().collect(Collectors.toSet());
            rows = Arrays.stream(tok.encode("How many " + WORD + " are there? two green " + WORD, false)).boxed()
                    .filter(t -> !used.contains(t)).collect(Collectors.toSet());
        }
        assertFalse(rows.isEmpty(), WORD + " has tokens of its own");
        Map<String, HostTensor> t = new LinkedHashMap<>(Safetensors.read(TestData.tinyLlava().resolve("model.safetensors")).tensors());
        String name = "language_model.model.embed_tokens.weight";
        HostTensor emb = t.get(name);
        float[] v = emb.toFloats();
        int width = (int) emb.shape()[1];
        for (int r : rows) Arrays.fill(v, r * width, (r + 1) * width, value);
        t.put(name, HostTensor.ofFloats(emb.shape(), v));
        Safetensors.write(dir.resolve("model.safetensors"), t, Map.of("format", "pt"));
        return dir;
    }

    private static List<String> flags(Path model, Path data, Path out, boolean bf16) {
        List<String> f = new ArrayList<>(List.of("--model_name_or_path", model.toString(), "--version", "v1",
                "--data_path", data.toString(), "--image_folder", TestData.tinyData().resolve("images").toString(),
                "--tune_mm_mlp_adapter", "True", "--per_device_train_batch_size", "1", "--num_train_epochs", "1",
                "--learning_rate", "1e-3", "--lr_scheduler_type", "constant", "--max_grad_norm", "1.0",
                "--save_steps", "100", "--logging_steps", "1", "--seed", "3", "--output_dir", out.toString()));
        if (bf16) f.addAll(List.of("--bf16", "True"));
        return f;
    }

    private static String[] prepend(String first, List<String> rest) {
        List<String> all = new ArrayList<>();
        all.add(first);
        all.addAll(rest);
        return all.toArray(new String[0]);
    }
}
