package io.llava4j.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.engine.Tensors;
import io.llava4j.io.HostTensor;
import io.llava4j.io.JsonFiles;
import io.llava4j.io.Safetensors;
import io.llava4j.model.CheckpointException;
import io.llava4j.model.Llava;
import org.bytedeco.pytorch.Tensor;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * {@code output_dir/checkpoint-N}: everything a resume needs — the trainable tensors ({@code trainable.safetensors}),
 * AdamW's state ({@code optimizer.safetensors}: {@code name.exp_avg}, {@code name.exp_avg_sq}, {@code name.step}; under
 * ZeRO one file per rank in {@code optimizer_shards/}, see {@link OptimizerShards}) and
 * {@code trainer_state.json} (global step, seed, data position, log history). Written into a temporary folder that is
 * renamed into place, so a crash never leaves a half checkpoint; older ones beyond {@code --save_total_limit} are removed.
 */
public final class TrainCheckpoint {
    static final String PREFIX = "checkpoint-";
    private static final ObjectMapper JSON = new ObjectMapper();

    private TrainCheckpoint() {}

    public static Path save(Path outputDir, int step, Llava model, FreezePlan plan, AdamW opt, ObjectNode state, Integer keep)
            throws IOException {
        return save(outputDir, step, model, plan, opt, state, keep, null, true);
    }

    /**
     * {@link #save} under ZeRO ({@code sharded} not null): every rank calls it; each writes its optimizer shard into
     * the unpublished folder ({@link OptimizerShards}), and once all have, rank 0 ({@code main}) writes the rest and
     * renames the folder into place. Returns the folder on rank 0, null on the others.
     */
    public static Path save(Path outputDir, int step, Llava model, FreezePlan plan, AdamW opt, ObjectNode state, Integer keep,
                            ShardedOptimizer sharded, boolean main) throws IOException {
        Path dir = outputDir.resolve(PREFIX + step);
        Path tmp = outputDir.resolve(".tmp-" + PREFIX + step);
        if (main) {
            Files.createDirectories(outputDir);
            removeStaleTemporaries(outputDir); // left by a run killed while writing a checkpoint
            if (sharded != null) Files.createDirectories(tmp);
        }
        if (sharded != null) {
            sharded.barrier("the start of checkpoint " + step);
            sharded.save(tmp); // returns once every rank's shard is in tmp
            sharded.gatherAll(); // ZeRO-3: the trainable tensors whole, for rank 0 to write
            if (!main) {
                sharded.releaseAll();
                return null;
            }
        }
        try {
            writeInto(tmp, model, plan, sharded == null ? opt : null, state, step);
        } catch (IOException | RuntimeException e) {
            deleteTree(tmp); // a checkpoint is complete or absent; the previous ones stay as they were
            List<Path> kept = list(outputDir);
            throw new IOException(dir + ": cannot write the checkpoint: " + e.getMessage()
                    + (String.valueOf(e.getMessage()).contains("No space left") ? " (the disk is full)" : "")
                    + "; " + (kept.isEmpty() ? "no earlier checkpoint exists" : "the newest complete checkpoint is " + kept.get(kept.size() - 1)), e);
        } finally {
            if (sharded != null) sharded.releaseAll();
        }
        deleteTree(dir);
        io.llava4j.io.Fsync.move(tmp, dir);
        if (keep != null) {
            List<Path> all = list(outputDir);
            for (int i = 0; i < all.size() - keep; i++) deleteTree(all.get(i));
        }
        return dir;
    }

    /** Writes and fsyncs a checkpoint's files into the (unpublished) folder {@code tmp}. */
    private static void writeInto(Path tmp, Llava model, FreezePlan plan, AdamW opt, ObjectNode state, int step) throws IOException {
        Files.createDirectories(tmp);
        Map<String, Tensor> params = Tensors.namedParameters(model);
        Map<String, HostTensor> trainable = new LinkedHashMap<>();
        for (String n : plan.trainable()) trainable.put(n, Tensors.hostView(params.get(n)));
        Safetensors.write(tmp.resolve("trainable.safetensors"), trainable, Map.of("format", "pt"));
        if (opt != null) { // null: the ranks' shards are in OptimizerShards.FOLDER
            Map<String, HostTensor> os = new LinkedHashMap<>();
            opt.state().forEach((n, s) -> {
                os.put(n + ".exp_avg", Tensors.hostView(s.expAvg));
                os.put(n + ".exp_avg_sq", Tensors.hostView(s.expAvgSq));
                os.put(n + ".step", HostTensor.ofLongs(new long[]{}, new long[]{s.step}));
            });
            Safetensors.write(tmp.resolve(OptimizerShards.WHOLE), os, Map.of("format", "pt"));
        }
        state.put("global_step", step);
        JsonFiles.write(tmp.resolve("trainer_state.json"), state); // fsynced before the folder is renamed into place
        io.llava4j.io.Fsync.directory(tmp); // the files' names, before the folder is published
    }

