package io.llava4j.train;

import io.llava4j.config.LlavaConfig;
import io.llava4j.data.Collator;
import io.llava4j.data.Conversation;
import io.llava4j.data.DataReport;
import io.llava4j.data.DataValidator;
import io.llava4j.data.Finding;
import io.llava4j.data.DataException;
import io.llava4j.data.ImageProcessor;
import io.llava4j.data.LlavaDataset;
import io.llava4j.data.LlavaDataset.Sample;
import io.llava4j.data.LlavaJson;
import io.llava4j.data.LlavaRecord;
import io.llava4j.data.LlavaTokenizer;
import io.llava4j.engine.Tensors;
import org.bytedeco.pytorch.Tensor;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Opens LLaVA data for a model and turns samples into model inputs. */
public final class Batches {
    private Batches() {}

    /** Model inputs of a micro-batch: the images in order ([N, 3, H, W] or null), padded ids, labels and mask. */
    /**
     * @param pixels     [tiles, C, H, W]: every decoded image's tiles in sample order (one tile per image without AnyRes)
     * @param imageSizes AnyRes: per image of the batch (sample order, decoded or cached) its (height, width); null otherwise
     */
    public record Input(Tensor pixels, long[][] inputIds, long[][] labels, boolean[][] attentionMask, int[][] imageSizes) {}

    /** A dataset and the collator that pads its samples with the template's pad id (unk, as LLaVA sets it). */
    public record Data(LlavaDataset dataset, Collator collator) {}

    /**
     * What is checked before any weight is read: the model's config (every field that changes the computation is
     * implemented or refused; a Mistral sliding window must cover {@code modelMaxLength}) and the tokenizer, which is
     * loaded and returned.
     */
    public static LlavaTokenizer preflight(Path modelFolder, Path visionTower, LlavaConfig.ProjectorSpec projector, int modelMaxLength) {
        LlavaConfig.load(modelFolder, visionTower, projector).text()
                .checkSequenceLength(modelMaxLength, modelFolder.resolve("config.json") + " (text)");
        try {
            return LlavaTokenizer.load(modelFolder);
        } catch (IOException e) {
            throw new UncheckedIOException(e.getMessage(), e);
        }
    }

    /**
     * The dataset of {@code dataPath} for a model, tokenized by {@code tok} (see {@link #preflight}); the image
     * processor from the model folder's {@code preprocessor_config.json} or else the CLIP folder's (original LLaVA keeps
     * it there). {@code aspectRatio} null: the config's {@code image_aspect_ratio} (original LLaVA), else {@code square}.
     */
    public static Data open(LlavaTokenizer tok, Path modelFolder, LlavaConfig cfg, Path dataPath, Path imageFolder, String version,
                            String aspectRatio, int modelMaxLength) {
        try {
            return open(tok, modelFolder, cfg, dataPath, LlavaJson.read(dataPath), imageFolder, version, aspectRatio, modelMaxLength);
        } catch (IOException e) {
            throw new UncheckedIOException(e.getMessage(), e);
        }
    }

    /** As {@link #open(LlavaTokenizer, Path, LlavaConfig, Path, Path, String, String, int)} for records already read (and checked). */
    public static Data open(LlavaTokenizer tok, Path modelFolder, LlavaConfig cfg, Path dataPath, List<LlavaRecord> records, Path imageFolder,
                            String version, String aspectRatio, int modelMaxLength) {
        if (records.isEmpty()) throw new DataException(dataPath + ": no records");
        LlavaDataset ds = new LlavaDataset(records, tok, version, imageFolder, processor(modelFolder, cfg, records), aspect(cfg, aspectRatio),
                modelMaxLength, cfg.imageTokenIndex()).anyRes(io.llava4j.data.AnyRes.spec(cfg));
        if (ds.caveat() != null) System.err.println("warning: " + ds.caveat());
        return new Data(ds, ds.collator());
    }

