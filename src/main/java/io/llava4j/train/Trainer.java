package io.llava4j.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.config.LlavaConfig.ProjectorSpec;
import io.llava4j.data.LlavaDataset;
import io.llava4j.data.LlavaTokenizer;
import io.llava4j.data.LlavaDataset.Sample;
import io.llava4j.engine.Tensors;
import io.llava4j.io.Layout;
import io.llava4j.model.Checkpoints;
import io.llava4j.model.Llava;
import io.llava4j.nn.Autocast;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * LLaVA's training loop: load, apply the {@link FreezePlan}, report what trains, then optimizer steps of
 * {@code gradient_accumulation_steps} micro-batches each (loss = mean over each micro-batch's supervised tokens,
 * divided by the accumulation steps, as HF's Trainer), optional clipping, AdamW, the LR schedule, logs, checkpoints,
 * and the stage's output.
 */
public final class Trainer {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final TrainArgs a;
    private Llava model;
    private FreezePlan plan;
    private AdamW optimizer;
    private final List<Double> losses = new ArrayList<>();
    private final List<Double> stepSeconds = new ArrayList<>();
    private int stopAfter = Integer.MAX_VALUE;
    private boolean alwaysHalves;
    private final java.util.Set<String> warned = new java.util.HashSet<>(); // samples whose warning was printed
    private Trainability trainability; // a plan's stage: replaces the flags' FreezePlan by a per-step schedule
    private FreezeSchedule freezes;

    private final DataPreflight.Skips skips = new DataPreflight.Skips();

    public Trainer(TrainArgs args) {
        this.a = args;
    }

    public Llava model() {
        return model;
    }

    public FreezePlan plan() {
        return plan;
    }

    public AdamW optimizer() {
        return optimizer;
    }

    /** Per optimizer step of this run, the mean micro-batch loss. */
    public List<Double> losses() {
        return losses;
    }

    /** Samples skipped in this run because their image could not be read. */
    public int skippedSamples() {
        return skips.skipped();
    }

    /** Optimizer steps of a run over {@code records} records (HF floors the micro-batches per step). */
    private int totalSteps(int records) {
        int micro = a.microBatches(records, a.perDeviceTrainBatchSize());
        int stepsPerEpoch = AccumulationSteps.stepsPerEpoch(micro, a.gradientAccumulationSteps());
        return a.maxSteps() > 0 ? a.maxSteps() : (int) Math.ceil(a.numTrainEpochs() * stepsPerEpoch);
    }

    /** Per optimizer step of this run, its wall time in seconds (data, forward, backward, clipping, AdamW). */
    public List<Double> stepSeconds() {
        return stepSeconds;
    }

    /**
     * Stops the run right after global step {@code step}, as a crash or preemption would: no final output is written
     * and the newest checkpoint is what a resume starts from.
     */
    private TrainProgress progress = TrainProgress.NONE;
    private DataParallel dp = DataParallel.SINGLE;

    /** Data-parallel training: this process is one rank of {@code dp} (default: one process). */
    public Trainer parallel(DataParallel dp) {
        this.dp = dp;
        return this;
    }

    /**
     * Every micro-batch of two or more samples runs as two halves at once on two threads, each with one intra-op thread
     * ({@link TrainStep#alwaysHalves}), also where libtorch has one intra-op thread. The demo's tiny models use it: their
     * tensors are too small for intra-op threads, but two halves keep two cores busy.
     */
    public Trainer alwaysHalves() {
        this.alwaysHalves = true;
        return this;
    }

    public Trainer stopAfterStep(int step) {
        this.stopAfter = step;
        return this;
    }

    /**
     * What trains, per module and per step (a stage of {@code llava4j train --plan}), instead of LLaVA's freezing
     * flags: the {@link FreezeSchedule} gives the {@link FreezePlan} of every step.
     */
    public Trainer trainability(Trainability t) {
        this.trainability = t;
        return this;
    }

    /** The stage's freeze schedule (null for LLaVA's flags). */
    public FreezeSchedule freezeSchedule() {
        return freezes;
    }

    /** Where progress goes (default: nowhere). */
    public Trainer progress(TrainProgress p) {
        this.progress = p;
        return this;
    }

    public void run() throws IOException {
        io.llava4j.engine.Engine.init();
        torch.manual_seed(a.seed()); // a fresh projector's init
        ProjectorSpec projector = a.projectorSpec();
        io.llava4j.data.Conversation.Template.forTraining(a.version()); // an unknown template fails before any weight is read
        LlavaTokenizer tok = Batches.preflight(a.modelNameOrPath(), a.visionTower(), projector, a.modelMaxLength()); // before any weight
        io.llava4j.config.LlavaConfig cfg = io.llava4j.config.LlavaConfig.load(a.modelNameOrPath(), a.visionTower(), projector);
        List<String> flagNotes = new java.util.ArrayList<>(cfg.checkFlags(a.visionTower(), a.mmProjectorType(), a.mmVisionSelectLayer(),
                a.mmVisionSelectFeature()));
        flagNotes.addAll(cfg.checkImageFlags(a.imageAspectRatio(), a.imageGridPinpoints(), a.mmPatchMergeType()));
        FreezePlan.requireSomethingTrains(a.freezeFlags());
        if (a.recomputeNumLayers() != null) {
            int layers = cfg.text().numHiddenLayers();
            if (a.precision().upcasts() || a.quant() != null || dp.layerHooks() != null)
                throw new IllegalArgumentException("--recompute_num_layers: every decoder layer is recomputed here ("
                        + (a.quant() != null ? "--bits: quantized weights are dequantized one layer at a time into one buffer"
                        : dp.layerHooks() != null ? "ZeRO-3 gathers each layer's parameters for its recompute"
                        : "the " + a.precision().name().toLowerCase(java.util.Locale.ROOT) + " weights are up-cast one layer at a time on this CPU")
                        + "); leave it out");
            if (a.recomputeNumLayers() > layers)
                throw new IllegalArgumentException("--recompute_num_layers " + a.recomputeNumLayers() + ": the model has " + layers + " decoder layers");
        }
        if (a.quant() != null && trainability == null && FreezePlan.trainsPart("llm.layers", a.freezeFlags(), a.lora() != null))
            throw new IllegalArgumentException("--bits " + a.quant().type().bits + " holds the LLM's linear weights quantized and frozen,"
                    + " but these flags train the LLM's decoder layers: train the projector (--tune_mm_mlp_adapter True), LoRA"
                    + " adapters (--lora_enable True) or lm_head (--freeze_backbone True), or leave out --bits");
        List<io.llava4j.data.LlavaRecord> records = a.dryRun() ? null : DataPreflight.check(tok, cfg, a, System.out); // before any weight
        if (!a.dryRun() && a.checkResources()) RunResources.check(cfg, a, totalSteps(records.size()));
        if (a.deepspeed() != null && dp.isMain()) {
            for (String note : a.deepspeed().notes()) System.out.println("note: " + note);
            System.out.print(ZeroMemory.of(cfg, a.freezeFlags(), a.lora(), a.precision(), a.deepspeed().stage(), a.deepspeed().worldSize(),
                    a.deepspeed().overlapComm(), a.deepspeed().reduceBucketElements(cfg.text().hiddenSize())).render());
        }
        if (a.dryRun() && a.deepspeed() != null) return; // the per-rank report needs no weight: a 7B dry run reads none
        Checkpoints.Loaded loaded = Checkpoints.load(a.modelNameOrPath(), a.visionTower(), projector, a.precision(), a.quant());
        model = loaded.model();
        if (a.pretrainMmMlpAdapter() != null) ProjectorFiles.load(model, a.pretrainMmMlpAdapter());
        if (a.lora() != null) LoraAdapters.attach(model, a.lora(), outputLayout(loaded)); // before the plan: PEFT's freezing
        freezes = trainability == null ? null : FreezeSchedule.of(model, trainability);
        plan = freezes == null ? FreezePlan.of(model, a.freezeFlags()) : freezes.union(); // all that ever trains
        if (model.quantized != null) model.quantized.requireFrozen(plan::trains);
        plan.apply(model);
        TrainStep.masterWeights(model, plan);
        if (freezes != null) freezes.at(0).apply(model);
        TrainReport report = new TrainReport(model, freezes == null ? plan : freezes.at(0));
        if (dp.isMain()) System.out.print(report.render() + dp.describe(plan.trainable(), Tensors.namedParameters(model)));
        if (dp.isMain() && model.quantized != null) System.out.println(model.quantized.describe(a.precision().gemm()));
        if (dp.isMain() && freezes != null && freezes.changeSteps().size() > 1) System.out.print(TrainReport.renderSchedule(model, freezes));
        if (dp.isMain()) for (String note : a.notes()) System.out.println("note: " + note);
        if (dp.isMain()) for (String note : flagNotes) System.out.println("note: " + note);
        if (a.dryRun()) return;

        Batches.Data data = Batches.open(tok, a.modelNameOrPath(), model.config, a.dataPath(), records, a.imageFolder(), a.version(),
                a.imageAspectRatio(), a.modelMaxLength());
        LlavaDataset ds = data.dataset();
        io.llava4j.data.Collator collator = data.collator();
        int global = a.perDeviceTrainBatchSize() * dp.worldSize(); // a micro-batch across the ranks
        int micro = a.microBatches(ds.size(), global);
        if (micro == 0)
            throw new IllegalArgumentException("--dataloader_drop_last True: " + ds.size() + " samples make no whole batch of " + global);
        int stepsPerEpoch = AccumulationSteps.stepsPerEpoch(micro, a.gradientAccumulationSteps()); // HF floors
        int total = totalSteps(ds.size());
        LrSchedule schedule = new LrSchedule(a.lrSchedulerType(), LrSchedule.warmupSteps(a.warmupSteps(), a.warmupRatio(), total), total);
        optimizer = a.deepspeed() != null && a.deepspeed().optimizerBlock() ? Optimizers.oneGroup(model, plan, a.hyper())
                : Optimizers.build(model, plan, a.hyper());
        // Half-precision weights up-cast for fp32 GEMMs would be kept by autograd for the backward, all layers at once
        // (as much as fp32 weights): recomputing each decoder layer in the backward keeps one layer's copy at a time.
        boolean upcast = a.precision().upcasts();
        // Quantized weights likewise: dequantized per layer into one reused buffer, which the recompute makes safe.
        // ZeRO-3 gathers each decoder layer's partitioned parameters before its forward and again before its recompute.
        io.llava4j.model.LayerHooks layerHooks = dp.layerHooks();
        boolean recompute = a.gradientCheckpointing() || upcast || a.quant() != null || layerHooks != null;
        if (layerHooks != null) model.languageModel.layerHooks(layerHooks);
        if (a.recomputeNumLayers() != null) model.languageModel.recomputeLayers(a.recomputeNumLayers());
        if (a.quant() != null && !a.gradientCheckpointing() && !upcast)
            System.out.println("note: decoder layers are recomputed in the backward, as --gradient_checkpointing True does: "
                    + "the quantized weights are dequantized one layer at a time into a reused buffer");
        if (upcast && !a.gradientCheckpointing())
            System.out.println("note: decoder layers are recomputed in the backward, as --gradient_checkpointing True does: "
                    + "the " + a.precision().name().toLowerCase(java.util.Locale.ROOT) + " weights are up-cast one layer at a time on this CPU");

        int step = 0;
        ArrayNode history = JSON.createArrayNode();
        Path resume = TrainCheckpoint.resolve(a.resumeFromCheckpoint(), a.outputDir());
        if (resume != null) {
            JsonNode st = TrainCheckpoint.restore(resume, model, plan, dp.sharded() == null ? optimizer : null); // ZeRO: each rank reads its shard below
            step = st.get("global_step").asInt();
            if (st.has("log_history")) history = (ArrayNode) st.get("log_history");
            checkSame(st, "global_batch", global * a.gradientAccumulationSteps(), resume); // any world size with the same global batch
            checkSame(st, "total_steps", total, resume);
            checkSame(st, "steps_per_epoch", stepsPerEpoch, resume);
            if (freezes != null) freezes.checkResumed(optimizer, step, resume);
            if (dp.isMain()) System.err.printf("resuming from %s at step %d%n", resume, step);
        }
        Map<String, Tensor> params = Tensors.namedParameters(model);
        dp.start(plan.trainable(), params);
        dp.optimizer(optimizer, model.config.text().hiddenSize());
        if (resume != null && dp.sharded() != null) dp.sharded().restore(resume);
        Path log = a.outputDir().resolve(dp.isMain() ? "log.jsonl" : "log-rank" + dp.rank() + ".jsonl");
        if (dp.isMain()) {
            Files.createDirectories(a.outputDir());
            truncateLog(log, step);
        }
        int[] modality = a.groupByModalityLength() ? ds.modalityLengths() : null;
        TrainProgress bar = dp.isMain() ? progress : TrainProgress.NONE;
        bar.start(total, step);
        FeatureCache cache = a.cacheVisionFeatures() == null ? null
                : FeatureCache.open(a.cacheVisionFeatures(), model, plan, a.precision(), ds.preprocessing());
        TrainStep trainStep = new TrainStep(model, optimizer, collator, a.precision(), recompute, a.modelMaxLength(),
                a.gradientAccumulationSteps(), a.maxGradNorm(), cache, dp, a.seed(), plan.trainable());
        if (alwaysHalves) trainStep.alwaysHalves();
        MicroBatchOrder order = new MicroBatchOrder(ds.size(), micro, a.perDeviceTrainBatchSize(), a.gradientAccumulationSteps(), a.seed(),
                modality, a.groupByModalityLength(), step, total, dp);
        try (BufferedWriter logw = dp.isMain() ? Files.newBufferedWriter(log, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND)
                : new BufferedWriter(java.io.Writer.nullWriter());
             SampleLoader loader = new SampleLoader(i -> skips.get(ds, i, cache), order, a.dataloaderNumWorkers())) {
            while (step < total) {
                long t0 = System.nanoTime();
                optimizer.scaleLr(schedule.factor(step));
                if (freezes != null && freezes.beforeStep(model, optimizer, step) && step > 0 && dp.isMain())
                    System.err.printf("%nstep %d: %d tensors train now%n", step, freezes.at(step).trainable().size());
                List<TrainStep.MicroBatch> batches = new ArrayList<>();
                List<String> stepIds = new ArrayList<>(); // named if the step goes bad
                do { // the micro-batches of this step (MicroBatchOrder groups them)
                    TrainStep.MicroBatch mb = loader.next();
                    for (Sample smp : mb.samples()) stepIds.add(smp.id());
                    for (Sample smp : mb.samples())
                        if (smp.warning() != null && warned.add(smp.id())) System.err.println("\nwarning: sample " + smp.id() + ": " + smp.warning());
                    batches.add(mb);
                } while (!batches.get(batches.size() - 1).endsStep());
                int epoch = batches.get(batches.size() - 1).epoch();
                TrainStep.Result r = trainStep.run(batches);
                if (!r.updated()) { // a non-finite loss or gradient: stopped before the update, the state is the last good one
                    bar.done();
                    Path last = a.outputDir().resolve(TrainCheckpoint.PREFIX + step);
                    if (dp.isMain() && dp.sharded() == null && !Files.isDirectory(last))
                        last = saveCheckpoint(step, total, stepsPerEpoch, epoch, history, global);
                    else if (dp.sharded() != null && !Files.isDirectory(last)) { // ZeRO: the shards need every rank; the newest whole one stands
                        List<Path> all = TrainCheckpoint.list(a.outputDir());
                        last = all.isEmpty() ? last : all.get(all.size() - 1);
                    }
                    throw new NonFiniteException(step + 1, r.loss(), r.gradNorm(), stepIds, last, a.precision().name());
                }
                double gradNorm = r.gradNorm();
                long tokens = r.tokens();
                step++;
                double meanLoss = r.loss();
                losses.add(meanLoss);
                double secs = (System.nanoTime() - t0) / 1e9;
                stepSeconds.add(secs);
                double lr = optimizer.groups().get(0).lr();
                bar.update(step, String.format("loss %.4f lr %.2e %.0f tok/s", meanLoss, lr, tokens / secs));
                if (step % a.loggingSteps() == 0 || step == total) {
                    ObjectNode rec = JSON.createObjectNode();
                    rec.put("step", step);
                    rec.put("epoch", (double) step / stepsPerEpoch);
                    rec.put("loss", meanLoss);
                    rec.put("lr", lr);
                    rec.put("grad_norm", gradNorm);
                    rec.put("tokens_per_s", tokens / secs);
                    dp.stepFields().forEach(rec::put);
                    rec.put("step_s", secs);
                    logw.write(JSON.writeValueAsString(rec));
                    logw.newLine();
                    logw.flush();
                    history.add(rec);
                }
                if ((dp.isMain() || dp.sharded() != null) && a.saveSteps() > 0 && step % a.saveSteps() == 0 && step < total) {
                    Path ck = saveCheckpoint(step, total, stepsPerEpoch, epoch, history, global); // under ZeRO every rank writes its shard
                    if (dp.isMain() && a.lora() != null) // LLaVA's LoRA checkpoints lack non_lora_trainables.bin; these merge as they are
                        LoraFiles.write(model, plan, a.lora(), outputLayout(loaded), ck, a.modelNameOrPath());
                }
                if (step >= stopAfter) {
                    bar.done();
                    skips.report();
                    System.err.printf("stopped after step %d%n", step);
                    return;
                }
            }
        }
        bar.done();
        skips.report();
        if (dp.sharded() != null) dp.sharded().gatherAll(); // ZeRO-3: one consolidated model, from every rank's partition
        if (dp.isMain()) writeOutput(loaded);
    }

    private Path saveCheckpoint(int step, int total, int stepsPerEpoch, int epoch, ArrayNode history, int global) throws IOException {
        ObjectNode st = JSON.createObjectNode();
        st.put("total_steps", total);
        st.put("steps_per_epoch", stepsPerEpoch);
        st.put("epoch", epoch);
        st.put("seed", a.seed());
        st.put("world_size", dp.worldSize());
        st.put("global_batch", global * a.gradientAccumulationSteps());
        st.put("data_order", "Sampler.order(seed, epoch)");
        st.set("log_history", history);
        if (freezes != null) st.set("freeze_schedule", freezes.describe());
        if (dp.sharded() != null) st.put("zero_stage", a.deepspeed() == null ? 0 : a.deepspeed().stage());
        return TrainCheckpoint.save(a.outputDir(), step, model, plan, optimizer, st, a.saveTotalLimit(), dp.sharded(), dp.isMain());
    }

    private static void checkSame(JsonNode st, String field, int now, Path dir) {
        if (st.has(field) && st.get(field).asInt() != now)
            throw new IllegalArgumentException(dir + ": was written by a run with " + field + " " + st.get(field).asInt()
                    + ", this run has " + now + ": resume with the same data and flags");
    }

    /** Drops log lines of steps after {@code step} (a run that crashed after its last checkpoint). */
    private static void truncateLog(Path log, int step) throws IOException {
        if (!Files.exists(log)) return;
        List<String> keep = new ArrayList<>();
        for (String line : Files.readAllLines(log, StandardCharsets.UTF_8)) {
            if (line.isBlank()) continue;
            try {
                if (JSON.readTree(line).path("step").asInt() <= step) keep.add(line);
            } catch (com.fasterxml.jackson.core.JacksonException partial) {
                // the last line of a run killed while writing it
            }
        }
        Path tmp = log.resolveSibling("." + log.getFileName() + ".tmp"); // a kill while truncating keeps the old log
        Files.write(tmp, keep, StandardCharsets.UTF_8);
        io.llava4j.io.Fsync.file(tmp);
        io.llava4j.io.Fsync.move(tmp, log);
    }

    /**
     * Writes what trained, decided from the {@link FreezePlan}: a plan that trains only the projector writes LLaVA's
     * stage-1 files ({@code mm_projector.bin} / {@code .safetensors} and config.json); any other plan writes the whole
     * model (with the vision tower when it trained), and, under {@code --tune_mm_mlp_adapter}, the projector files
     * too so that LLaVA's scripts chain. (LLaVA itself writes only the projector under {@code --tune_mm_mlp_adapter},
     * losing a tower trained with {@code --unfreeze_mm_vision_tower}.)
     */
    private void writeOutput(Checkpoints.Loaded loaded) throws IOException {
        Path out = a.outputDir();
        Layout layout = outputLayout(loaded);
        if (a.lora() != null) { // LLaVA's LoRA output: config.json, the PEFT adapter and non_lora_trainables.bin
            LoraFiles.write(model, plan, a.lora(), layout, out, a.modelNameOrPath());
            System.err.println("wrote " + out);
            return;
        }
        boolean onlyProjector = plan.trainable().stream().allMatch(n -> ModuleGroups.partOf(n).equals("projector"));
        if (onlyProjector) {
            ProjectorFiles.write(model, out.resolve(ProjectorFiles.FILE));
            Checkpoints.writeConfig(model, layout, out);
        } else {
            Checkpoints.save(model, layout, out, a.modelNameOrPath(), plan.partTrains("vision"), a.saveMaxShardBytes());
            if (a.tuneMmMlpAdapter() && plan.partTrains("projector")) {
                ProjectorFiles.write(model, out.resolve(ProjectorFiles.FILE));
                System.err.println("note: --tune_mm_mlp_adapter with " + String.join(", ", trainedParts())
                        + " training: the whole model is written beside " + ProjectorFiles.FILE + " (LLaVA would keep only the projector)");
            }
        }
        System.err.println("wrote " + out);
    }

    private static Layout outputLayout(Checkpoints.Loaded loaded) {
        return loaded.layout() == Layout.LLAMA ? Layout.ORIGINAL_LLAVA : loaded.layout();
    }

    private List<String> trainedParts() {
        return ModuleGroups.PARTS.stream().filter(p -> !p.equals("projector") && plan.partTrains(p)).toList();
    }

    /** Used by tests: the tensors of the model by llava-hf name. */
    public Map<String, Tensor> parameters() {
        return Tensors.namedParameters(model);
    }
}
