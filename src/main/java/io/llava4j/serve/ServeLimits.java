package io.llava4j.serve;

import io.llava4j.data.ImageLimits;

/**
 * What one server accepts. A request over a limit gets 400 with a JSON error naming it; over the queue, 429.
 *
 * @param queue                 requests that may wait while the decode batch is full; reading, parsing, image
 *                              decoding and tokenizing happen inside this admission, so at most
 *                              {@code maxBatch + queue} requests hold memory at once
 * @param timeoutSeconds        per request, from arrival (reading the body, decoding and waiting included) to its last token
 * @param maxRequestBytes       body size
 * @param maxImageBytes         decoded image size
 * @param maxImagePixels        width × height of the image (and of the square {@code pad} makes of it)
 * @param maxPromptTokens       prompt positions after the image rows are merged in
 * @param maxNewTokens          the most {@code max_tokens} a request may ask for (also the default)
 * @param maxPromptChars        characters of all messages' text together, checked before tokenizing
 * @param maxImageAspectRatio   long side / short side of the image, checked from its header
 * @param maxResizedImagePixels width × height of the image after the processor's resize, checked from its header
 * @param maxBatch              requests generating at once in one continuous decode batch; 1 = one at a time
 */
public record ServeLimits(int queue, double timeoutSeconds, long maxRequestBytes, long maxImageBytes, long maxImagePixels,
                          int maxPromptTokens, int maxNewTokens, int maxPromptChars, double maxImageAspectRatio,
                          long maxResizedImagePixels, int maxBatch) {
    public static final int DEFAULT_MAX_PROMPT_CHARS = 65_536;
    public static final int DEFAULT_MAX_BATCH = 8;

    public ServeLimits {
        if (queue < 0) throw new IllegalArgumentException("queue must be >= 0, got " + queue);
        if (!(timeoutSeconds > 0)) throw new IllegalArgumentException("timeout must be > 0 s, got " + timeoutSeconds);
        if (maxImageBytes < 1 || maxImagePixels < 1 || maxPromptTokens < 1 || maxNewTokens < 1 || maxRequestBytes < 1
                || maxPromptChars < 1 || maxResizedImagePixels < 1)
            throw new IllegalArgumentException("limits must be >= 1");
        if (maxBatch < 1) throw new IllegalArgumentException("max_batch must be >= 1, got " + maxBatch);
        imageLimits(maxImagePixels, maxResizedImagePixels, maxImageAspectRatio);
    }

    /** The first seven limits; the text and image-shape limits at their defaults; one request at a time (max batch 1). */
    public ServeLimits(int queue, double timeoutSeconds, long maxRequestBytes, long maxImageBytes, long maxImagePixels,
                       int maxPromptTokens, int maxNewTokens) {
        this(queue, timeoutSeconds, maxRequestBytes, maxImageBytes, maxImagePixels, maxPromptTokens, maxNewTokens,
                DEFAULT_MAX_PROMPT_CHARS, ImageLimits.DEFAULT.maxAspectRatio(), ImageLimits.DEFAULT.maxResizedPixels(), 1);
    }

    /**
     * A decode batch of 8, 4 waiting, 300 s, 20 MiB images of up to 40 Mpx (200:1, 32 Mpx resized), 2048 prompt
     * positions, 64 Ki characters, 1024 new tokens.
     */
    public static ServeLimits defaults() {
        long image = 20L << 20;
        return new ServeLimits(4, 300, image * 4 / 3 + (1 << 20), image, 40_000_000L, 2048, 1024).withMaxBatch(DEFAULT_MAX_BATCH);
    }

    public ServeLimits withMaxPromptChars(int chars) {
        return new ServeLimits(queue, timeoutSeconds, maxRequestBytes, maxImageBytes, maxImagePixels, maxPromptTokens, maxNewTokens,
                chars, maxImageAspectRatio, maxResizedImagePixels, maxBatch);
    }

    public ServeLimits withImageShape(double aspectRatio, long resizedPixels) {
        return new ServeLimits(queue, timeoutSeconds, maxRequestBytes, maxImageBytes, maxImagePixels, maxPromptTokens, maxNewTokens,
                maxPromptChars, aspectRatio, resizedPixels, maxBatch);
    }

    public ServeLimits withMaxBatch(int rows) {
        return new ServeLimits(queue, timeoutSeconds, maxRequestBytes, maxImageBytes, maxImagePixels, maxPromptTokens, maxNewTokens,
                maxPromptChars, maxImageAspectRatio, maxResizedImagePixels, rows);
    }

    /** The image limits the preprocessing checks from each image's header. */
    public ImageLimits imageLimits() {
        return imageLimits(maxImagePixels, maxResizedImagePixels, maxImageAspectRatio);
    }

    private static ImageLimits imageLimits(long pixels, long resized, double ratio) {
        return new ImageLimits(pixels, resized, ratio);
    }
}
