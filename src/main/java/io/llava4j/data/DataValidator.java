package io.llava4j.data;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ForkJoinPool;
import java.util.stream.IntStream;

/**
 * Checks every record of a LLaVA data file before any weight is read, with the code training runs: each record is
 * tokenized and masked by {@link LlavaDataset#tokens} (what {@link LlavaDataset#get} calls), its image resolved by the
 * dataset's path rule and decoded by {@link ImageProcessor}'s decoder. Nothing of the model is needed but its
 * tokenizer, image processor config and two numbers of its config (the image token id and the rows an image becomes).
 *
 * <p>Per record it finds (see {@link DataProblem}): a malformed record, wrong roles, a template the conversation does
 * not fit, {@code <image>} placeholders that disagree with the image field, an image that is missing, empty, does not
 * decode or lies outside the image folder; LLaVA's tokenization mismatch, a sample with no supervised token, one that
 * {@code --model_max_length} (image rows included, as the model's merge cuts) leaves with no label, or cuts at all.
 * Records are checked in parallel; an image used by several records is decoded once.
 */
public final class DataValidator {
    private DataValidator() {}

    /**
     * What the records are checked against.
     *
     * @param imageFeatureTokens rows one image becomes in the model's input (LLaVA-1.5: 576)
     * @param threads            worker threads (at least 1)
     * @param imageRows          AnyRes: the rows an image of (height, width) becomes, which depend on its size; null: every
     *                           image is {@code imageFeatureTokens} rows
     */
    public record Settings(LlavaTokenizer tokenizer, String version, Path imageFolder, ImageProcessor processor,
                           String aspectRatio, int modelMaxLength, int imageTokenIndex, int imageFeatureTokens, int threads,
                           java.util.function.IntBinaryOperator imageRows) {
        public Settings(LlavaTokenizer tokenizer, String version, Path imageFolder, ImageProcessor processor, String aspectRatio,
                        int modelMaxLength, int imageTokenIndex, int imageFeatureTokens, int threads) {
            this(tokenizer, version, imageFolder, processor, aspectRatio, modelMaxLength, imageTokenIndex, imageFeatureTokens, threads, null);
        }
    }

    /**
     * Checks {@code records} (those {@link LlavaJson#read(Path, java.util.function.Consumer)} could read; its findings
     * in {@code readFindings}). Problems that concern the whole file (no image folder, an unknown template) are a
     * {@link DataException}.
     */
    public static DataReport validate(Path dataPath, List<LlavaRecord> records, List<Finding> readFindings, Settings s) {
        long t0 = System.nanoTime();
        boolean anyImage = records.stream().anyMatch(LlavaRecord::hasImage);
        if (anyImage && s.imageFolder() == null)
            throw new DataException(dataPath + ": records have images (e.g. record #" + records.stream().filter(LlavaRecord::hasImage)
                    .findFirst().orElseThrow().index() + ") but no --image_folder is given");
        if (anyImage && !Files.isDirectory(s.imageFolder()))
            throw new DataException("--image_folder " + s.imageFolder() + ": not a folder");
        LlavaDataset ds = new LlavaDataset(records, s.tokenizer(), s.version(), s.imageFolder(), s.processor(), s.aspectRatio(),
                s.modelMaxLength(), s.imageTokenIndex(), false);
        Map<String, Object> images = new ConcurrentHashMap<>(); // image field -> {w, h} or its ImageProblem
        @SuppressWarnings("unchecked")
        List<Finding>[] found = new List[records.size()];
        ForkJoinPool pool = new ForkJoinPool(Math.max(1, s.threads()));
        try {
            pool.submit(() -> IntStream.range(0, records.size()).parallel()
                    .forEach(i -> found[i] = check(ds, i, s, images))).get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new DataException(dataPath + ": validation interrupted");
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            if (c instanceof RuntimeException re) throw re;
            if (c instanceof Error err) throw err;
            throw new DataException(dataPath + ": validation failed: " + c, c);
        } finally {
            pool.shutdown();
        }
        List<Finding> all = new ArrayList<>(readFindings);
        for (List<Finding> f : found) if (f != null) all.addAll(f);
        all.sort(java.util.Comparator.comparingInt(Finding::index));
        return new DataReport(dataPath, records.size() + (int) readFindings.stream().map(Finding::index).distinct().count(),
                records, all, (System.nanoTime() - t0) / 1e9);
    }

