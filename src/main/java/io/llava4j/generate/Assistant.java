package io.llava4j.generate;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.llava4j.config.LlavaConfig;
import io.llava4j.data.AnyRes;
import io.llava4j.data.Conversation.Template;
import io.llava4j.data.DataException;
import io.llava4j.data.ImageLimits;
import io.llava4j.data.ImageProcessor;
import io.llava4j.data.LlavaTokenizer;
import io.llava4j.engine.Tensors;
import io.llava4j.model.Checkpoints;
import io.llava4j.model.Llava;
import io.llava4j.nn.Precision;
import org.bytedeco.pytorch.Tensor;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A model ready to answer: the LLaVA, its tokenizer and image processor, and {@link Generator}s that stop at the
 * tokenizer's EOS and the conversation template's stop token. Images are preprocessed as LLaVA's
 * {@code process_images}: for an AnyRes model (LLaVA-NeXT, OneVision) a base tile plus a grid of tiles
 * ({@link AnyRes#process}), else one tile by the config's {@code image_aspect_ratio} ({@code pad} = expand to square;
 * anything else = none). The conversation template defaults to the one the model was trained with
 * ({@link #defaultConvMode()}).
 */
public final class Assistant implements AutoCloseable {
    /**
     * Load-time choices: the CLIP folder for original LLaVA folders (null = from the config), the precision, and the
     * LLM's linear weights held quantized ({@code --load_8bit} / {@code --load_4bit}; null = not).
     */
    public record Options(Path visionTower, Precision precision, io.llava4j.nn.quant.QuantSpec quant) {
        public static final Options DEFAULT = new Options(null, Precision.FP32);

        public Options(Path visionTower, Precision precision) {
            this(visionTower, precision, null);
        }
    }

    /**
     * A preprocessed image as the model takes it.
     *
     * @param pixels CHW floats of its {@code tiles} tiles, one after another (AnyRes: the base image, then the grid row-major)
     * @param sizes  {@code {{height, width}}} of the original image for an AnyRes model (what its packing needs); null otherwise
     * @param tokens rows the image becomes in the LLM's input ({@link Llava#imageTokens})
     */
    public record Image(float[] pixels, int tiles, int[][] sizes, int tokens) {}

    private final Llava model;
    private final Precision precision;
    private final LlavaTokenizer tokenizer;
    private final ImageProcessor images;
    private final AnyRes.Spec anyres; // null: one tile per image
    private final String aspectRatio;
    private final Generator generator;
    private final String name;

    private Assistant(Llava model, Precision precision, LlavaTokenizer tokenizer, ImageProcessor images, String aspectRatio, String name) {
        this.model = model;
        this.precision = precision;
        this.tokenizer = tokenizer;
        this.images = images;
        this.anyres = AnyRes.spec(model.config);
        this.aspectRatio = aspectRatio;
        this.name = name;
        this.generator = new Generator(model, precision, tokenizer.eos());
    }

    public static Assistant load(Path folder, Options options) {
        Llava m = InferenceWeights.load(folder, options.visionTower(), options.precision(), options.quant());
        try {
            LlavaTokenizer tok = LlavaTokenizer.load(folder);
            Path pp = folder.resolve("preprocessor_config.json");
            if (!Files.isRegularFile(pp) && m.config.visionTowerFolder() != null) pp = m.config.visionTowerFolder().resolve("preprocessor_config.json");
            if (!Files.isRegularFile(pp))
                throw new DataException(folder + ": no preprocessor_config.json (looked in the model folder"
                        + (m.config.visionTowerFolder() == null ? "" : " and " + m.config.visionTowerFolder()) + ")");
            ImageProcessor proc = ImageProcessor.load(pp);
            int size = m.config.vision().imageSize();
            if (proc.height() != size || proc.width() != size)
                throw new DataException(pp + ": crops images to " + proc.height() + "x" + proc.width() + " but the vision tower takes " + size + "x" + size);
            return new Assistant(m, options.precision(), tok, proc, aspectRatio(folder), folder.toAbsolutePath().normalize().getFileName().toString());
        } catch (IOException e) {
            throw new UncheckedIOException(e.getMessage(), e);
        }
    }

    /** LLaVA's {@code model.config.image_aspect_ratio}: "pad" when config.json says so, else "square". */
    private static String aspectRatio(Path folder) throws IOException {
        Path cfg = folder.resolve("config.json");
        if (!Files.isRegularFile(cfg)) return "square";
        JsonNode n = new ObjectMapper().readTree(cfg.toFile()).path("image_aspect_ratio");
        return "pad".equals(n.asText()) ? "pad" : "square";
    }

    /** The model's name (its folder's name), as the server lists it. */
    public String name() {
        return name;
    }

    public Llava model() {
        return model;
    }

    public LlavaTokenizer tokenizer() {
        return tokenizer;
    }

    /** A generator that stops at the tokenizer's EOS only. */
    public Generator generator() {
        return generator;
    }

    /**
     * A generator for prompts in {@code template}: it stops at the tokenizer's EOS and at the template's stop string
     * when that is one special token ({@code <|im_end|>} under qwen_1_5 even where EOS is {@code <|endoftext|>}).
     */
    public Generator generator(Template template) {
        int stop = stopToken(template);
        int eos = tokenizer.eos();
        if (stop < 0 || stop == eos) return generator;
        return eos < 0 ? new Generator(model, precision, stop) : new Generator(model, precision, eos, stop);
    }

    /**
     * The id of the template's stop string when the tokenizer has it as one special token (decoded to nothing with
     * special tokens skipped, as {@code </s>} or {@code <|im_end|>}), else -1 (e.g. v0's {@code ###}, left to
     * {@link StopString}).
     */
    public int stopToken(Template template) {
        String stop = template.stop();
        if (stop == null || stop.isEmpty()) return -1;
        int id = tokenizer.tokenIdOf(stop);
        if (id < 0 || id >= tokenizer.vocabSize()) return -1;
        return tokenizer.decode(new int[]{id}, true).isEmpty() ? id : -1;
    }

    /**
     * The text at which streamed answers in {@code template} stop ({@link StopString}): the template's stop string, or
     * "" when the generator already stops at it as a token (decoded text never holds a special token).
     */
    public String stopString(Template template) {
        return stopToken(template) >= 0 || template.stop() == null ? "" : template.stop();
    }

    /**
     * The conversation template the model was trained with, as LLaVA / LLaVA-NeXT's scripts pick {@code --conv-mode}:
     * {@link Template#defaultConvMode} of the LLM's {@code model_type} and the folder's ({@code llava}, {@code llava_next},
     * {@code llava_onevision}, {@code llava_llama}, {@code llava_qwen}, {@code llava_mistral}; a plain LLM folder with a
     * separate tower counts as {@code llava}). LLaVA-1.5: {@code v1}; Qwen2 LLaVA-NeXT / OneVision: {@code qwen_1_5}.
     */
    public String defaultConvMode() {
        return defaultConvMode(model.config);
    }

    static String defaultConvMode(LlavaConfig c) {
        String vlm = c.family() == LlavaConfig.Family.LLAMA || c.raw() == null ? "llava" : c.raw().path("model_type").asText("llava");
        return Template.defaultConvMode(c.text().modelType(), vlm);
    }

    /** An image file preprocessed for this model. */
    public Image image(Path imageFile) {
        if (anyres != null) return image(AnyRes.process(images, imageFile, anyres));
        return new Image(images.process(imageFile, aspectRatio), 1, null, model.config.imageFeatureTokens());
    }

    /** An encoded image in memory (PNG, JPEG, BMP, GIF) preprocessed for this model; {@code source} names it in errors. */
    public Image image(byte[] encoded, String source) {
        return image(encoded, source, ImageLimits.DEFAULT);
    }

    /**
     * As {@link #image(byte[], String)}, refusing from its header (before decoding) an image whose pixels, aspect ratio
     * or resized size go over {@code limits}: an {@link io.llava4j.data.ImageTooLargeException}.
     */
    public Image image(byte[] encoded, String source, ImageLimits limits) {
        if (anyres != null) return image(AnyRes.process(images, encoded, source, anyres, limits));
        return new Image(images.process(encoded, aspectRatio, source, limits), 1, null, model.config.imageFeatureTokens());
    }

    private Image image(AnyRes.AnyResImage a) {
        return new Image(a.pixels(), a.tiles(), new int[][]{{a.imageHeight(), a.imageWidth()}},
                model.imageTokens(a.imageHeight(), a.imageWidth()));
    }

    /** [tiles, C, H, W] pixels of a preprocessed image (one tile without AnyRes). */
    public Tensor tensor(Image image) {
        return Tensors.floats(image.pixels(), image.tiles(), 3, images.height(), images.width());
    }

    /** [tiles, C, H, W] pixels of an image file; an AnyRes model also needs its size ({@link #image(Path)}). */
    public Tensor pixels(Path imageFile) {
        return tensor(image(imageFile));
    }

    /** One answer: {@link Generator#generate} of {@code generator} with the image's tiles and size (null = no image). */
    public Generator.Result generate(Generator generator, Image image, int[] prompt, Sampling sampling, Generator.TokenListener listener) {
        return image == null ? generator.generate(null, null, prompt, sampling, listener)
                : generator.generate(tensor(image), image.sizes(), prompt, sampling, listener);
    }

    /**
     * A continuous decode batch over this model ({@link ContinuousBatcher}) of at most {@code maxBatch} rows;
     * {@code onStep} is told the rows of each decoding step (null = none).
     */
    public ContinuousBatcher batcher(int maxBatch, java.util.function.IntConsumer onStep) {
        return new ContinuousBatcher(model, precision, maxBatch, onStep);
    }

    /** {@link #generate} through {@code batch}: queues the request; {@code client} is told its tokens and end. */
    public void submit(ContinuousBatcher batch, Generator generator, Image image, int[] prompt, Sampling sampling, ContinuousBatcher.Client client) {
        batch.submit(generator, image == null ? null : () -> tensor(image), image == null ? null : image.sizes(), prompt, sampling, client);
    }

    /** Token ids of a prompt: LLaVA's tokenizer_image_token when it holds {@code <image>}, else tokenizer(prompt). */
    public int[] encode(String prompt, boolean image) {
        return image ? LlavaTokenizer.tokenizerImageToken(tokenizer, prompt, model.config.imageTokenIndex()) : tokenizer.encode(prompt, true);
    }

    /** The answer text of generated ids, as run_llava prints it: special tokens skipped, stripped. */
    public String decode(int[] tokens) {
        return tokenizer.decodeGenerated(tokens, true).strip();
    }

    /** A fresh prompt builder for a template name (one of LLaVA's conv_templates, see {@link Template#of}). */
    public static Prompts prompts(String convMode) {
        return new Prompts(Template.of(convMode));
    }

    @Override
    public void close() {
        tokenizer.close();
    }
}
