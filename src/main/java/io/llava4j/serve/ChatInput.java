package io.llava4j.serve;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.llava4j.data.Conversation.Template;
import io.llava4j.data.ImageTooLargeException;
import io.llava4j.generate.Assistant;
import io.llava4j.generate.Prompts;
import io.llava4j.generate.Sampling;

import javax.imageio.ImageIO;
import javax.imageio.ImageReader;
import javax.imageio.stream.ImageInputStream;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Iterator;
import java.util.List;

/**
 * A {@code /v1/chat/completions} body checked and turned into model input: the prompt of its messages in the server's
 * conversation template (vicuna_v1 for LLaVA-1.5, qwen_1_5 for OneVision; an optional leading system message replaces
 * the template's system prompt; user and assistant alternate, ending with user), its one image (an {@code image_url}
 * part holding a {@code data:} URI; it goes first in its message, as LLaVA puts it; AnyRes tiles for an AnyRes model),
 * token ids and sampling. Every check throws an {@link ApiError} naming what is wrong. Nothing here reads a file or
 * the network: images only come inline.
 *
 * <p>OpenAI fields: {@code stop} (a string or up to 4), {@code presence_penalty} / {@code frequency_penalty},
 * {@code seed} (a random one when absent), {@code stream_options.include_usage}; refused by name: {@code n} other than
 * 1, {@code logprobs} / {@code top_logprobs}, {@code response_format} other than text, {@code tools} and functions.
 * Work is bounded before it is done: the text's length is checked before tokenizing, the image's size from its header
 * before decoding ({@link ServeLimits#imageLimits()}), and {@code checkpoint} (the request's deadline) runs between
 * the steps.
 */
