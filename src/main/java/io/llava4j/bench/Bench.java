package io.llava4j.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.data.Collator;
import io.llava4j.data.LlavaDataset.Sample;
import io.llava4j.engine.Engine;
import io.llava4j.engine.MemoryMonitor;
import io.llava4j.generate.DecodeBench;
import io.llava4j.model.Llava;
import io.llava4j.nn.Precision;
import io.llava4j.train.AdamW;
import io.llava4j.train.FreezePlan;
import io.llava4j.train.Optimizers;
import io.llava4j.train.TrainStep;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;

/**
 * {@code llava4j bench}: training steps (or decoding) of {@code llava_ref.py bench}'s model and samples, through the
 * same {@link TrainStep} that {@code llava4j train} runs. Each sample is BOS + one image (196 rows) + 32 supervised text
 * tokens (the plain template's shape), the pixels seeded normal values, the text drawn anew each step as llava_ref.py
 * draws it. Stage {@code pretrain}: only the projector trains; {@code finetune}: projector and LLM; the vision tower
 * is frozen in both. AdamW lr 1e-3, no weight decay, no clipping, as llava_ref.py.
 */
public final class Bench {
    public static final int TEXT_TOKENS = 32;

    /** What to run. */
    public record Options(String stage, Precision precision, int batch, int steps, int warmup, boolean gradientCheckpointing,
                          long seed, int newTokens, boolean packedWeights, String llm) {}

    private Bench() {}

    public static ObjectNode run(Options o) {
        Engine.init();
        try (MemoryMonitor mon = new MemoryMonitor()) {
            if (!o.stage().equals("generate") && !o.llm().equals("bench"))
                throw new IllegalArgumentException("--llm " + o.llm() + " is for --stage generate; training stages time the bench model");
            ObjectNode out = switch (o.stage()) {
                case "pretrain", "finetune" -> train(o);
                case "generate" -> generate(o);
                default -> throw new IllegalArgumentException("--stage " + o.stage() + ": use pretrain, finetune or generate");
            };
            out.put("peak_rss_mb", Math.round(peakRssMb()));
            out.put("peak_rss_anon_mb", Math.round(mon.peakAnonBytes() / 1048576.0));
            gemmPeaks(out, o.precision());
            return out;
        }
    }

    private static ObjectNode train(Options o) {
        Llava model = BenchModel.build(o.seed(), o.precision());
        boolean pretrain = o.stage().equals("pretrain");
        FreezePlan plan = FreezePlan.of(model, pretrain ? FreezePlan.Flags.STAGE1 : FreezePlan.Flags.STAGE2);
        plan.apply(model);
        TrainStep.masterWeights(model, plan);
        AdamW opt = Optimizers.build(model, plan, new Optimizers.Hyper(1e-3, 0, null, null, 0.9, 0.999, 1e-8));
        boolean recompute = o.gradientCheckpointing() || o.precision().upcasts(); // as Trainer decides it
        TrainStep step = new TrainStep(model, opt, new Collator(0), o.precision(), recompute, 2048, 1, 0.0, null,
                io.llava4j.train.DataParallel.SINGLE, o.seed(), plan.trainable());

        int side = model.config.vision().imageSize(), itok = (int) model.config.imageTokenIndex();
        Random rnd = new Random(o.seed() + 1);
        float[][] pixels = new float[o.batch()][3 * side * side];
        for (float[] px : pixels) for (int i = 0; i < px.length; i++) px[i] = (float) rnd.nextGaussian();
        List<Double> secs = new ArrayList<>(), cpuSecs = new ArrayList<>(), losses = new ArrayList<>();
        long positions = 0;
        for (int s = 0; s < o.warmup() + o.steps(); s++) {
            List<Sample> samples = new ArrayList<>();
            for (int b = 0; b < o.batch(); b++) {
                int[] ids = new int[2 + TEXT_TOKENS], labels = new int[ids.length];
                ids[0] = 1;
                ids[1] = itok;
                labels[0] = labels[1] = (int) Llava.IGNORE_INDEX;
                for (int i = 0; i < TEXT_TOKENS; i++) ids[2 + i] = labels[2 + i] = 3 + rnd.nextInt(itok - 3);
                samples.add(new Sample("bench-" + b, ids, labels, pixels[b], null));
            }
            long t0 = System.nanoTime(), c0 = processCpuNanos();
            TrainStep.Result r = step.run(List.of(new TrainStep.MicroBatch(0, s, samples, true)));
            double dt = (System.nanoTime() - t0) / 1e9;
            if (s >= o.warmup()) {
                secs.add(dt);
                cpuSecs.add((processCpuNanos() - c0) / 1e9);
                losses.add(r.loss());
                positions = r.tokens();
            }
        }
        List<Double> sorted = new ArrayList<>(secs);
        Collections.sort(sorted);
        double median = sorted.get(sorted.size() / 2);
        int length = (int) (positions / o.batch());
        FlopCount.Step f = FlopCount.trainStep(model.config, o.batch(), o.batch(), length, (long) o.batch() * TEXT_TOKENS, !pretrain, recompute);
        ObjectNode out = header(o);
        out.put("step_s_median", median).put("step_s_min", sorted.get(0));
        out.putPOJO("step_s", secs);
        List<Double> cpuSorted = new ArrayList<>(cpuSecs);
        Collections.sort(cpuSorted);
        out.put("step_cpu_s_median", cpuSorted.get(cpuSorted.size() / 2)); // all threads' CPU time: what the load changes least
        out.putPOJO("step_cpu_s", cpuSecs);
        out.putPOJO("losses", losses);
        out.put("tokens_per_step", positions).put("tokens_per_s", positions / median);
        out.put("trainable_params", plan.trainable().stream().mapToLong(n -> io.llava4j.engine.Tensors.namedParameters(model).get(n).numel()).sum());
        out.put("recomputed_decoder_layers", recompute);
        ObjectNode fl = out.putObject("gflop_per_step");
        fl.put("total", f.total() / 1e9).put("vision", f.vision() / 1e9).put("projector", f.projector() / 1e9)
                .put("llm", f.llm() / 1e9).put("lm_head", f.head() / 1e9).put("recompute_not_counted", f.recompute() / 1e9);
        out.put("achieved_gflops", f.total() / 1e9 / median);
        out.put("tower_s_median", towerSeconds(model, o.precision(), pixels, side));
        return out;
    }

