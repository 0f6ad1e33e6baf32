package io.llava4j.data;

import java.io.IOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * What {@link DataValidator} found in a data file: every finding (record index, id, class, message) and the counts
 * by class. {@link #usable()} is what training keeps under {@code --on_bad_sample skip}: the readable records without a
 * finding that {@link DataProblem.Effect#STOPS stops} a run.
 *
 * @param records the records read (bad ones included)
 * @param read    the records that could be read (in file order)
 * @param seconds how long the check took
 */
public record DataReport(Path source, int records, List<LlavaRecord> read, List<Finding> findings, double seconds) {

    /** What to do with records that would stop training: {@code --on_bad_sample error|skip}. */
    public enum OnBadSample {
        ERROR, SKIP;

        public static OnBadSample of(String flag) {
            if (flag == null) return ERROR;
            return switch (flag.toLowerCase(Locale.ROOT)) {
                case "error" -> ERROR;
                case "skip" -> SKIP;
                default -> throw new IllegalArgumentException("--on_bad_sample " + flag + ": expected error or skip");
            };
        }
    }

    public DataReport {
        read = List.copyOf(read);
        findings = List.copyOf(findings);
    }

    /** Findings per class, in {@link DataProblem} order; classes with none are left out. */
    public Map<DataProblem, Integer> counts() {
        Map<DataProblem, Integer> c = new EnumMap<>(DataProblem.class);
        for (Finding f : findings) c.merge(f.problem(), 1, Integer::sum);
        return c;
    }

    /** Indices of the records with at least one finding of {@code effect}. */
    public Set<Integer> recordsWith(DataProblem.Effect effect) {
        Set<Integer> out = new HashSet<>();
        for (Finding f : findings) if (f.problem().effect() == effect) out.add(f.index());
        return out;
    }

    /** Whether any record would stop training (LLaVA refuses or crashes on it). */
    public boolean stops() {
        return findings.stream().anyMatch(f -> f.problem().effect() == DataProblem.Effect.STOPS);
    }

    /** The readable records without a finding that stops a run. */
    public List<LlavaRecord> usable() {
        Set<Integer> bad = recordsWith(DataProblem.Effect.STOPS);
        return read.stream().filter(r -> !bad.contains(r.index())).toList();
    }

    /**
     * The report: counts by class, then every finding that stops a run or trains on nothing (at most
     * {@code listLimit} per class) and the first few notes.
     */
    public String render(int listLimit) {
        StringBuilder b = new StringBuilder();
        int stop = recordsWith(DataProblem.Effect.STOPS).size(), empty = recordsWith(DataProblem.Effect.TRAINS_ON_NOTHING).size(),
                note = recordsWith(DataProblem.Effect.NOTE).size();
        b.append(String.format(Locale.ROOT, "data check: %s: %d records in %.1f s: %s%n", source, records, seconds,
                findings.isEmpty() ? "all good" : stop + " would stop training, " + empty + " train on nothing, " + note + " with notes"));
        Map<DataProblem, Integer> counts = counts();
        for (Map.Entry<DataProblem, Integer> e : counts.entrySet())
            b.append(String.format(Locale.ROOT, "  %-22s %8d  %s%n", e.getKey().label(), e.getValue(), switch (e.getKey().effect()) {
                case STOPS -> "stops the run";
                case TRAINS_ON_NOTHING -> "trains on nothing";
                case NOTE -> "note";
            }));
        for (DataProblem p : counts.keySet()) {
            int limit = p.effect() == DataProblem.Effect.NOTE ? Math.min(listLimit, 3) : listLimit, shown = 0;
            for (Finding f : findings) {
                if (f.problem() != p) continue;
                if (shown++ == limit) break;
                b.append("  ").append(p.effect() == DataProblem.Effect.STOPS ? "error" : p.effect() == DataProblem.Effect.NOTE ? "note" : "warning")
                        .append(" [").append(p.label()).append("] ").append(f.message()).append('\n');
            }
            if (counts.get(p) > limit)
                b.append("  ... and ").append(counts.get(p) - limit).append(" more [").append(p.label()).append("]\n");
        }
        return b.toString();
    }

    /** Whether {@link #render} leaves findings out. */
    public boolean truncatedAt(int listLimit) {
        for (Map.Entry<DataProblem, Integer> e : counts().entrySet())
            if (e.getValue() > (e.getKey().effect() == DataProblem.Effect.NOTE ? Math.min(listLimit, 3) : listLimit)) return true;
        return false;
    }

    /** Every finding, one tab-separated line each: index, id, class, effect, message. */
    public void write(Path file) throws IOException {
        Path parent = file.toAbsolutePath().getParent();
        if (parent != null) Files.createDirectories(parent);
        try (Writer w = Files.newBufferedWriter(file, StandardCharsets.UTF_8)) {
            w.write("index\tid\tproblem\teffect\tmessage\n");
            for (Finding f : findings)
                w.write(f.index() + "\t" + (f.id() == null ? "" : clean(f.id())) + "\t" + f.problem().label() + "\t"
                        + f.problem().effect().name().toLowerCase(Locale.ROOT) + "\t" + clean(f.message()) + "\n");
        }
    }

    private static String clean(String s) {
        return s.replace('\t', ' ').replace('\n', ' ').replace('\r', ' ');
    }

    /** The records training keeps: all when nothing stops a run; else, under SKIP, the usable ones; under ERROR, an error. */
    public List<LlavaRecord> forTraining(OnBadSample policy) {
        if (!stops()) return read;
        int n = recordsWith(DataProblem.Effect.STOPS).size();
        if (policy == OnBadSample.ERROR) {
            List<String> classes = new ArrayList<>();
            counts().forEach((p, c) -> {
                if (p.effect() == DataProblem.Effect.STOPS) classes.add(c + " " + p.label());
            });
            throw new DataException(source + ": " + n + " of " + records + " records would stop training (" + String.join(", ", classes)
                    + "); fix them, or pass --on_bad_sample skip to train without them");
        }
        List<LlavaRecord> keep = usable();
        if (keep.isEmpty()) throw new DataException(source + ": no usable record (all " + records + " would stop training)");
        return keep;
    }
}
