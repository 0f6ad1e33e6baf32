package io.llava4j.train;

import io.llava4j.config.LlavaConfig;
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

    /** Model inputs of a micro-batch: the images in order ([N, 3, H, W] or null) and per-sample ids and labels. */
    public record Input(Tensor pixels, long[][] inputIds, long[][] labels, long tokens) {}

    /**
     * The dataset of {@code dataPath} for a model: tokenizer from the model folder, image processor from the model
     * folder's {@code preprocessor_config.json} or else the CLIP folder's (original LLaVA keeps it there).
     */
    public static LlavaDataset open(Path modelFolder, LlavaConfig cfg, Path dataPath, Path imageFolder, String version,
                                    String aspectRatio, int modelMaxLength) {
        try {
            LlavaTokenizer tok = LlavaTokenizer.load(modelFolder);
            List<LlavaRecord> records = LlavaJson.read(dataPath);
            if (records.isEmpty()) throw new DataException(dataPath + ": no records");
            ImageProcessor proc = null;
            if (records.stream().anyMatch(LlavaRecord::hasImage)) {
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
            return new LlavaDataset(records, tok, version, imageFolder, proc, aspectRatio, modelMaxLength, cfg.imageTokenIndex());
        } catch (IOException e) {
            throw new UncheckedIOException(e.getMessage(), e);
        }
    }

    public static Input input(List<Sample> samples, int imageSize) {
        long[][] ids = new long[samples.size()][];
        long[][] labels = new long[samples.size()][];
        int images = 0;
        long tokens = 0;
        for (int i = 0; i < samples.size(); i++) {
            Sample s = samples.get(i);
            ids[i] = toLongs(s.inputIds());
            labels[i] = toLongs(s.labels());
            tokens += s.inputIds().length;
            if (s.hasImage()) images++;
        }
        Tensor pixels = null;
        if (images > 0) {
            int per = 3 * imageSize * imageSize;
            float[] all = new float[images * per];
            int k = 0;
            for (Sample s : samples)
                if (s.hasImage()) System.arraycopy(s.pixels(), 0, all, per * k++, per);
            pixels = Tensors.floats(all, images, 3, imageSize, imageSize);
        }
        return new Input(pixels, ids, labels, tokens);
    }

    private static long[] toLongs(int[] a) {
        long[] out = new long[a.length];
        for (int i = 0; i < a.length; i++) out[i] = a[i];
        return out;
    }
}
