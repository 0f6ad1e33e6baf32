package io.llava4j.data;

import com.fasterxml.jackson.annotation.JsonCreator;
import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.exc.ValueInstantiationException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A CLIP image processor's {@code preprocessor_config.json}, with transformers' CLIPImageProcessor defaults for the
 * flags ({@code do_resize}, {@code do_center_crop}, {@code do_rescale}, {@code do_normalize}, {@code do_convert_rgb}:
 * true; {@code rescale_factor} 1/255; {@code resample} 3 = bicubic). Unknown fields are ignored. Exception: when
 * {@code image_processor_type} names SigLIP's or LLaVA-OneVision's processor, a missing {@code do_center_crop} means
 * false, as those processors never crop (they resize straight to {@code size.height x size.width}).
 *
 * <p>Never defaulted (an error naming the field instead): {@code image_mean}, {@code image_std}, {@code size} when
 * resizing and {@code crop_size} when cropping. {@code size} may be an int or {@code {"shortest_edge": n}} (resize the
 * shortest edge) or {@code {"height": h, "width": w}}; {@code crop_size} an int (square) or {@code {"height", "width"}},
 * as transformers' get_size_dict reads them (old CLIP configs hold ints).
 *
 * @param resample PIL filter number: 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming (0 nearest is not supported)
 */
@JsonIgnoreProperties(ignoreUnknown = true)
public record ProcessorConfig(boolean doResize, Size size, int resample, boolean doCenterCrop, Size cropSize,
                              boolean doRescale, double rescaleFactor, boolean doNormalize, double[] imageMean,
                              double[] imageStd, boolean doConvertRgb) {

    /**
     * A size: {@code shortestEdge > 0} means "resize the shortest edge to it, keep the aspect ratio";
     * otherwise {@code height} x {@code width}.
     */
    public record Size(int shortestEdge, int height, int width) {
        public boolean isShortestEdge() {
            return shortestEdge > 0;
        }
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    /** Jackson's entry point: fills the defaults and validates; a problem is an IllegalArgumentException naming the field. */
    @JsonCreator
    public static ProcessorConfig of(@JsonProperty("do_resize") Boolean doResize,
                                     @JsonProperty("size") JsonNode size,
                                     @JsonProperty("resample") Integer resample,
                                     @JsonProperty("do_center_crop") Boolean doCenterCrop,
                                     @JsonProperty("crop_size") JsonNode cropSize,
                                     @JsonProperty("do_rescale") Boolean doRescale,
                                     @JsonProperty("rescale_factor") Double rescaleFactor,
                                     @JsonProperty("do_normalize") Boolean doNormalize,
                                     @JsonProperty("image_mean") JsonNode imageMean,
                                     @JsonProperty("image_std") JsonNode imageStd,
                                     @JsonProperty("do_convert_rgb") Boolean doConvertRgb,
                                     @JsonProperty("image_processor_type") String processorType) {
        boolean resize = doResize == null || doResize;
        boolean crop = doCenterCrop != null ? doCenterCrop : cropsByDefault(processorType);
        int filter = resample == null ? 3 : resample;
        if (filter < 1 || filter > 5)
            throw new IllegalArgumentException("field resample: " + filter
                    + " is not supported (1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming)");
        Size s = resize ? size("size", size, false) : null;
        Size c = crop ? size("crop_size", cropSize, true) : null;
        if (c != null && c.isShortestEdge())
            throw new IllegalArgumentException("field crop_size: needs height and width, got shortest_edge");
        return new ProcessorConfig(resize, s, filter, crop, c, doRescale == null || doRescale,
                rescaleFactor == null ? 1.0 / 255 : rescaleFactor, doNormalize == null || doNormalize,
                triple("image_mean", imageMean), triple("image_std", imageStd), doConvertRgb == null || doConvertRgb);
    }

    /** Reads a preprocessor_config.json; every problem is a {@link DataException} naming the file and the field. */
    public static ProcessorConfig read(Path file) throws IOException {
        if (!Files.isRegularFile(file)) throw new DataException(file + ": not found");
        return parse(file.toString(), Files.readString(file));
    }

    /** Parses preprocessor_config.json text; {@code source} names it in errors. */
    public static ProcessorConfig parse(String source, String json) {
        try {
            return JSON.readValue(json, ProcessorConfig.class);
        } catch (ValueInstantiationException e) {
            Throwable cause = e.getCause() != null ? e.getCause() : e;
            throw new DataException(source + ": " + cause.getMessage(), e);
        } catch (IOException e) {
            throw new DataException(source + ": not a valid preprocessor config: " + e.getMessage(), e);
        }
    }

    /**
     * Whether a config without {@code do_center_crop} crops: CLIP's processor (and LLaVA-NeXT's, built on it) does;
     * SigLIP's and LLaVA-OneVision's have no centre crop at all (they resize straight to {@code size}).
     */
    static boolean cropsByDefault(String processorType) {
        return processorType == null
                || !(processorType.startsWith("Siglip") || processorType.startsWith("LlavaOnevision"));
    }

    private static Size size(String field, JsonNode n, boolean defaultToSquare) {
        if (n == null || n.isNull()) throw new IllegalArgumentException("field " + field + ": missing");
        if (n.isInt()) {
            int v = positive(field, n);
            return defaultToSquare ? new Size(0, v, v) : new Size(v, 0, 0);
        }
        if (!n.isObject()) throw new IllegalArgumentException("field " + field + ": expected an int or an object, got " + n);
        if (n.has("shortest_edge")) return new Size(positive(field + ".shortest_edge", n.get("shortest_edge")), 0, 0);
        if (n.has("height") && n.has("width"))
            return new Size(0, positive(field + ".height", n.get("height")), positive(field + ".width", n.get("width")));
        throw new IllegalArgumentException("field " + field + ": needs shortest_edge or height and width, got " + n);
    }

    private static int positive(String field, JsonNode n) {
        if (!n.isInt() || n.asInt() <= 0) throw new IllegalArgumentException("field " + field + ": expected a positive int, got " + n);
        return n.asInt();
    }

    /** image_mean / image_std: 3 numbers, or one number for all channels. */
    private static double[] triple(String field, JsonNode n) {
        if (n == null || n.isNull()) throw new IllegalArgumentException("field " + field + ": missing (never defaulted to CLIP's values)");
        if (n.isNumber()) return new double[]{n.asDouble(), n.asDouble(), n.asDouble()};
        if (!n.isArray() || n.size() != 3) throw new IllegalArgumentException("field " + field + ": expected 3 numbers, got " + n);
        double[] v = new double[3];
        for (int i = 0; i < 3; i++) {
            if (!n.get(i).isNumber()) throw new IllegalArgumentException("field " + field + "[" + i + "]: expected a number, got " + n.get(i));
            v[i] = n.get(i).asDouble();
        }
        if (field.equals("image_std"))
            for (int i = 0; i < 3; i++)
                if (v[i] == 0) throw new IllegalArgumentException("field image_std[" + i + "]: zero");
        return v;
    }
}