record ChatInput(String model, boolean stream, boolean ignoreEos, int[] promptIds, long promptPositions, Assistant.Image image,
                 Sampling sampling, List<String> stop, boolean includeUsage) {
    private static final int MAX_STOPS = 4;
    private static final ObjectMapper JSON = new ObjectMapper();
    /** How ChatML templates (qwen_1_5, mpt, chatml_direct) open their system prompt. */
    private static final String CHATML_SYSTEM = "<|im_start|>system\n";

    /**
     * @param served     the model id requests must name
     * @param checkpoint run between the expensive steps (throws to stop: the request's deadline)
     */
    static ChatInput parse(byte[] body, Assistant a, String served, Template template, ServeLimits limits, Runnable checkpoint) {
        JsonNode root;
        try {
            root = JSON.readTree(body);
        } catch (JsonProcessingException e) {
            throw ApiError.invalid("invalid_json", null, "the request body is not valid JSON: " + e.getOriginalMessage());
        } catch (IOException e) {
            throw ApiError.invalid("invalid_json", null, "the request body could not be read: " + e.getMessage());
        }
        if (root == null || !root.isObject()) throw ApiError.invalid("invalid_json", null, "the request body must be a JSON object");
        String model = root.path("model").asText(served);
        if (!root.path("model").isMissingNode() && !root.get("model").isTextual())
            throw ApiError.invalid("invalid_type", "model", "model must be a string");
        if (!model.equals(served))
            throw new ApiError(404, "invalid_request_error", "model_not_found", "model",
                    "The model '" + model + "' does not exist; this server serves '" + served + "'");
        refuseUnsupported(root);
        boolean stream = bool(root, "stream", false);
        boolean ignoreEos = bool(root, "ignore_eos", false); // vLLM's extension: generate max_tokens whatever comes
        int n = integer(root, "n", 1);
        if (n != 1) throw ApiError.invalid("unsupported_value", "n", "only n = 1 is supported");
        int maxTokens = integer(root, "max_completion_tokens", integer(root, "max_tokens", limits.maxNewTokens()));
        if (maxTokens < 1 || maxTokens > limits.maxNewTokens())
            throw ApiError.invalid("max_tokens_limit", "max_tokens", "max_tokens must be between 1 and the server's limit of "
                    + limits.maxNewTokens() + ", got " + maxTokens);
        double temperature = number(root, "temperature", 0), topP = number(root, "top_p", 1);
        if (temperature < 0 || temperature > 2) throw ApiError.invalid("invalid_value", "temperature", "temperature must be in [0, 2]");
        if (!(topP > 0 && topP <= 1)) throw ApiError.invalid("invalid_value", "top_p", "top_p must be in (0, 1]");
        double presence = number(root, "presence_penalty", 0), frequency = number(root, "frequency_penalty", 0);
        if (!(Math.abs(presence) <= 2)) throw ApiError.invalid("invalid_value", "presence_penalty", "presence_penalty must be in [-2, 2]");
        if (!(Math.abs(frequency) <= 2)) throw ApiError.invalid("invalid_value", "frequency_penalty", "frequency_penalty must be in [-2, 2]");
        JsonNode seedNode = root.get("seed");
        if (seedNode != null && !seedNode.isNull() && !(seedNode.isIntegralNumber() && seedNode.canConvertToLong()))
            throw ApiError.invalid("invalid_type", "seed", "seed must be an integer");
        long seed = seedNode != null && !seedNode.isNull() ? seedNode.asLong() : SEEDS.nextLong(); // OpenAI: no seed, no repeat
        List<String> stop = stops(root);
        boolean includeUsage = false;
        JsonNode so = root.get("stream_options");
        if (so != null && !so.isNull()) {
            if (!so.isObject()) throw ApiError.invalid("invalid_type", "stream_options", "stream_options must be an object");
            includeUsage = bool(so, "include_usage", false);
        }

        JsonNode messages = root.path("messages");
        if (!messages.isArray() || messages.isEmpty())
            throw ApiError.invalid("invalid_messages", "messages", "messages must be a non-empty array");
        int first = 0;
        String system = template.system();
        long chars = 0;
        if ("system".equals(messages.get(0).path("role").asText())) {
            String given = text(messages.get(0), 0, null).text;
            chars += given.length();
            system = template.system().startsWith(CHATML_SYSTEM) ? CHATML_SYSTEM + given : given;
            first = 1;
        }
        Prompts prompts = new Prompts(template, system);
        byte[] image = null;
        for (int i = first; i < messages.size(); i++) {
            JsonNode m = messages.get(i);
            String role = m.path("role").asText();
            String want = (i - first) % 2 == 0 ? "user" : "assistant";
            if (!role.equals(want))
                throw ApiError.invalid("invalid_messages", "messages[" + i + "].role", "messages[" + i + "] has role '" + role
                        + "' where '" + want + "' is expected (after an optional system message, user and assistant alternate)");
            Content c = text(m, i, role.equals("user") ? limits : null);
            chars += c.text.length();
            if (chars > limits.maxPromptChars())
                throw ApiError.invalid("prompt_too_long", "messages", "the messages' text is over " + chars + " characters; the server's limit"
                        + " (max_prompt_chars) is " + limits.maxPromptChars());
            if (c.image != null) {
                if (image != null)
                    throw ApiError.invalid("too_many_images", "messages[" + i + "].content", "only one image per conversation is supported");
                image = c.image;
            }
            if (role.equals("user")) prompts.user(c.image != null ? Prompts.withImage(c.text) : c.text);
            else prompts.answer(c.text);
        }
        if ((messages.size() - first) % 2 == 0)
            throw ApiError.invalid("invalid_messages", "messages", "the last message must be the user's");
        if (image == null)
            throw ApiError.invalid("image_required", "messages", "no image: one user message needs an image_url part with a data: URI");

        checkpoint.run();
        Assistant.Image pixels = pixels(a, image, limits);
        checkpoint.run();
        int[] ids = a.encode(prompts.prompt(), true);
        checkpoint.run();
        long positions = ids.length - 1 + pixels.tokens();
        if (positions > limits.maxPromptTokens())
            throw ApiError.invalid("context_length_exceeded", "messages", "the prompt is " + positions
                    + " tokens (image rows included); the server's limit (max_prompt_tokens) is " + limits.maxPromptTokens());
        Integer context = a.model().config.text().maxPositionEmbeddings();
        if (context != null && positions + maxTokens > context)
            throw ApiError.invalid("context_length_exceeded", "max_tokens", "the prompt (" + positions + " tokens, image rows included) and"
                    + " max_tokens (" + maxTokens + ") are over the model's context length (max_position_embeddings) of " + context);
        return new ChatInput(model, stream, ignoreEos, ids, positions, pixels,
                new Sampling(maxTokens, temperature, topP, seed, presence, frequency), stop, includeUsage);
    }

    private static final java.security.SecureRandom SEEDS = new java.security.SecureRandom();

    /** OpenAI's fields this server does not implement, refused by name rather than ignored. */
    private static void refuseUnsupported(JsonNode root) {
        if (root.path("logprobs").asBoolean(false))
            throw unsupported("logprobs", "logprobs are not supported by this server");
        if (present(root, "top_logprobs") && !(root.get("top_logprobs").isNumber() && root.get("top_logprobs").asInt() == 0))
            throw unsupported("top_logprobs", "top_logprobs are not supported by this server");
        JsonNode rf = root.get("response_format");
        if (present(root, "response_format") && !"text".equals(rf.path("type").asText()))
            throw unsupported("response_format", "response_format '" + rf.path("type").asText(rf.toString())
                    + "' is not supported; only {\"type\": \"text\"}");
        for (String f : new String[]{"tools", "tool_choice", "functions", "function_call"})
            if (present(root, f) && !(root.get(f).isArray() && root.get(f).isEmpty()) && !"none".equals(root.get(f).asText()))
                throw unsupported(f, f + " (tool and function calling) is not supported by this server");
    }

    private static boolean present(JsonNode root, String field) {
        return root.has(field) && !root.get(field).isNull();
    }

    private static ApiError unsupported(String param, String message) {
        return ApiError.invalid("unsupported_parameter", param, message);
    }

    /** {@code stop}: null, a string, or an array of up to 4 non-empty strings. */
    private static List<String> stops(JsonNode root) {
        JsonNode v = root.get("stop");
        if (v == null || v.isNull()) return List.of();
        List<String> out = new ArrayList<>();
        if (v.isTextual()) out.add(v.asText());
        else if (v.isArray()) for (JsonNode s : v) {
            if (!s.isTextual()) throw ApiError.invalid("invalid_type", "stop", "stop must be a string or an array of strings");
            out.add(s.asText());
        }
        else throw ApiError.invalid("invalid_type", "stop", "stop must be a string or an array of strings");
        if (out.size() > MAX_STOPS) throw ApiError.invalid("invalid_value", "stop", "stop holds at most " + MAX_STOPS + " strings");
        if (out.stream().anyMatch(String::isEmpty)) throw ApiError.invalid("invalid_value", "stop", "stop strings must not be empty");
        return List.copyOf(out);
    }

    private record Content(String text, byte[] image) {}

    /** A message's text (parts joined by newlines) and its image, if any. */
    private static Content text(JsonNode m, int i, ServeLimits imagesAllowed) {
        JsonNode c = m.path("content");
        String where = "messages[" + i + "].content";
        if (c.isTextual()) return new Content(c.asText(), null);
        if (!c.isArray()) throw ApiError.invalid("invalid_messages", where, where + " must be a string or an array of parts");
        List<String> texts = new ArrayList<>();
        byte[] image = null;
        for (int k = 0; k < c.size(); k++) {
            JsonNode part = c.get(k);
            String type = part.path("type").asText();
            if (type.equals("text")) {
                texts.add(part.path("text").asText());
            } else if (type.equals("image_url")) {
                if (imagesAllowed == null) throw ApiError.invalid("invalid_messages", where, "images are only accepted in user messages");
                if (image != null) throw ApiError.invalid("too_many_images", where, "only one image per conversation is supported");
                JsonNode u = part.path("image_url");
                image = dataUri(u.isTextual() ? u.asText() : u.path("url").asText(), where + "[" + k + "].image_url.url", imagesAllowed);
            } else {
                throw ApiError.invalid("invalid_messages", where + "[" + k + "].type", "unknown content part type '" + type + "' (text or image_url)");
            }
        }
        return new Content(String.join("\n", texts), image);
    }

    /** The bytes of a base64 {@code data:} URI; other URLs are refused (no network or file access from a request). */
    private static byte[] dataUri(String url, String param, ServeLimits limits) {
        if (!url.startsWith("data:"))
            throw ApiError.invalid("invalid_image_url", param, "image_url must be a data: URI (data:image/png;base64,...); "
                    + "this server fetches no URLs and reads no files");
        int comma = url.indexOf(',');
        if (comma < 0 || !url.substring(0, comma).endsWith(";base64"))
            throw ApiError.invalid("invalid_image_url", param, "image_url must be a base64 data: URI (data:<type>;base64,<data>)");
        String b64 = url.substring(comma + 1);
        long decoded = (long) b64.length() * 3 / 4;
        if (decoded > limits.maxImageBytes() + 3)
            throw ApiError.invalid("image_too_large", param, "the image is about " + decoded + " bytes; the server's limit (max_image_bytes) is "
                    + limits.maxImageBytes());
        byte[] bytes;
        try {
            bytes = Base64.getMimeDecoder().decode(b64);
        } catch (IllegalArgumentException e) {
            throw ApiError.invalid("invalid_image", param, "the data: URI is not valid base64: " + e.getMessage());
        }
        if (bytes.length > limits.maxImageBytes())
            throw ApiError.invalid("image_too_large", param, "the image is " + bytes.length + " bytes; the server's limit (max_image_bytes) is "
                    + limits.maxImageBytes());
        return bytes;
    }

    /** Checks the image's size from its header before decoding it, then preprocesses it. */
    private static Assistant.Image pixels(Assistant a, byte[] image, ServeLimits limits) {
        // the server's byte and pixel limits first (their own codes), then the preprocessing's shape limits in a.image
        long w, h;
        try (ImageInputStream in = ImageIO.createImageInputStream(new ByteArrayInputStream(image))) {
            Iterator<ImageReader> readers = in == null ? null : ImageIO.getImageReaders(in);
            if (readers == null || !readers.hasNext())
                throw ApiError.invalid("invalid_image", "messages", "the image is not in a format this server decodes (PNG, JPEG, BMP, GIF)");
            ImageReader r = readers.next();
            try {
                r.setInput(in);
                w = r.getWidth(0);
                h = r.getHeight(0);
            } finally {
                r.dispose();
            }
        } catch (IOException | RuntimeException e) {
            if (e instanceof ApiError ae) throw ae;
            throw ApiError.invalid("invalid_image", "messages", "the image cannot be decoded: " + e.getMessage());
        }
        if (w * h > limits.maxImagePixels())
            throw ApiError.invalid("image_too_many_pixels", "messages", "the image is " + w + "x" + h + " = " + w * h
                    + " pixels; the server's limit (max_image_pixels) is " + limits.maxImagePixels());
        try {
            return a.image(image, "the image", limits.imageLimits());
        } catch (ImageTooLargeException e) {
            String code = switch (e.kind) {
                case PIXELS -> "image_too_many_pixels";
                case ASPECT_RATIO -> "image_aspect_ratio_too_large";
                case RESIZED_PIXELS -> "image_too_large_after_resize";
            };
            throw ApiError.invalid(code, "messages", e.getMessage());
        } catch (RuntimeException e) {
            throw ApiError.invalid("invalid_image", "messages", "the image cannot be decoded: " + e.getMessage());
        }
    }

    private static boolean bool(JsonNode root, String field, boolean dflt) {
        JsonNode v = root.get(field);
        if (v == null || v.isNull()) return dflt;
        if (!v.isBoolean()) throw ApiError.invalid("invalid_type", field, field + " must be true or false");
        return v.asBoolean();
    }

    private static int integer(JsonNode root, String field, int dflt) {
        JsonNode v = root.get(field);
        if (v == null || v.isNull()) return dflt;
        if (!v.isIntegralNumber() || !v.canConvertToInt()) throw ApiError.invalid("invalid_type", field, field + " must be an integer");
        return v.asInt();
    }

    private static double number(JsonNode root, String field, double dflt) {
        JsonNode v = root.get(field);
        if (v == null || v.isNull()) return dflt;
        if (!v.isNumber()) throw ApiError.invalid("invalid_type", field, field + " must be a number");
        return v.asDouble();
    }
}
