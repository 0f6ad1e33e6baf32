package io.llava4j.train;

import io.llava4j.TestData;
import io.llava4j.cli.Main;
import io.llava4j.cli.TrainCommand;
import io.llava4j.engine.Tensors;
import io.llava4j.model.Checkpoints;
import io.llava4j.model.Llava;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** LLaVA's freezing flags → one FreezePlan → requires_grad, optimizer groups and the report. */
class FreezeFlagsTest {
    static Llava model;

    @BeforeAll
    static void load() {
        model = Checkpoints.load(TestData.tinyLlava()).model();
    }

    static FreezePlan plan(boolean tune, boolean freezeBackbone, boolean freezeProjector, boolean unfreezeVision) {
        return FreezePlan.of(model, new FreezePlan.Flags(tune, freezeBackbone, freezeProjector, unfreezeVision));
    }

    @Test
    void tuneWithFrozenProjectorHasNothingToTrain() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> plan(true, false, true, false));
        assertTrue(e.getMessage().contains("nothing to train"), e.getMessage());
        assertTrue(e.getMessage().contains("--freeze_mm_mlp_adapter"), e.getMessage());
    }

    @Test
    void cliReportsNothingToTrainAndRejectsUnknownFlags(@org.junit.jupiter.api.io.TempDir java.nio.file.Path tmp) {
        PrintStream old = System.err;
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        System.setErr(new PrintStream(err));
        try {
            int rc = Main.run("train", "--model_name_or_path", TestData.tinyLlava().toString(),
                    "--data_path", TestData.tinyData().resolve("pretrain.json").toString(), "--output_dir", tmp.resolve("unused").toString(),
                    "--tune_mm_mlp_adapter", "True", "--freeze_mm_mlp_adapter", "True");
            assertNotEquals(0, rc);
            assertTrue(err.toString().contains("nothing to train"), err.toString());
        } finally {
            System.setErr(old);
        }
        assertThrows(picocli.CommandLine.UnmatchedArgumentException.class, () -> TrainCommand.parse(
                "--model_name_or_path", "m", "--data_path", "d", "--output_dir", "o", "--freeze_vision", "True"));
        assertThrows(picocli.CommandLine.ParameterException.class, () -> TrainCommand.parse(
                "--model_name_or_path", "m", "--data_path", "d", "--output_dir", "o", "--tune_mm_mlp_adapter", "yes"));
    }

    @Test
    void freezeBackboneLeavesLmHeadTrainable() {
        FreezePlan p = plan(false, true, false, false);
        p.apply(model);
        for (Map.Entry<String, Tensor> e : Tensors.namedParameters(model).entrySet()) {
            String part = ModuleGroups.partOf(e.getKey());
            boolean expected = part.equals("llm.lm_head") || part.equals("projector");
            assertEquals(expected, e.getValue().requires_grad(), e.getKey());
            assertEquals(expected, p.trains(e.getKey()), e.getKey());
        }
    }

    @Test
    void stageOneAndVisionFlags() {
        FreezePlan s1 = plan(true, false, false, false);
        assertTrue(s1.trainable().stream().allMatch(n -> n.startsWith("multi_modal_projector.")));
        assertEquals(4, s1.trainable().size());
        FreezePlan s2 = plan(false, false, false, false);
        assertFalse(s2.partTrains("vision"));
        assertTrue(s2.partTrains("llm.embed") && s2.partTrains("llm.lm_head") && s2.partTrains("projector"));
        FreezePlan v = plan(false, false, true, true);
        assertTrue(v.partTrains("vision"));
        assertFalse(v.partTrains("projector"));
    }

    @Test
    void projectorLrReachesTheProjectorGroupAndNormsDoNotDecay() {
        FreezePlan p = plan(false, false, false, false);
        AdamW opt = Optimizers.build(model, p, new Optimizers.Hyper(2e-5, 0.1, 7e-4, null, 0.9, 0.999, 1e-8));
        int projectorTensors = 0;
        for (AdamW.Group g : opt.groups()) {
            for (String n : g.params.keySet()) {
                boolean proj = n.startsWith("multi_modal_projector.");
                assertEquals(proj ? 7e-4 : 2e-5, g.baseLr, n);
                boolean noDecay = n.endsWith(".bias") || n.contains("norm.") || n.contains("layernorm.");
                assertEquals(noDecay ? 0.0 : 0.1, g.weightDecay, n);
                if (proj) projectorTensors++;
            }
        }
        assertEquals(4, projectorTensors);
        assertEquals(p.trainable().size(), opt.groups().stream().mapToInt(g -> g.params.size()).sum());
    }

    @Test
    void reportCountsEqualTheModelsTensors() {
        FreezePlan p = plan(false, true, false, false);
        TrainReport r = new TrainReport(model, p);
        long trainable = 0, frozen = 0;
        for (Map.Entry<String, Tensor> e : Tensors.namedParameters(model).entrySet()) {
            if (p.trains(e.getKey())) trainable += e.getValue().numel(); else frozen += e.getValue().numel();
        }
        assertEquals(trainable, r.total().trainable());
        assertEquals(frozen, r.total().frozen());
        assertEquals(trainable * 8, r.total().optimizerBytes());
        assertEquals(model.languageModel.lmHead.weight.numel(), r.rows().get("llm.lm_head").trainable());
        assertEquals(0, r.rows().get("llm.layers").trainable());
        assertTrue(r.render().contains("llm.lm_head"));
    }

    @Test
    void unfrozenVisionTowerGetsItsOwnLearningRate() {
        FreezePlan p = plan(false, false, false, true);
        AdamW opt = Optimizers.build(model, p, new Optimizers.Hyper(2e-5, 0.0, null, 3e-6, 0.9, 0.999, 1e-8));
        long vision = 0;
        for (AdamW.Group g : opt.groups())
            for (String n : g.params.keySet()) {
                assertEquals(n.startsWith("vision_tower.") ? 3e-6 : 2e-5, g.baseLr, n);
                if (n.startsWith("vision_tower.")) vision++;
            }
        assertEquals(Tensors.namedParameters(model.visionTower).size(), vision);
        opt.scaleLr(0.5);
        for (AdamW.Group g : opt.groups()) assertEquals(g.baseLr * 0.5, g.lr(), 1e-18, g.name);
    }
}
