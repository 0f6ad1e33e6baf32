package io.llava4j.train;

import io.llava4j.config.LlavaConfig;
import io.llava4j.data.DataProblem;
import io.llava4j.data.DataReport;
import io.llava4j.data.LlavaDataset;
import io.llava4j.data.LlavaRecord;
import io.llava4j.data.LlavaTokenizer;
import io.llava4j.data.UnreadableImageException;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * What training checks of its data before any weight is read ({@link #check}), and how it treats an image that
 * becomes unreadable mid-run ({@link Skips}).
 */
public final class DataPreflight {
    private DataPreflight() {}

    /** Findings listed per class on the console; the full list goes to {@code output_dir/data_report.tsv}. */
    static final int LIST_LIMIT = 20;
    static final String REPORT_FILE = "data_report.tsv";

    /**
     * Validates the run's data ({@link Batches#validate}), prints the report and returns the records to train on:
     * all of them, or under {@code --on_bad_sample skip} those that would not stop training. Under {@code error} a
     * record that would stop training is a {@link io.llava4j.data.DataException} after the report.
     */
    public static List<LlavaRecord> check(LlavaTokenizer tok, LlavaConfig cfg, TrainArgs a, PrintStream out) throws IOException {
        DataReport r = Batches.validate(tok, a.modelNameOrPath(), cfg, a.dataPath(), a.imageFolder(), a.version(), a.imageAspectRatio(),
                a.modelMaxLength(), Runtime.getRuntime().availableProcessors());
        out.print(r.render(LIST_LIMIT));
        if (r.truncatedAt(LIST_LIMIT)) {
            Path file = a.outputDir().resolve(REPORT_FILE);
            r.write(file);
            out.println("  every finding: " + file);
        }
        int empty = r.recordsWith(DataProblem.Effect.TRAINS_ON_NOTHING).size();
        if (empty > 0)
            System.err.println("warning: " + empty + " record(s) train on nothing (listed above); LLaVA accepts them, so they stay");
        List<LlavaRecord> keep = r.forTraining(a.onBadSample());
        if (keep.size() < r.read().size() || keep.size() < r.records())
            System.err.println("warning: --on_bad_sample skip: training on " + keep.size() + " of " + r.records() + " records, "
                    + (r.records() - keep.size()) + " left out (listed above)");
        return keep;
    }

    /**
     * Samples whose image could not be read when their batch was built (deleted, truncated or replaced mid-run): each
     * is skipped with a warning naming it and counted; {@link #report} says how many at the end.
     */
    public static final class Skips {
        private int skipped;
        private final Set<String> ids = new LinkedHashSet<>();

        /**
         * Sample {@code i}, or null when its image cannot be read (warned and counted); {@code keys}: a vision-feature
         * cache's (null = none; see {@link LlavaDataset#get(int, LlavaDataset.ImageKeys)}). Safe from several loader threads.
         */
        public LlavaDataset.Sample get(LlavaDataset ds, int i, LlavaDataset.ImageKeys keys) {
            try {
                return ds.get(i, keys);
            } catch (UnreadableImageException e) {
                synchronized (this) {
                    skipped++;
                    ids.add(ds.record(i).describe());
                }
                System.err.println("\nwarning: skipped a sample whose image cannot be read: " + e.getMessage());
                return null;
            }
        }

        public synchronized int skipped() {
            return skipped;
        }

        /** Prints the count (nothing when no sample was skipped). */
        public synchronized void report() {
            if (skipped == 0) return;
            System.err.println("warning: " + skipped + " sample(s) skipped because their image could not be read, from "
                    + ids.size() + " record(s): " + String.join(", ", ids.stream().limit(LIST_LIMIT).toList())
                    + (ids.size() > LIST_LIMIT ? ", ..." : ""));
        }
    }
}
