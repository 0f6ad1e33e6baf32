package io.llava4j.serve;

/**
 * What one server accepts. A request over a limit gets 400 with a JSON error naming it; over the queue, 429.
 *
 * @param queue            requests that may wait while one runs (one model, one request at a time)
 * @param timeoutSeconds   per request, from arrival (waiting included) to its last token
 * @param maxRequestBytes  body size
 * @param maxImageBytes    decoded image size
 * @param maxImagePixels   width × height of the image
 * @param maxPromptTokens  prompt positions after the image rows are merged in
 * @param maxNewTokens     the most {@code max_tokens} a request may ask for (also the default)
 */
public record ServeLimits(int queue, double timeoutSeconds, long maxRequestBytes, long maxImageBytes, long maxImagePixels,
                          int maxPromptTokens, int maxNewTokens) {
    public ServeLimits {
        if (queue < 0) throw new IllegalArgumentException("queue must be >= 0, got " + queue);
        if (!(timeoutSeconds > 0)) throw new IllegalArgumentException("timeout must be > 0 s, got " + timeoutSeconds);
        if (maxImageBytes < 1 || maxImagePixels < 1 || maxPromptTokens < 1 || maxNewTokens < 1 || maxRequestBytes < 1)
            throw new IllegalArgumentException("limits must be >= 1");
    }

    /** 4 waiting, 300 s, 20 MiB images of up to 40 Mpx, 2048 prompt positions, 1024 new tokens. */
    public static ServeLimits defaults() {
        long image = 20L << 20;
        return new ServeLimits(4, 300, image * 4 / 3 + (1 << 20), image, 40_000_000L, 2048, 1024);
    }
}