    /**
     * The frozen tower's share of a step: its forward on the step's images (median of 3), what
     * {@code --cache_vision_features} saves in later epochs (besides decoding the images).
     */
    private static double towerSeconds(Llava model, Precision precision, float[][] pixels, int side) {
        float[] all = new float[pixels.length * pixels[0].length];
        for (int b = 0; b < pixels.length; b++) System.arraycopy(pixels[b], 0, all, b * pixels[b].length, pixels[b].length);
        List<Double> t = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            try (org.bytedeco.javacpp.PointerScope s = new org.bytedeco.javacpp.PointerScope();
                 org.bytedeco.pytorch.NoGradGuard g = new org.bytedeco.pytorch.NoGradGuard();
                 io.llava4j.nn.Autocast ac = io.llava4j.nn.Autocast.enable(precision)) {
                long t0 = System.nanoTime();
                model.towerFeatures(io.llava4j.engine.Tensors.floats(all, pixels.length, 3, side, side));
                t.add((System.nanoTime() - t0) / 1e9);
            }
        }
        Collections.sort(t);
        return t.get(1);
    }

    private static ObjectNode generate(Options o) {
        io.llava4j.generate.InferenceWeights.warmUp();
        Llava model = BenchModel.build(BenchModel.config(BenchModel.configJson(o.llm())), o.seed(), o.precision());
        long packed = o.packedWeights() ? io.llava4j.generate.InferenceWeights.prepare(model, o.precision()) : 0;
        DecodeBench.Result r = DecodeBench.measure(model, o.precision(), o.newTokens(), Math.max(1, o.steps()), o.warmup());
        ObjectNode out = header(o);
        out.put("prompt_positions", r.promptPositions()).put("new_tokens", r.newTokens());
        out.put("time_to_first_token_s", r.timeToFirstTokenS()).put("decode_tokens_per_s", r.decodeTokensPerS());
        out.put("prompt_embedding_s", r.promptEmbeddingS()).put("prefill_tokens_per_s", r.prefillTokensPerS());
        out.put("best_time_to_first_token_s", r.bestTimeToFirstTokenS()).put("best_decode_tokens_per_s", r.bestDecodeTokensPerS());
        out.putPOJO("first_tokens", r.firstTokens());
        out.put("kv_cache_mb", r.kvCacheMb());
        out.put("llm_weights", io.llava4j.generate.InferenceWeights.describe(packed, o.precision()));
        long weightBytes = DecodeBench.weightBytesPerToken(model.config.text(), o.precision());
        out.put("weight_gb_per_token", weightBytes / 1e9).put("decode_weight_gb_per_s", weightBytes * r.decodeTokensPerS() / 1e9)
                .put("copy_gb_per_s", DecodeBench.copyBandwidthGBs());
        return out;
    }

    private static ObjectNode header(Options o) {
        ObjectNode out = new ObjectMapper().createObjectNode();
        out.put("engine", "llava4j").put("stage", o.stage()).put("bf16", o.precision() == Precision.BF16)
                .put("precision", o.precision().describe()).put("batch", o.batch()).put("steps", o.steps())
                .put("threads", Engine.threads()).put("gradient_checkpointing", o.gradientCheckpointing())
                .put("openblas_kernels", io.llava4j.engine.BlasThreads.coreName()).put("llm", o.llm());
        return out;
    }

    /** GEMM peaks of fp32 and bf16 in this process, and the achieved rate's fraction of the peak of the GEMM type used. */
    private static void gemmPeaks(ObjectNode out, Precision p) {
        double fp32 = GemmPeak.gflops(org.bytedeco.pytorch.global.torch.ScalarType.Float, 2.0);
        double bf16 = GemmPeak.gflops(org.bytedeco.pytorch.global.torch.ScalarType.BFloat16, 2.0);
        out.put("gemm_peak_gflops_fp32", fp32).put("gemm_peak_gflops_bf16", bf16);
        boolean bf16Gemm = p.gemm() == org.bytedeco.pytorch.global.torch.ScalarType.BFloat16;
        out.put("gemm_type", bf16Gemm ? "bf16" : "fp32");
        if (out.has("achieved_gflops")) out.put("fraction_of_gemm_peak", out.get("achieved_gflops").asDouble() / (bf16Gemm ? bf16 : fp32));
    }

    /** CPU time of all this process's threads (user + system), ns. */
    private static long processCpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean()).getProcessCpuTime();
    }

    /** VmHWM (the peak resident set, as PyTorch's ru_maxrss reports it), MiB; 0 where /proc is not there. */
    private static double peakRssMb() {
        try {
            for (String l : Files.readAllLines(Path.of("/proc/self/status")))
                if (l.startsWith("VmHWM:")) return Long.parseLong(l.replaceAll("\\D", "")) / 1024.0;
        } catch (Exception e) {
            return 0;
        }
        return 0;
    }
}
