package io.llava4j.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.llava4j.TestData;
import io.llava4j.cli.Main;
import io.llava4j.engine.Tensors;
import io.llava4j.io.HostTensor;
import io.llava4j.io.Layout;
import io.llava4j.io.TorchPickleReader;
import io.llava4j.model.Checkpoints;
import io.llava4j.model.Llava;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.*;

/**
 * LoRA as LLaVA's finetune_lora.sh runs it, against the PyTorch reference in {@code reference-lora/} (PEFT's
 * definition), PEFT's file layout, the merge, the freezing, deterministic dropout and exact resume.
 */
class LoraTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Path REF = TestData.reference().resolveSibling("reference-lora");

    /** The reference's run (reference-lora/README.md) as llava4j flags. */
    static List<String> parityFlags(Path out) {
        return new ArrayList<>(List.of("--model_name_or_path", TestData.tinyLlava().toString(), "--version", "v1",
                "--data_path", TestData.tinyData().resolve("finetune.json").toString(),
                "--image_folder", TestData.tinyData().resolve("images").toString(),
                "--lora_enable", "True", "--lora_r", "4", "--lora_alpha", "8", "--lora_dropout", "0",
                "--lora_weight_path", REF.resolve("expected/init").toString(),
                "--learning_rate", "1e-2", "--mm_projector_lr", "2e-3", "--max_steps", "3", "--per_device_train_batch_size", "2",
                "--lr_scheduler_type", "constant", "--warmup_ratio", "0", "--weight_decay", "0", "--max_grad_norm", "0",
                "--logging_steps", "1", "--output_dir", out.toString()));
    }

    @Test
    void matchesPeftReferenceAndWritesPeftLayoutThenMerges(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("lora");
        Trainer t = TrainRuns.run(parityFlags(out));
        JsonNode ref = JSON.readTree(REF.resolve("expected/reference.json").toFile());
        TwoStageTrainingTest.assertLosses(ref, t.losses());

        // adapters: PEFT's keys, updates within 1e-3 of the reference's
        Map<String, HostTensor> init = TestData.tensors(REF.resolve("expected/init/adapter_model.safetensors"));
        Map<String, HostTensor> want = TestData.tensors(REF.resolve("expected/adapter_model.safetensors"));
        Map<String, HostTensor> got = TestData.tensors(out.resolve(LoraFiles.ADAPTER_FILE));
        assertEquals(want.keySet(), got.keySet());
        assertTrue(got.containsKey("base_model.model.language_model.model.layers.0.self_attn.q_proj.lora_A.weight"));
        assertEquals(2 * 7 * 2, got.size(), "A and B on 7 projections of 2 layers");
        for (String k : want.keySet()) {
            double e = TwoStageTrainingTest.updateError(got.get(k), want.get(k), init.get(k));
            assertTrue(e < 1e-3, k + ": update error " + e);
        }
        // the projector (its own lr) in non_lora_trainables.bin under LLaVA's names
        Map<String, HostTensor> base = TestData.tensors(TestData.tinyLlava().resolve("model.safetensors"));
        Map<String, HostTensor> nonLora = TorchPickleReader.read(out.resolve(LoraFiles.NON_LORA_FILE));
        Map<String, HostTensor> wantProj = TestData.tensors(REF.resolve("expected/non_lora.safetensors"));
        assertEquals(wantProj.keySet(), nonLora.keySet(), "the projector alone, with PEFT's prefix");
        for (String k : wantProj.keySet()) {
            double e = TwoStageTrainingTest.updateError(nonLora.get(k), wantProj.get(k), base.get(k.substring(LoraFiles.PEFT_PREFIX.length())));
            assertTrue(e < 1e-3, k + ": update error " + e);
        }
        JsonNode cfg = JSON.readTree(out.resolve(LoraFiles.CONFIG_FILE).toFile());
        assertEquals("LORA", cfg.get("peft_type").asText());
        assertEquals("CAUSAL_LM", cfg.get("task_type").asText());
        assertEquals(4, cfg.get("r").asInt());
        assertEquals(8, cfg.get("lora_alpha").asInt());
        assertEquals(0.0, cfg.get("lora_dropout").asDouble());
        assertEquals("none", cfg.get("bias").asText());
        assertTrue(cfg.get("base_model_name_or_path").asText().endsWith("tiny-llava"));
        // target_modules full-matches exactly the adapted paths (as PEFT applies a string), none of CLIP's q_proj
        java.util.regex.Pattern targets = java.util.regex.Pattern.compile(cfg.get("target_modules").asText());
        assertTrue(targets.matcher("language_model.model.layers.1.mlp.down_proj").matches());
        assertFalse(targets.matcher("vision_tower.vision_model.encoder.layers.0.self_attn.q_proj").matches());
        assertFalse(targets.matcher("language_model.lm_head").matches());
        assertTrue(Files.isRegularFile(out.resolve("config.json")));

        // frozen: the base bit-identical; the optimizer holds state for adapters and projector only
        Map<String, Tensor> params = t.parameters();
        for (Map.Entry<String, HostTensor> e : base.entrySet()) {
            String n = e.getKey();
            if (n.startsWith(Layout.PROJECTOR) || !params.containsKey(n)) continue;
            assertArrayEquals(e.getValue().toFloats(), Tensors.toFloats(params.get(n)), n + " is frozen");
        }
        Set<String> stateFor = t.optimizer().state().keySet();
        assertTrue(stateFor.stream().allMatch(n -> ModuleGroups.isLora(n) || n.startsWith(Layout.PROJECTOR)), stateFor.toString());
        assertEquals(28 + 4, stateFor.size());
        double projectorLr = t.optimizer().groups().stream().filter(g -> g.params.keySet().stream().allMatch(n -> n.startsWith(Layout.PROJECTOR)))
                .findFirst().orElseThrow().baseLr;
        assertEquals(2e-3, projectorLr, 1e-12, "--mm_projector_lr");

        io.llava4j.model.CheckpointException notAModel = assertThrows(io.llava4j.model.CheckpointException.class, () -> Checkpoints.load(out));
        assertTrue(notAModel.getMessage().contains("llava4j merge"), notAModel.getMessage());

        // merge (LLaVA's merge_lora_weights.py): W + scale·B·A for adapted weights, the projector from non_lora_trainables
        Path merged = tmp.resolve("merged");
        assertEquals(0, Main.run("merge", "--lora_path", out.toString(), "--model_name_or_path", TestData.tinyLlava().toString(),
                "--output_dir", merged.toString()));
        Map<String, HostTensor> m = TestData.tensors(merged.resolve("model.safetensors"));
        assertEquals(base.keySet(), m.keySet(), "the base's layout, no adapter tensors");
        int adapted = 0;
        for (String n : base.keySet()) {
            String a = LoraFiles.PEFT_PREFIX + n.replace(".weight", ".lora_A.weight"), b = a.replace(".lora_A.", ".lora_B.");
            if (got.containsKey(a)) {
                Tensor w = Tensors.fromHost(base.get(n)).add(Tensors.fromHost(got.get(b)).matmul(Tensors.fromHost(got.get(a))).mul(new Scalar(2.0)));
                assertTrue(Tensors.relativeError(Tensors.fromHost(m.get(n)), w) < 1e-6, n + " = W + (8/4)·B·A");
                assertFalse(Arrays.equals(base.get(n).toFloats(), m.get(n).toFloats()), n + " changed");
                adapted++;
            } else if (n.startsWith(Layout.PROJECTOR)) {
                assertArrayEquals(nonLora.get(LoraFiles.PEFT_PREFIX + n).toFloats(), m.get(n).toFloats(), n);
            } else {
                assertArrayEquals(base.get(n).toFloats(), m.get(n).toFloats(), n + " untouched");
            }
        }
        assertEquals(14, adapted);
        // the merged model computes what the adapted one did
        Llava mm = Checkpoints.load(merged).model();
        long[][] ids = {{1, 5, 1023, 7, 9, 11}};
        Tensor px = org.bytedeco.pytorch.global.torch.rand(1, 3, 16, 16);
        Tensor l1 = t.model().forward(px, ids, null).logits(), l2 = mm.forward(px, ids, null).logits();
        assertTrue(Tensors.relativeError(l2, l1) < 1e-5, "merged logits = adapted logits: " + Tensors.relativeError(l2, l1));
    }

    @Test
    void adaptersFollowPeftInitOnlyOnTheLlmByModulePath(@TempDir Path tmp) throws Exception {
        Llava m = Checkpoints.load(TestData.tinyLlava()).model();
        long[][] ids = {{1, 5, 1023, 7, 9}};
        Tensor px = org.bytedeco.pytorch.global.torch.rand(1, 3, 16, 16);
        Tensor before = m.forward(px, ids, null).logits();
        List<String> paths = LoraAdapters.attach(m, LoraSpec.llava(8, 16, 0.05), Layout.LLAVA_HF);
        assertEquals(14, paths.size());
        assertTrue(paths.stream().allMatch(p -> p.startsWith("language_model.model.layers.")), paths.toString());
        Map<String, Tensor> lora = LoraAdapters.parameters(m);
        assertTrue(lora.keySet().stream().noneMatch(n -> n.startsWith(Layout.VISION) || n.startsWith(Layout.PROJECTOR)),
                "no adapter in the vision tower (CLIP has q_proj/k_proj/v_proj too) or the projector");
        for (Map.Entry<String, Tensor> e : lora.entrySet()) {
            Tensor p = e.getValue();
            if (e.getKey().endsWith("lora_B.weight")) assertEquals(0.0, p.abs().max().item_double(), e.getKey() + " starts at zero");
            else {
                double bound = 1 / Math.sqrt(p.size(1)); // kaiming_uniform(a=√5) = U(±1/√in)
                assertTrue(p.abs().max().item_double() <= bound && p.abs().max().item_double() > 0.8 * bound, e.getKey());
                assertEquals(8, p.size(0));
            }
        }
        // B = 0: the adapted model starts equal to the base (no dropout outside training)
        assertEquals(0.0, Tensors.relativeError(m.forward(px, ids, null).logits(), before), 1e-7);
        FreezePlan plan = FreezePlan.of(m, FreezePlan.Flags.STAGE2);
        plan.apply(m);
        assertEquals(Set.of("llm.lora", "projector"), plan.trainable().stream().map(ModuleGroups::partOf).collect(Collectors.toSet()));
        assertFalse(plan.partTrains("vision") || plan.partTrains("llm.lm_head") || plan.partTrains("llm.embed") || plan.partTrains("llm.layers"));
        assertTrue(new TrainReport(m, plan).render().contains("llm.lora"));
        // --tune_mm_mlp_adapter wins over LoRA as in LLaVA (model.requires_grad_(False), then the projector)
        assertEquals(Set.of("projector"), FreezePlan.of(m, FreezePlan.Flags.STAGE1).trainable().stream().map(ModuleGroups::partOf).collect(Collectors.toSet()));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new LoraSpec(4, 8, 0, List.of("out_proj"), null));
        assertTrue(e.getMessage().contains("out_proj"), e.getMessage());

        // the PEFT folder reads back; merging it onto a model of another shape names the file and the tensor
        Path dir = tmp.resolve("adapter");
        LoraFiles.write(m, plan, LoraSpec.llava(8, 16, 0.05), Layout.LLAVA_HF, dir, TestData.tinyLlava());
        LoraFiles.Adapter read = LoraFiles.readAdapter(dir);
        assertEquals(28, read.tensors().size());
        assertEquals(2.0, read.scale());
        io.llava4j.model.CheckpointException ce = assertThrows(io.llava4j.model.CheckpointException.class,
                () -> LoraMerge.merge(dir, TestData.gqa().resolve("model"), tmp.resolve("x")));
        assertTrue(ce.getMessage().contains(LoraFiles.NON_LORA_FILE) || ce.getMessage().contains(LoraFiles.ADAPTER_FILE), ce.getMessage());
        assertEquals(1, Main.run("merge", "--lora_path", tmp.resolve("missing").toString(), "--model_name_or_path",
                TestData.tinyLlava().toString(), "--output_dir", tmp.resolve("y").toString()), "a folder without adapter_config.json");
    }

    /** A 3-step run with dropout 0.05 (from PEFT's init: the seed decides A). */
    static List<String> dropoutFlags(Path out, boolean recompute) {
        List<String> f = parityFlags(out);
        int i = f.indexOf("--lora_weight_path");
        f.remove(i + 1);
        f.remove(i);
        f.set(f.indexOf("--lora_dropout") + 1, "0.05");
        f.addAll(List.of("--save_steps", "2", "--gradient_checkpointing", recompute ? "True" : "False"));
        return f;
    }

    @Test
    void dropoutIsSeededSoRecomputeAndResumeAreExact(@TempDir Path tmp) throws Exception {
        Trainer plain = TrainRuns.run(dropoutFlags(tmp.resolve("a"), false));
        Trainer recomputed = TrainRuns.run(dropoutFlags(tmp.resolve("b"), true));
        Map<String, HostTensor> a = TestData.tensors(tmp.resolve("a").resolve(LoraFiles.ADAPTER_FILE));
        Map<String, HostTensor> b = TestData.tensors(tmp.resolve("b").resolve(LoraFiles.ADAPTER_FILE));
        for (String k : a.keySet())
            assertTrue(Tensors.relativeError(Tensors.fromHost(b.get(k)), Tensors.fromHost(a.get(k))) < 1e-5,
                    k + ": a recomputed layer draws its forward's dropout mask");
        assertEquals(plain.losses().get(2), recomputed.losses().get(2), 1e-5);

        // dropout is on: without it the run differs
        List<String> noDropout = dropoutFlags(tmp.resolve("c"), false);
        noDropout.set(noDropout.indexOf("--lora_dropout") + 1, "0");
        Trainer c = TrainRuns.run(noDropout);
        assertEquals(plain.losses().get(0), c.losses().get(0), 1e-6, "B = 0: step 1's loss does not see the dropout");
        assertNotEquals(plain.losses().get(2), c.losses().get(2), 1e-6);
        // and it is reproducible: the same flags and seed give the same losses and adapters, bit for bit
        Trainer again = TrainRuns.run(dropoutFlags(tmp.resolve("a2"), false));
        assertEquals(plain.losses(), again.losses(), "dropout 0.05, the same seed: the same losses");
        Map<String, HostTensor> a2 = TestData.tensors(tmp.resolve("a2").resolve(LoraFiles.ADAPTER_FILE));
        for (String k : a.keySet()) assertArrayEquals(a.get(k).toFloats(), a2.get(k).toFloats(), k + ": the same seed, the same adapter");

        // crash after step 2's checkpoint (which holds the adapters, the projector and their AdamW state), resume
        Path r = tmp.resolve("resumed");
        new Trainer(io.llava4j.cli.TrainCommand.parse(dropoutFlags(r, false).toArray(new String[0]))).stopAfterStep(2).run();
        Map<String, HostTensor> ck = TestData.tensors(r.resolve("checkpoint-2/trainable.safetensors"));
        assertEquals(28 + 4, ck.size());
        // the checkpoint is also a LoRA output folder (adapters and projector), which merges as it is
        assertTrue(Files.isRegularFile(r.resolve("checkpoint-2").resolve(LoraFiles.NON_LORA_FILE)));
        assertEquals(0, Main.run("merge", "--lora_path", r.resolve("checkpoint-2").toString(), "--model_name_or_path",
                TestData.tinyLlava().toString(), "--output_dir", tmp.resolve("merged-ck").toString()));
        List<String> resume = dropoutFlags(r, false);
        resume.addAll(List.of("--resume_from_checkpoint", "True"));
        TrainRuns.run(resume);
        Map<String, HostTensor> got = TestData.tensors(r.resolve(LoraFiles.ADAPTER_FILE));
        for (String k : a.keySet()) assertArrayEquals(a.get(k).toFloats(), got.get(k).toFloats(), k + " resumes exactly");
        Map<String, HostTensor> nonLora = TorchPickleReader.read(tmp.resolve("a").resolve(LoraFiles.NON_LORA_FILE));
        Map<String, HostTensor> nonLoraResumed = TorchPickleReader.read(r.resolve(LoraFiles.NON_LORA_FILE));
        assertEquals(nonLora.keySet(), nonLoraResumed.keySet());
        assertEquals(4, nonLora.size(), "the projector's two weights and two biases");
        for (String k : nonLora.keySet())
            assertArrayEquals(nonLora.get(k).toFloats(), nonLoraResumed.get(k).toFloats(), k + " resumes exactly");
    }
}
