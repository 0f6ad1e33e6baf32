package io.llava4j.data;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * LLaVA's LazySupervisedDataset: records, a tokenizer, a conversation template and an image processor give one
 * {@link Sample} per record, built when asked for ({@link #get(int)}).
 *
 * <p>The constructor checks every record's structure (turns, roles, the {@code <image>} placeholder; see
 * {@link Conversation#check}) so that a bad record fails before training, not hours into it. Images are resolved as
 * {@code imageFolder/record.image}; a missing file is an error naming the record and the path.
 *
 * <p>Samples are cut to {@code modelMaxLength} tokens (as LLaVA's tokenizer/collator truncation does). If the cut
 * removes the image token, the sample goes on as text only (pixels null) with a warning: this is what LLaVA ends up
 * doing (a sample without image tokens uses no image features), said out loud.
 *
 * <p>Unk tokens in a sample (a literal {@code <unk>} in the text) are dropped from its ids and labels, with a warning:
 * LLaVA pads with unk, its collator's attention mask is {@code input_ids != pad}, and its
 * {@code prepare_inputs_labels_for_multimodal} keeps only the masked-in positions of ids and labels.
 */
public final class LlavaDataset {

    /**
     * One training sample.
     *
     * @param inputIds ids with one image token (imageTokenIndex) where the image goes
     * @param labels   same length; -100 where not supervised
     * @param pixels   CHW floats (3 x H x W of the processor), or null for a text-only sample
     * @param warning  null, or what went wrong (e.g. tokenization mismatch, sample fully masked)
     * @param imageKey the image's key in a vision-feature cache ({@link ImageKeys}; null = none); with a key and no
     *                 pixels the image was not decoded: its tower features are in the cache
     * @param imageSize AnyRes: the image's original (height, width), which decides its tiles and rows (null otherwise);
     *                 the pixels are then [1 + rows·cols, 3, P, P], base image first
     */
    public record Sample(String id, int[] inputIds, int[] labels, float[] pixels, String warning, String imageKey, int[] imageSize) {
        public Sample(String id, int[] inputIds, int[] labels, float[] pixels, String warning) {
            this(id, inputIds, labels, pixels, warning, null, null);
        }

        public Sample(String id, int[] inputIds, int[] labels, float[] pixels, String warning, String imageKey) {
            this(id, inputIds, labels, pixels, warning, imageKey, null);
        }

        public boolean hasImage() {
            return pixels != null || imageKey != null;
        }
    }

    /** A cache of per-image results (the vision-feature cache): the key of an image file, and whether it is stored. */
    public interface ImageKeys {
        /** The key of the image file {@code image} as this dataset preprocesses it ({@link #preprocessing()}). */
        String key(Path image);

        /** True when {@code key}'s result is stored: the image need not be decoded. */
        boolean has(String key);
    }

    private final List<LlavaRecord> records;
    private final Conversation conversation;
    private final Path imageFolder;
    private final ImagePaths imagePaths;
    private final ImageProcessor processor;
    private final String aspectRatio;
    private final int modelMaxLength;
    private final int imageTokenIndex;
    private AnyRes.Spec anyres; // null: one tile per image

    /**
     * @param version         LLaVA's {@code --version} (a name of {@link Conversation.Template})
     * @param imageFolder     LLaVA's {@code --image_folder} (may be null when no record has an image)
     * @param processor       the image processor (may be null when no record has an image)
     * @param aspectRatio     {@code square} or {@code pad}
     * @param modelMaxLength  LLaVA's {@code --model_max_length}
     * @param imageTokenIndex the id that stands for the image in input ids
     */
    public LlavaDataset(List<LlavaRecord> records, LlavaTokenizer tokenizer, String version, Path imageFolder,
                        ImageProcessor processor, String aspectRatio, int modelMaxLength, int imageTokenIndex) {
        this(records, tokenizer, version, imageFolder, processor, aspectRatio, modelMaxLength, imageTokenIndex, true);
    }

    /** {@code checkRecords} false: bad records are left for {@link DataValidator} to find, one by one. */
    LlavaDataset(List<LlavaRecord> records, LlavaTokenizer tokenizer, String version, Path imageFolder,
                 ImageProcessor processor, String aspectRatio, int modelMaxLength, int imageTokenIndex, boolean checkRecords) {
        if (modelMaxLength <= 0) throw new IllegalArgumentException("model_max_length must be positive, got " + modelMaxLength);
        this.records = List.copyOf(records);
        this.conversation = new Conversation(Conversation.Template.forTraining(version), tokenizer, imageTokenIndex);
        this.imageFolder = imageFolder;
        this.imagePaths = imageFolder == null ? null : new ImagePaths(imageFolder);
        this.processor = processor;
        this.aspectRatio = aspectRatio;
        this.modelMaxLength = modelMaxLength;
        this.imageTokenIndex = imageTokenIndex;
        boolean anyImage = false, anyPixels = false;
        for (LlavaRecord r : this.records) {
            anyImage |= r.hasImage();
            if (checkRecords) conversation.check(r);
            try {
                anyPixels |= r.hasImage() || conversation.usesImage(r);
            } catch (DataException e) {
                if (checkRecords) throw e;
            }
        }
        if (anyImage && imageFolder == null) throw new DataException("records have images but no image folder is given");
        if (anyPixels) {
            if (processor == null) throw new DataException("records have images but no image processor is given");
            if (aspectRatio == null || !aspectRatio.startsWith("anyres")) ImageProcessor.padding(aspectRatio);
        }
    }

    public int size() {
        return records.size();
    }

    public LlavaRecord record(int i) {
        return records.get(i);
    }

    /**
     * The image file of record {@code i}: image folder / record.image (null for a text-only record). A path that
     * resolves outside the image folder ({@code ..}, an absolute path, a symlink that points out) is a
     * {@link RecordException} ({@link DataProblem#PATH_ESCAPE}) naming the record and the path.
     */
    public Path imagePath(int i) {
        LlavaRecord r = records.get(i);
        if (!r.hasImage()) return null;
        return imagePaths.resolve(r.image(), r.describe());
    }

    /**
     * Record {@code i}'s image decoded as training decodes it, without resizing: a {@link RecordException} when the
     * file is missing ({@link DataProblem#IMAGE_MISSING}), empty or does not decode ({@link DataProblem#IMAGE_UNREADABLE}),
     * or lies outside the image folder ({@link DataProblem#PATH_ESCAPE}). Returns {width, height}.
     */
    int[] checkImage(int i) {
        Path p = existingImage(i);
        try {
            RgbImage img = ImageProcessor.read(p);
            if (img.width() <= 0 || img.height() <= 0)
                throw new RecordException(DataProblem.IMAGE_UNREADABLE, records.get(i).describe() + ": field image: " + p + ": the image is empty");
            return new int[]{img.width(), img.height()};
        } catch (RecordException e) {
            throw e;
        } catch (DataException e) {
            throw new RecordException(DataProblem.IMAGE_UNREADABLE, records.get(i).describe() + ": field image: " + e.getMessage(), e);
        }
    }

    private Path existingImage(int i) {
        LlavaRecord r = records.get(i);
        Path p = imagePath(i);
        if (!Files.isRegularFile(p))
            throw new RecordException(DataProblem.IMAGE_MISSING, r.describe() + ": field image: file not found: " + p);
        try {
            if (Files.size(p) == 0)
                throw new RecordException(DataProblem.IMAGE_UNREADABLE, r.describe() + ": field image: " + p + ": the file is empty");
        } catch (java.io.IOException e) {
            throw new RecordException(DataProblem.IMAGE_UNREADABLE, r.describe() + ": field image: " + p + ": " + e.getMessage(), e);
        }
        return p;
    }

    /** What {@link #get} computes before it loads pixels. {@code imageKept}: the image token survived truncation. */
    record Tokens(int[] inputIds, int[] labels, String warning, boolean imageKept, boolean mismatch, int untruncatedLength,
                  boolean untruncatedImage, int untruncatedLabels) {}

    /** Tokenizes record {@code i} as {@link #get} does (the same code: get calls this). */
    Tokens tokens(int i) {
        LlavaRecord r = records.get(i);
        Conversation.Tokenized full = conversation.untruncated(r, modelMaxLength);
        Conversation.Tokenized t = full.truncate(modelMaxLength);
        String warning = t.warning();
        boolean kept = false;
        for (int id : t.inputIds()) kept |= id == imageTokenIndex;
        if (!kept && conversation.usesImage(r)) {
            String w = r.describe() + ": model_max_length " + modelMaxLength
                    + " cuts off the image token; the sample is used as text only";
            warning = warning == null ? w : warning + "; " + w;
        }
        int[] ids = t.inputIds(), labels = t.labels();
        int pad = conversation.padId(), dropped = 0;
        for (int id : ids) if (id == pad) dropped++;
        if (dropped > 0) { // LLaVA's collator: attention_mask = ids != pad (= unk); prepare_inputs keeps only those
            int[] keptIds = new int[ids.length - dropped], keptLabels = new int[ids.length - dropped];
            for (int j = 0, k = 0; j < ids.length; j++) {
                if (ids[j] == pad) continue;
                keptIds[k] = ids[j];
                keptLabels[k++] = labels[j];
            }
            ids = keptIds;
            labels = keptLabels;
            String w = r.describe() + ": " + dropped + " unk token(s) in the text are dropped from input and labels (LLaVA pads with unk"
                    + " and its collator masks every unk)";
            warning = warning == null ? w : warning + "; " + w;
        }
        int fullLabels = 0;
        boolean fullImage = false;
        for (int l : full.labels()) if (l != Conversation.IGNORE_INDEX) fullLabels++;
        for (int id : full.inputIds()) fullImage |= id == imageTokenIndex;
        return new Tokens(ids, labels, warning, kept, t.mismatch(), full.inputIds().length, fullImage, fullLabels);
    }

    /**
     * Tokenizes record {@code i} and, if it has one, loads and preprocesses its image. An image that cannot be read is
     * an {@link UnreadableImageException}.
     */
    public Sample get(int i) {
        return get(i, null);
    }

    /**
     * What decides the pixels of an image besides its file: the processor's settings and the aspect-ratio mode (part
     * of a feature cache's key).
     */
    public String preprocessing() {
        if (processor == null) return "none";
        io.llava4j.data.ProcessorConfig c = processor.config();
        return "resize=" + c.doResize() + " size=" + c.size() + " resample=" + c.resample() + " crop=" + c.doCenterCrop()
                + " crop_size=" + c.cropSize() + " rescale=" + c.doRescale() + ":" + c.rescaleFactor() + " normalize="
                + c.doNormalize() + ":" + java.util.Arrays.toString(c.imageMean()) + ":" + java.util.Arrays.toString(c.imageStd())
                + " rgb=" + c.doConvertRgb() + " aspect=" + aspectRatio + (anyres == null ? "" : " anyres=" + anyres.tileSize() + ":"
                + anyres.pinpointsHW().stream().map(java.util.Arrays::toString).toList() + ":" + anyres.maxTiles() + ":" + anyres.rounding());
    }

    /**
     * As {@link #get(int)}; with {@code keys} (null = none) the sample's image file gets its cache key, and when that
     * key is stored the image is not decoded (the sample has the key and no pixels). Safe to call from several loader
     * threads at once.
     */
    public Sample get(int i, ImageKeys keys) {
        LlavaRecord r = records.get(i);
        Tokens t = tokens(i);
        float[] pixels = null;
        String imageKey = null;
        int[] imageSize = null;
        if (r.hasImage() && t.imageKept()) {
            Path p;
            try {
                p = existingImage(i);
                if (keys != null) imageKey = keys.key(p);
                boolean decode = imageKey == null || !keys.has(imageKey);
                if (anyres != null) {
                    if (decode) {
                        AnyRes.AnyResImage img = AnyRes.process(processor, p, anyres);
                        pixels = img.pixels();
                        imageSize = new int[]{img.imageHeight(), img.imageWidth()};
                    } else {
                        imageSize = ImageProcessor.size(p);
                    }
                } else if (decode) {
                    pixels = processor.process(p, aspectRatio);
                }
            } catch (RecordException e) {
                throw new UnreadableImageException(e.problem(), e.getMessage(), e);
            } catch (DataException e) {
                throw new UnreadableImageException(DataProblem.IMAGE_UNREADABLE, r.describe() + ": field image: " + e.getMessage(), e);
            }
        } else if (t.imageKept()) { // plain template, text-only record with <image>: LLaVA's torch.zeros(3, crop, crop)
            int side = processor.height();
            imageSize = anyres == null ? null : new int[]{side, processor.width()};
            int tiles = anyres == null ? 1 : 1 + AnyRes.grid(side, processor.width(), anyres).tiles();
            pixels = new float[tiles * 3 * processor.height() * processor.width()];
        }
        return new Sample(r.id(), t.inputIds(), t.labels(), pixels, t.warning(), imageKey, imageSize);
    }

    Conversation conversation() {
        return conversation;
    }

    int modelMaxLength() {
        return modelMaxLength;
    }

    /**
     * Images are cut into AnyRes tiles by {@code spec} (the model's {@link AnyRes#spec}); null keeps one tile per
     * image. Returns this dataset.
     */
    public LlavaDataset anyRes(AnyRes.Spec spec) {
        if (spec != null && aspectRatio != null && !aspectRatio.startsWith("anyres"))
            throw new DataException("image_aspect_ratio '" + aspectRatio + "': this model packs AnyRes tiles; use anyres"
                    + (spec.maxTiles() == null ? "" : "_max_" + spec.maxTiles()) + " (or leave it out)");
        this.anyres = spec;
        return this;
    }

    /** The AnyRes layout images are cut by, or null. */
    public AnyRes.Spec anyRes() {
        return anyres;
    }

    /** A collator that pads with the id LLaVA pads with under this dataset's template (unk; see {@link Conversation#collatorPadId}). */
    public Collator collator() {
        return new Collator(conversation.collatorPadId());
    }

    /** What to say once about the template itself (LLaVA's masking for it is known to be off), or null. */
    public String caveat() {
        return conversation.template().caveat();
    }

    /** LLaVA's {@code lengths}: words in all turns (Python's {@code len(value.split())}), plus 128 for an image. */
    public int[] lengths() {
        int[] out = new int[records.size()];
        for (int i = 0; i < out.length; i++) {
            LlavaRecord r = records.get(i);
            out[i] = words(r) + (r.hasImage() ? 128 : 0);
        }
        return out;
    }

    /**
     * LLaVA's {@code modality_lengths} (for group_by_modality_length): the word count of all turns, positive for a
     * record with an image, negative for a text-only record.
     */
    public int[] modalityLengths() {
        int[] out = new int[records.size()];
        for (int i = 0; i < out.length; i++) {
            LlavaRecord r = records.get(i);
            out[i] = r.hasImage() ? words(r) : -words(r);
        }
        return out;
    }

    private static int words(LlavaRecord r) {
        int n = 0;
        for (LlavaRecord.Turn t : r.conversations()) n += Conversation.pyWordCount(t.value());
        return n;
    }
}
