package io.llava4j.model;

import io.llava4j.TestData;
import io.llava4j.engine.Tensors;
import io.llava4j.io.HostTensor;
import org.bytedeco.pytorch.AdamW;
import org.bytedeco.pytorch.AdamWOptions;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** Logits, loss, stage-1 projector gradients and AdamW steps against llava_ref.py's expect output. */
class ForwardParityTest {

    /** Runs the case of an expect file on a model folder and checks every recorded quantity. */
    static void checkCase(Path modelDir, Path expectFile) {
        Map<String, HostTensor> ex = TestData.tensors(expectFile);
        Llava m = Checkpoints.load(modelDir).model();
        Map<String, Tensor> params = Tensors.namedParameters(m);
        List<Tensor> trainable = new ArrayList<>();
        params.forEach((n, p) -> {
            boolean t = n.startsWith("multi_modal_projector.");
            p.requires_grad_(t);
            if (t) trainable.add(p);
        });
        assertTrue(m.visionTower.fullyFrozen());
        Tensor px = Tensors.fromHost(ex.get("case.pixel_values"));
        long[] ids = ex.get("case.input_ids").toLongs();
        long[] labels = ex.get("case.labels").toLongs();

        Llava.Output out = m.forward(px, new long[][]{ids}, new long[][]{labels});
        Tensor loss = Llava.loss(out);
        Tensor refLogits = Tensors.fromHost(ex.get("logits"));
        double logitErr = Tensors.relativeError(out.logits().get(0), refLogits);
        assertTrue(logitErr < 1e-4, "logits rel err " + logitErr);
        double refLoss = ex.get("loss").toFloats()[0];
        assertEquals(refLoss, loss.item_double(), 1e-5 * Math.abs(refLoss), "loss");

        loss.backward();
        params.forEach((n, p) -> {
            if (n.startsWith("multi_modal_projector.")) {
                Tensor ref = Tensors.fromHost(ex.get("grad." + n));
                double e = Tensors.relativeError(p.grad(), ref);
                assertTrue(e < 1e-4, "grad " + n + " rel err " + e);
            } else {
                assertFalse(p.grad().defined(), "frozen " + n + " got a gradient");
            }
        });

        // the remaining AdamW steps of the reference (lr and step count from the file's metadata)
        Map<String, String> meta = TestData.metadata(expectFile);
        int steps = Integer.parseInt(meta.get("steps"));
        AdamWOptions o = new AdamWOptions(Double.parseDouble(meta.get("lr")));
        o.weight_decay().put(0.0);
        AdamW opt = new AdamW(new TensorVector(trainable.toArray(new Tensor[0])), o);
        opt.step();
        for (int s = 1; s < steps; s++) {
            opt.zero_grad();
            Llava.loss(m.forward(px, new long[][]{ids}, new long[][]{labels})).backward();
            opt.step();
        }
        params.forEach((n, p) -> {
            if (!n.startsWith("multi_modal_projector.")) return;
            Tensor after = Tensors.fromHost(ex.get("after" + steps + "." + n));
            Tensor before = Tensors.fromHost(TestData.tensors(modelDir.resolve("model.safetensors")).get(n));
            double e = p.detach().sub(after).norm().item_double() / after.sub(before).norm().item_double();
            assertTrue(e < 1e-3, "after 3 steps " + n + " rel err of update " + e);
        });
    }

    @Test
    void tinyModelMatchesReference() {
        checkCase(TestData.tinyLlava(), TestData.expected().resolve("forward-and-grads.safetensors"));
    }

    @Test
    void otherShapesMatchReference() {
        checkCase(TestData.gqa().resolve("model"), TestData.gqa().resolve("expected/forward-and-grads.safetensors"));
    }
}
