package io.llava4j.generate;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.llava4j.data.Conversation.Template;
import io.llava4j.data.DataException;
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
 * A model ready to answer: the LLaVA, its tokenizer and image processor, and a {@link Generator} that stops at the
 * tokenizer's {@code </s>}. Images are preprocessed as LLaVA's {@code process_images}: the config's
 * {@code image_aspect_ratio} ({@code pad} = expand to square; anything else = none).
 */
public final class Assistant implements AutoCloseable {
    /** Load-time choices: the CLIP folder for original LLaVA folders (null = from the config) and the precision. */
    public record Options(Path visionTower, Precision precision) {
        public static final Options DEFAULT = new Options(null, Precision.FP32);
    }

    private final Llava model;
    private final LlavaTokenizer tokenizer;
    private final ImageProcessor images;
    private final String aspectRatio;
    private final Generator generator;
    private final String name;

    private Assistant(Llava model, Precision precision, LlavaTokenizer tokenizer, ImageProcessor images, String aspectRatio, String name) {
        this.model = model;
        this.tokenizer = tokenizer;
        this.images = images;
        this.aspectRatio = aspectRatio;
        this.name = name;
        this.generator = new Generator(model, precision, tokenizer.eos());
    }

    public static Assistant load(Path folder, Options options) {
        Llava m = Checkpoints.load(folder, options.visionTower(), null, options.precision()).model();
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

    public Generator generator() {
        return generator;
    }

    /** [1, C, H, W] pixels of an image file. */
    public Tensor pixels(Path imageFile) {
        return tensor(images.process(imageFile, aspectRatio));
    }

    /** [1, C, H, W] pixels of an encoded image in memory; {@code source} names it in errors. */
    public Tensor pixels(byte[] encoded, String source) {
        return tensor(images.process(encoded, aspectRatio, source));
    }

    /** CHW floats of an encoded image in memory (as the model takes them, before they become a tensor). */
    public float[] processImage(byte[] encoded, String source) {
        return images.process(encoded, aspectRatio, source);
    }

    /** [1, C, H, W] pixels from {@link #processImage}'s floats. */
    public Tensor tensor(float[] chw) {
        return Tensors.floats(chw, 1, 3, images.height(), images.width());
    }

    /** Token ids of a prompt: LLaVA's tokenizer_image_token when it holds {@code <image>}, else tokenizer(prompt). */
    public int[] encode(String prompt, boolean image) {
        return image ? LlavaTokenizer.tokenizerImageToken(tokenizer, prompt, model.config.imageTokenIndex()) : tokenizer.encode(prompt, true);
    }

    /** The answer text of generated ids, as run_llava prints it: special tokens skipped, stripped. */
    public String decode(int[] tokens) {
        return tokenizer.decode(tokens, true).strip();
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