    /**
     * Reads {@code dataPath} and checks every record ({@link DataValidator}) with the tokenizer, image processor and
     * config the dataset will use, on {@code threads} threads; no weight is read.
     */
    public static DataReport validate(LlavaTokenizer tok, Path modelFolder, LlavaConfig cfg, Path dataPath, Path imageFolder, String version,
                                      String aspectRatio, int modelMaxLength, int threads) {
        Conversation.Template.forTraining(version);
        List<Finding> bad = new ArrayList<>();
        List<LlavaRecord> records;
        try {
            records = LlavaJson.read(dataPath, bad::add);
        } catch (IOException e) {
            throw new UncheckedIOException(dataPath + ": " + e.getMessage(), e);
        }
        if (records.isEmpty() && bad.isEmpty()) throw new DataException(dataPath + ": no records");
        io.llava4j.data.AnyRes.Spec anyRes = io.llava4j.data.AnyRes.spec(cfg); // null: one tile per image
        return DataValidator.validate(dataPath, records, bad, new DataValidator.Settings(tok, version, imageFolder,
                processor(modelFolder, cfg, records), aspect(cfg, aspectRatio), modelMaxLength, cfg.imageTokenIndex(),
                cfg.imageFeatureTokens(), threads, anyRes == null ? null : (h, w) -> io.llava4j.data.AnyRes.numImageTokens(h, w, anyRes)));
    }

    private static String aspect(LlavaConfig cfg, String aspectRatio) {
        if (aspectRatio != null) return aspectRatio;
        if (cfg.anyres() != null) return cfg.anyres().maxN() == null ? "anyres" : "anyres_max_" + cfg.anyres().maxN();
        return cfg.imageAspectRatio() != null ? cfg.imageAspectRatio() : "square";
    }

    /** The image processor, when some record needs one (null otherwise). */
    private static ImageProcessor processor(Path modelFolder, LlavaConfig cfg, List<LlavaRecord> records) {
        if (records.stream().noneMatch(r -> r.hasImage() || r.conversations().stream().anyMatch(t -> t.value().contains(Conversation.IMAGE))))
            return null;
        Path pp = modelFolder.resolve("preprocessor_config.json");
        if (!Files.isRegularFile(pp) && cfg.visionTowerFolder() != null) pp = cfg.visionTowerFolder().resolve("preprocessor_config.json");
        if (!Files.isRegularFile(pp))
            throw new DataException(modelFolder + ": no preprocessor_config.json (looked in the model folder"
                    + (cfg.visionTowerFolder() == null ? "" : " and " + cfg.visionTowerFolder()) + ")");
        ImageProcessor proc;
        try {
            proc = ImageProcessor.load(pp);
        } catch (IOException e) {
            throw new UncheckedIOException(pp + ": " + e.getMessage(), e);
        }
        if (proc.height() != cfg.vision().imageSize() || proc.width() != cfg.vision().imageSize())
            throw new DataException(pp + ": crops images to " + proc.height() + "x" + proc.width()
                    + " but the vision tower takes " + cfg.vision().imageSize() + "x" + cfg.vision().imageSize());
        return proc;
    }

    /** Collates samples as LLaVA's collator does (right padding, pad id, labels -100) and stacks their images. */
    public static Input input(List<Sample> samples, Collator collator, int imageSize) {
        Collator.Batch b = collator.collate(samples);
        int per = 3 * imageSize * imageSize, tiles = 0;
        for (float[] px : b.pixels()) if (px != null) tiles += px.length / per;
        Tensor pixels = null;
        if (tiles > 0) {
            float[] all = new float[tiles * per];
            int at = 0;
            for (float[] px : b.pixels())
                if (px != null) {
                    System.arraycopy(px, 0, all, at, px.length);
                    at += px.length;
                }
            pixels = Tensors.floats(all, tiles, 3, imageSize, imageSize);
        }
        List<int[]> sizes = new java.util.ArrayList<>();
        for (int[] s : b.imageSizes()) if (s != null) sizes.add(s);
        return new Input(pixels, b.inputIds(), b.labels(), b.attentionMask(), sizes.isEmpty() ? null : sizes.toArray(new int[0][]));
    }
}
