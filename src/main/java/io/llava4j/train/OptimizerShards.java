package io.llava4j.train;

import io.llava4j.engine.Tensors;
import io.llava4j.io.HostTensor;
import io.llava4j.io.Safetensors;
import org.bytedeco.pytorch.Tensor;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * AdamW's state in a checkpoint folder, in either layout, read by slices:
 * <ul>
 *   <li>one process or DDP: {@code optimizer.safetensors} with {@code NAME.exp_avg}, {@code NAME.exp_avg_sq} (the
 *       tensor's shape) and {@code NAME.step};</li>
 *   <li>ZeRO: {@code optimizer_shards/rank-R-of-W.safetensors}, one file per rank, each with {@code NAME.exp_avg},
 *       {@code NAME.exp_avg_sq} (1-D: the rank's slice of the flattened tensor), {@code NAME.step} and {@code NAME.range}
 *       (int64 [2]: the slice's [from, to) in the flattened tensor).</li>
 * </ul>
 * Any slice can be read from either layout, so a checkpoint resumes with any world size and with or without ZeRO:
 * each rank takes its slices from whatever files cover them (DeepSpeed needs {@code zero_to_fp32.py} for that).
 */
public final class OptimizerShards {
    public static final String FOLDER = "optimizer_shards";
    static final String WHOLE = "optimizer.safetensors";

    private OptimizerShards() {}

    public static String fileName(int rank, int world) {
        return String.format("rank-%05d-of-%05d.safetensors", rank, world);
    }

    /** One tensor's state for a slice: its AdamW step count and the moments of the slice ([to − from] each). */
    public record Slice(long step, Tensor expAvg, Tensor expAvgSq) {}

    /** A rank's slice of one tensor's state, to be written. */
    public record Part(long from, long to, AdamW.State state) {}

    /** Writes {@code parts} (by tensor name) as rank {@code rank} of {@code world} into {@code checkpoint}, atomically (temporary file, fsync, rename). */
    public static void write(Path checkpoint, int rank, int world, Map<String, Part> parts) throws IOException {
        Path folder = checkpoint.resolve(FOLDER);
        Files.createDirectories(folder);
        Map<String, HostTensor> t = new LinkedHashMap<>();
        parts.forEach((n, p) -> {
            t.put(n + ".exp_avg", Tensors.hostView(p.state().expAvg));
            t.put(n + ".exp_avg_sq", Tensors.hostView(p.state().expAvgSq));
            t.put(n + ".step", HostTensor.ofLongs(new long[]{}, new long[]{p.state().step}));
            t.put(n + ".range", HostTensor.ofLongs(new long[]{2}, new long[]{p.from(), p.to()}));
        });
        Path file = folder.resolve(fileName(rank, world));
        Path tmp = folder.resolve("." + file.getFileName() + ".tmp");
        Safetensors.write(tmp, t, Map.of("format", "pt", "rank", String.valueOf(rank), "world_size", String.valueOf(world)));
        io.llava4j.io.Fsync.file(tmp);
        io.llava4j.io.Fsync.move(tmp, file);
    }

    /** Whether {@code checkpoint} holds optimizer state in either layout. */
    static boolean present(Path checkpoint) {
        return Files.isRegularFile(checkpoint.resolve(WHOLE)) || Files.isDirectory(checkpoint.resolve(FOLDER));
    }

    /**
     * Writes {@code optimizer}'s state of this rank's slices, {@code slices} giving each tensor's [from, to) in its
     * flattened values (the tensors {@code optimizer} has state for).
     */
    public static void writeSlices(Path checkpoint, int rank, int world, AdamW optimizer, Map<String, long[]> slices) throws IOException {
        Map<String, Part> parts = new java.util.LinkedHashMap<>();
        for (Map.Entry<String, AdamW.State> e : optimizer.state().entrySet()) {
            long[] r = slices.get(e.getKey());
            parts.put(e.getKey(), new Part(r[0], r[1], e.getValue()));
        }
        write(checkpoint, rank, world, parts);
    }

    /** Reads this rank's slices back into {@code optimizer} from the shards of any world size in {@code dir}. */
    public static void readSlices(Path dir, AdamW optimizer, Map<String, long[]> slices) throws IOException {
        Source src = open(dir);
        for (Map.Entry<String, long[]> e : slices.entrySet()) {
            Slice s = src.read(e.getKey(), e.getValue()[0], e.getValue()[1]);
            if (s != null) optimizer.putState(e.getKey(), s.step(), s.expAvg(), s.expAvgSq());
        }
    }

    /** The optimizer state of checkpoint {@code dir}, by slices. */
    public static Source open(Path dir) throws IOException {
        Source s = new Source(dir);
        if (Files.isRegularFile(dir.resolve(WHOLE))) {
            s.whole = Safetensors.read(dir.resolve(WHOLE)).tensors();
            return s;
        }
        Path folder = dir.resolve(FOLDER);
        if (!Files.isDirectory(folder))
            throw new IOException(dir + ": no optimizer state (neither " + WHOLE + " nor " + FOLDER + "/)");
        List<Path> files;
        try (Stream<Path> l = Files.list(folder)) {
            files = l.filter(p -> p.getFileName().toString().matches("rank-\\d+-of-\\d+\\.safetensors")).sorted().toList();
        }
        if (files.isEmpty()) throw new IOException(folder + ": no rank-R-of-W.safetensors file");
        int world = Integer.parseInt(files.get(0).getFileName().toString().replaceAll(".*-of-0*(\\d+)\\.safetensors", "$1"));
        if (files.size() != world)
            throw new IOException(folder + ": " + files.size() + " rank file(s) of a world of " + world + " (a checkpoint written by "
                    + world + " ranks needs all of them)");
        for (Path f : files) s.shards.add(Safetensors.read(f).tensors());
        return s;
    }

    /** Checkpoint state readable by tensor slice. */
    public static final class Source {
        private final Path dir;
        private Map<String, HostTensor> whole;
        private final List<Map<String, HostTensor>> shards = new ArrayList<>();

        private Source(Path dir) {
            this.dir = dir;
        }

        /** Tensor names with state. */
        public java.util.Set<String> names() {
            java.util.Set<String> out = new java.util.LinkedHashSet<>();
            for (Map<String, HostTensor> m : whole != null ? List.of(whole) : shards)
                for (String k : m.keySet()) if (k.endsWith(".step")) out.add(k.substring(0, k.length() - ".step".length()));
            return out;
        }

        /** The state of tensor {@code name}'s flattened values [from, to), or null when it has none (it never took a step). */
        public Slice read(String name, long from, long to) {
            if (whole != null) {
                if (!whole.containsKey(name + ".step")) return null;
                Tensor m = Tensors.fromHost(whole.get(name + ".exp_avg")).reshape(-1), v = Tensors.fromHost(whole.get(name + ".exp_avg_sq")).reshape(-1);
                check(name, from, to, m.numel());
                return new Slice(whole.get(name + ".step").toLongs()[0], m.narrow(0, from, to - from).clone(), v.narrow(0, from, to - from).clone());
            }
            float[] m = new float[Math.toIntExact(to - from)], v = new float[m.length];
            long covered = 0, step = -1;
            for (Map<String, HostTensor> s : shards) {
                HostTensor range = s.get(name + ".range");
                if (range == null) continue;
                long[] r = range.toLongs();
                long lo = Math.max(r[0], from), hi = Math.min(r[1], to);
                if (lo >= hi) continue;
                float[] pm = s.get(name + ".exp_avg").toFloats(), pv = s.get(name + ".exp_avg_sq").toFloats();
                System.arraycopy(pm, (int) (lo - r[0]), m, (int) (lo - from), (int) (hi - lo));
                System.arraycopy(pv, (int) (lo - r[0]), v, (int) (lo - from), (int) (hi - lo));
                long st = s.get(name + ".step").toLongs()[0];
                if (step >= 0 && st != step)
                    throw new IllegalArgumentException(dir + ": the rank files disagree on the step count of " + name);
                step = st;
                covered += hi - lo;
            }
            if (step < 0) return null;
            if (covered != to - from)
                throw new IllegalArgumentException(dir + ": the rank files cover " + covered + " of the " + (to - from)
                        + " values [" + from + ", " + to + ") of " + name + "'s optimizer state");
            return new Slice(step, Tensors.floats(m, m.length), Tensors.floats(v, v.length));
        }

        private void check(String name, long from, long to, long numel) {
            if (from < 0 || to > numel || from > to)
                throw new IllegalArgumentException(dir + ": optimizer state of " + name + " has " + numel + " values, not [" + from + ", " + to + ")");
        }
    }
}
