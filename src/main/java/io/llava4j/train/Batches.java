package io.llava4j.train;

import io.llava4j.config.LlavaConfig;
import io.llava4j.data.Collator;
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
import java.util.List;

/** Opens LLaVA data for a model and turns samples into model inputs. */
public final class Batches {
    private Batches() {}

    /** Model inputs of a micro-batch: the images in order ([N, 3, H, W] or null), padded ids, labels and mask. */
    public record Input(Tensor pixels, long[][] inputIds, long[][] labels, boolean[][] attentionMask) {}

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
        if (aspectRatio == null) aspectRatio = cfg.imageAspectRatio() != null ? cfg.imageAspectRatio() : "square";
        try {
            List<LlavaRecord> records = LlavaJson.read(dataPath);
            if (records.isEmpty()) throw new DataException(dataPath + ": no records");
            ImageProcessor proc = null;
            if (records.stream().anyMatch(r -> r.hasImage() || r.conversations().stream().anyMatch(t -> t.value().contains(io.llava4j.data.Conversation.IMAGE)))) {
                Path pp = modelFolder.resolve("preprocessor_config.json");
                if (!Files.isRegularFile(pp) && cfg.visionTowerFolder() != null) pp = cfg.visionTowerFolder().resolve("preprocessor_config.json");
                if (!Files.isRegularFile(pp))
                    throw new DataException(modelFolder + ": no preprocessor_config.json (looked in the model folder"
                            + (cfg.visionTowerFolder() == null ? "" : " and " + cfg.visionTowerFolder()) + ")");
                proc = ImageProcessor.load(pp);
                if (proc.height() != cfg.vision().imageSize() || proc.width() != cfg.vision().imageSize())
                    throw new DataException(pp + ": crops images to " + proc.height() + "x" + proc.width()
                            + " but the vision tower takes " + cfg.vision().imageSize() + "x" + cfg.vision().imageSize());
            }
            LlavaDataset ds = new LlavaDataset(records, tok, version, imageFolder, proc, aspectRatio, modelMaxLength, cfg.imageTokenIndex());
            if (ds.caveat() != null) System.err.println("warning: " + ds.caveat());
            return new Data(ds, ds.collator());
        } catch (IOException e) {
            throw new UncheckedIOException(e.getMessage(), e);
        }
    }

    /** Collates samples as LLaVA's collator does (right padding, pad id, labels -100) and stacks their images. */
    public static Input input(List<Sample> samples, Collator collator, int imageSize) {
        Collator.Batch b = collator.collate(samples);
        int per = 3 * imageSize * imageSize, images = 0;
        for (float[] px : b.pixels()) if (px != null) images++;
        Tensor pixels = null;
        if (images > 0) {
            float[] all = new float[images * per];
            int k = 0;
            for (float[] px : b.pixels()) if (px != null) System.arraycopy(px, 0, all, per * k++, per);
            pixels = Tensors.floats(all, images, 3, imageSize, imageSize);
        }
        return new Input(pixels, b.inputIds(), b.labels(), b.attentionMask());
    }
}
