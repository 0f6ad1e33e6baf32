package io.llava4j.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.TestData;
import io.llava4j.cli.Main;
import io.llava4j.cli.TrainCommand;
import io.llava4j.engine.Tensors;
import io.llava4j.io.HostTensor;
import io.llava4j.io.Layout;
import io.llava4j.io.Safetensors;
import io.llava4j.model.Checkpoints;
import io.llava4j.model.Llava;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** LLaVA's real starting point: a LLaMA folder plus a CLIP folder; stage 1 builds a fresh projector, stage 2 a LLaVA. */
class FromLlamaAndClipTest {
    static final ObjectMapper JSON = new ObjectMapper();

    /** Splits the tiny model into a LLaMA folder (with tokenizer) and a CLIP folder (with processor config). */
    static Path[] split(Path dir) throws Exception {
        Llava m = Checkpoints.load(TestData.tinyLlava()).model();
        Path clip = dir.resolve("clip"), llama = dir.resolve("llama");
        Checkpoints.saveVisionTower(m, clip);
        Files.copy(TestData.tinyLlava().resolve("preprocessor_config.json"), clip.resolve("preprocessor_config.json"));
        Files.createDirectories(llama);
        ObjectNode cfg = JSON.valueToTree(m.config.text());
        cfg.putArray("architectures").add("LlamaForCausalLM");
        JSON.writeValue(llama.resolve("config.json").toFile(), cfg);
        Safetensors.write(llama.resolve("model.safetensors"), Checkpoints.checkpointTensors(m, Layout.LLAMA, false), Map.of());
        for (String f : List.of("tokenizer.json", "tokenizer_config.json"))
            Files.copy(TestData.tinyLlava().resolve(f), llama.resolve(f));
        return new Path[]{llama, clip};
    }

    static List<String> flags(Path llama, Path clip, Path out, String... more) {
        List<String> f = new ArrayList<>(List.of("--model_name_or_path", llama.toString(), "--vision_tower", clip.toString(),
                "--mm_projector_type", "mlp2x_gelu", "--mm_vision_select_layer", "-2",
                "--image_folder", TestData.tinyData().resolve("images").toString(), "--per_device_train_batch_size", "2",
                "--learning_rate", "1e-3", "--max_grad_norm", "0", "--lr_scheduler_type", "cosine", "--warmup_ratio", "0.03",
                "--logging_steps", "1", "--output_dir", out.toString()));
        f.addAll(List.of(more));
        return f;
    }

    @Test
    void stage1ThenStage2FromLlamaAndClip(@TempDir Path tmp) throws Exception {
        Path[] lc = split(tmp);
        Path s1 = tmp.resolve("s1"), s1again = tmp.resolve("s1b"), s2 = tmp.resolve("s2");
        String[] stage1 = {"--version", "plain", "--data_path", TestData.tinyData().resolve("pretrain.json").toString(),
                "--tune_mm_mlp_adapter", "True", "--max_steps", "2"};
        Trainer a = TrainRuns.run(flags(lc[0], lc[1], s1, stage1));
        Trainer b = TrainRuns.run(flags(lc[0], lc[1], s1again, stage1));
        assertEquals(a.losses(), b.losses(), "the same seed gives the same fresh projector and run");
        Map<String, HostTensor> proj = TestData.tensors(s1.resolve("mm_projector.safetensors"));
        assertEquals(java.util.Set.of("model.mm_projector.0.weight", "model.mm_projector.0.bias", "model.mm_projector.2.weight",
                "model.mm_projector.2.bias"), proj.keySet());
        // stage 1 left the LLM and the tower bit-identical
        Map<String, HostTensor> llm = TestData.tensors(lc[0].resolve("model.safetensors"));
        Map<String, HostTensor> clip = TestData.tensors(lc[1].resolve("model.safetensors"));
        for (Map.Entry<String, Tensor> e : a.parameters().entrySet()) {
            String n = e.getKey();
            if (n.startsWith(Layout.PROJECTOR)) continue;
            HostTensor src = n.startsWith(Layout.VISION) ? clip.get(Layout.LLAMA.fileName(n, 2)) : llm.get(Layout.LLAMA.fileName(n, 2));
            assertTrue(e.getValue().equal(Tensors.fromHost(src)), n);
        }

        Trainer t = TrainRuns.run(flags(lc[0], lc[1], s2, "--version", "v1", "--data_path", TestData.tinyData().resolve("finetune.json").toString(),
                "--pretrain_mm_mlp_adapter", s1.resolve("mm_projector.safetensors").toString(), "--max_steps", "3"));
        // warmup_ratio 0.03 of 3 steps = 1 warmup step at lr 0 (HF's schedule), then cosine
        assertEquals(t.losses().get(0), t.losses().get(1), "the warmup step has lr 0");
        assertEquals(0.0, JSON.readTree(Files.readAllLines(s2.resolve("log.jsonl")).get(0)).get("lr").asDouble());
        assertTrue(t.losses().get(2) < t.losses().get(1), "stage 2 learns: " + t.losses());
        // the output is an original-layout LLaVA that points at the CLIP folder and loads again
        assertEquals("llava_llama", JSON.readTree(s2.resolve("config.json").toFile()).get("model_type").asText());
        Checkpoints.Loaded back = Checkpoints.load(s2);
        assertEquals(Layout.ORIGINAL_LLAVA, back.layout());
        Map<String, Tensor> trained = t.parameters(), loaded = Tensors.namedParameters(back.model());
        for (String n : trained.keySet()) assertTrue(trained.get(n).equal(loaded.get(n)), n);
    }

    static String[] withTrain(List<String> f) {
        List<String> g = new ArrayList<>(List.of("train"));
        g.addAll(f);
        return g.toArray(new String[0]);
    }

    @Test
    void dryRunPrintsTheReportAndWritesNothing(@TempDir Path tmp) throws Exception {
        Path[] lc = split(tmp);
        Path out = tmp.resolve("dry");
        java.io.PrintStream old = System.out;
        java.io.ByteArrayOutputStream buf = new java.io.ByteArrayOutputStream();
        System.setOut(new java.io.PrintStream(buf));
        int rc;
        try {
            rc = Main.run(withTrain(flags(lc[0], lc[1], out, "--data_path", TestData.tinyData().resolve("pretrain.json").toString(),
                    "--tune_mm_mlp_adapter", "True", "--dry_run", "True")));
        } finally {
            System.setOut(old);
        }
        assertEquals(0, rc);
        String report = buf.toString();
        assertTrue(report.contains("projector") && report.contains("llm.lm_head") && report.contains("total"), report);
        assertFalse(Files.exists(out), "a dry run writes nothing");
    }
}