    /** The findings of record {@code i}, or null when it has none. */
    private static List<Finding> check(LlavaDataset ds, int i, Settings s, Map<String, Object> images) {
        LlavaRecord r = ds.record(i);
        List<Finding> out = null;
        Object result = null;
        if (r.hasImage()) {
            result = images.get(r.image());
            if (result == null) { // two threads may decode the same image once each; never under a lock
                try {
                    result = ds.checkImage(i);
                } catch (RuntimeException e) {
                    DataProblem p = e instanceof RecordException re ? re.problem() : DataProblem.IMAGE_UNREADABLE;
                    String m = message(r, e);
                    result = new ImageProblem(p, m.substring(r.describe().length()));
                }
                images.putIfAbsent(r.image(), result);
            }
        }
        int rows = s.imageFeatureTokens();
        if (s.imageRows() != null && result instanceof int[] wh) rows = s.imageRows().applyAsInt(wh[1], wh[0]);
        try {
            out = add(out, r, tokenFindings(ds, i, s, rows));
        } catch (RecordException e) {
            out = add(out, r, new Finding(r.index(), r.id(), e.problem(), e.getMessage()));
        } catch (RuntimeException e) {
            out = add(out, r, new Finding(r.index(), r.id(), DataProblem.OTHER, message(r, e)));
        }
        if (result instanceof ImageProblem p)
            out = add(out, r, new Finding(r.index(), r.id(), p.problem(), r.describe() + p.detail()));
        return out;
    }

    /**
     * The supervised tokens the model's loss sees for one sample ({@code Llava.supervisedTokens}): the image token
     * becomes {@code imageFeatureTokens} unsupervised rows, the merged sequence is cut to {@code maxLength}, and the
     * first position is never a target.
     */
    public static int supervisedAfterMerge(int[] ids, int[] labels, int imageTokenIndex, int imageFeatureTokens, int maxLength) {
        int q = 0, kept = 0; // q: position in the merged sequence
        for (int p = 0; p < ids.length && q < maxLength; p++) {
            if (q >= 1 && labels[p] != Conversation.IGNORE_INDEX) kept++;
            q += ids[p] == imageTokenIndex ? imageFeatureTokens : 1;
        }
        return kept;
    }

    /** An image's problem, its message without the record it was first found for. */
    private record ImageProblem(DataProblem problem, String detail) {}

    /** The exception's message, starting with the record's description. */
    private static String message(LlavaRecord r, RuntimeException e) {
        String m = e.getMessage();
        if (m != null && m.startsWith(r.describe())) return m;
        return r.describe() + ": " + (e instanceof DataException ? "" : e.getClass().getSimpleName() + ": ") + m;
    }

    private static List<Finding> add(List<Finding> out, LlavaRecord r, Finding f) {
        if (f == null) return out;
        if (out == null) out = new ArrayList<>(2);
        out.add(f);
        return out;
    }

    /**
     * The token-side finding of record {@code i} (the worst one), or null. Labels are counted where the model's loss
     * sees them: after the image token became {@code imageFeatureTokens} rows, the sequence was cut to
     * {@code modelMaxLength} and the first position (never a target) dropped.
     */
    private static Finding tokenFindings(LlavaDataset ds, int i, Settings s, int imageRows) {
        LlavaRecord r = ds.record(i);
        LlavaDataset.Tokens t = ds.tokens(i);
        int max = s.modelMaxLength(), grow = Math.max(0, imageRows - 1);
        if (t.mismatch())
            return new Finding(r.index(), r.id(), DataProblem.MASKING_MISMATCH, t.warning());
        if (t.untruncatedLabels() == 0)
            return new Finding(r.index(), r.id(), DataProblem.FULLY_MASKED, r.describe() + ": no token is supervised (every label is masked"
                    + " by the template: an empty answer?); the sample trains on nothing");
        int kept = supervisedAfterMerge(t.inputIds(), t.labels(), s.imageTokenIndex(), imageRows, max);
        int length = t.untruncatedLength() + (t.untruncatedImage() ? grow : 0);
        if (kept == 0)
            return new Finding(r.index(), r.id(), DataProblem.TRUNCATED_TO_NO_LABEL, r.describe() + ": " + length + " positions"
                    + (t.untruncatedImage() ? " (image rows included)" : "") + " are cut to --model_max_length " + max
                    + ", which leaves no supervised token; the sample trains on nothing");
        if (length > max)
            return new Finding(r.index(), r.id(), DataProblem.TRUNCATED, r.describe() + ": " + length + " positions"
                    + (t.untruncatedImage() ? " (image rows included)" : "") + " are cut to --model_max_length " + max
                    + "; " + (t.untruncatedLabels() - kept) + " of " + t.untruncatedLabels() + " supervised tokens are lost");
        if (r.hasImage() && !t.untruncatedImage())
            return new Finding(r.index(), r.id(), DataProblem.IMAGE_UNUSED, r.describe() + ": the record has an image but no "
                    + Conversation.IMAGE + " in a turn that is kept; it trains as text only (the image is still read, as LLaVA does)");
        return null;
    }
}