    /** Removes {@code .tmp-checkpoint-N} folders: half-written checkpoints of a killed run (never read). */
    static void removeStaleTemporaries(Path outputDir) throws IOException {
        try (Stream<Path> s = Files.list(outputDir)) {
            for (Path p : s.filter(p -> p.getFileName().toString().startsWith(".tmp-" + PREFIX)).toList()) deleteTree(p);
        }
    }

    /** Checkpoints in {@code outputDir}, oldest (lowest step) first. */
    public static List<Path> list(Path outputDir) throws IOException {
        if (!Files.isDirectory(outputDir)) return List.of();
        try (Stream<Path> s = Files.list(outputDir)) {
            return s.filter(p -> Files.isDirectory(p) && p.getFileName().toString().matches(PREFIX + "\\d+"))
                    .sorted(Comparator.comparingInt(TrainCheckpoint::stepOf)).toList();
        }
    }

    static int stepOf(Path p) {
        return Integer.parseInt(p.getFileName().toString().substring(PREFIX.length()));
    }

    /** {@code --resume_from_checkpoint}: a folder, or True for the newest checkpoint of {@code outputDir}. */
    public static Path resolve(String flag, Path outputDir) throws IOException {
        if (flag == null || flag.equals("False") || flag.equals("false")) return null;
        if (flag.equals("True") || flag.equals("true")) {
            List<Path> all = list(outputDir);
            if (all.isEmpty()) throw new IllegalArgumentException("--resume_from_checkpoint True: no checkpoint-N folder in " + outputDir);
            return all.get(all.size() - 1);
        }
        Path p = Path.of(flag);
        if (!Files.isRegularFile(p.resolve("trainer_state.json")))
            throw new IllegalArgumentException("--resume_from_checkpoint " + flag + ": not a checkpoint folder (no trainer_state.json)");
        return p;
    }

    /**
     * Restores trainable tensors and optimizer state ({@code opt} null: the tensors only; a ZeRO run reads its shard
     * itself); returns trainer_state.json. Strict: names must match the plan.
     */
    public static JsonNode restore(Path dir, Llava model, FreezePlan plan, AdamW opt) throws IOException {
        Map<String, HostTensor> t = Safetensors.read(dir.resolve("trainable.safetensors")).tensors();
        Map<String, Tensor> params = Tensors.namedParameters(model);
        List<String> want = plan.trainable();
        List<String> problems = new ArrayList<>();
        for (String n : want) if (!t.containsKey(n)) problems.add("missing " + n);
        for (String n : t.keySet()) if (!want.contains(n)) problems.add("unexpected " + n + " (not trainable in this run)");
        if (!problems.isEmpty())
            throw new CheckpointException(dir + ": does not match this run's freeze plan: " + problems);
        for (String n : want) {
            Tensor p = params.get(n);
            if (!java.util.Arrays.equals(Tensors.shape(p), t.get(n).shape()))
                throw new CheckpointException(dir + ": tensor " + n + " has shape " + java.util.Arrays.toString(t.get(n).shape()));
            Tensors.load(p, t.get(n), p.scalar_type().intern());
            model.loadedFrom.remove(n);
        }
        if (opt != null) { // whichever layout holds the state: a ZeRO run's shards are joined here
            OptimizerShards.Source os = OptimizerShards.open(dir);
            for (String n : want) {
                Tensor p = params.get(n);
                OptimizerShards.Slice st = os.read(n, 0, p.numel());
                if (st == null) continue;
                long[] shape = Tensors.shape(p);
                opt.putState(n, st.step(), st.expAvg().reshape(shape), st.expAvgSq().reshape(shape));
            }
        }
        return JSON.readTree(dir.resolve("trainer_state.json").toFile());
    }

    static void deleteTree(Path p) throws IOException {
        if (!Files.exists(p)) return;
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(Comparator.reverseOrder()).toList()) Files.delete(q);
        }
    }
}
