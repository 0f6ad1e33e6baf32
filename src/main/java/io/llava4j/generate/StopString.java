package io.llava4j.generate;

/**
 * LLaVA cli.py's keyword stop for streamed text: generation ends once the text holds the template's stop string
 * ({@code "###"} for v0, {@code "<|im_end|>"} for mpt). Text is passed on as it comes, except a tail that could be the
 * start of the stop string, which is held back until it is known not to be; the stop string and what follows it are
 * never passed on. A stop string the tokenizer decodes as a special token ({@code </s>}) is left to the stop token.
 */
public final class StopString {
    private final String stop;
    private final StringBuilder held = new StringBuilder();
    private boolean stopped;

    /** {@code stop}: the keyword; null or empty = never stops. */
    public StopString(String stop) {
        this.stop = stop == null ? "" : stop;
    }

    /** Adds decoded text; returns what can be shown now. */
    public String push(String text) {
        if (stopped) return "";
        held.append(text);
        if (stop.isEmpty()) return drain(held.length());
        int at = held.indexOf(stop);
        if (at >= 0) {
            stopped = true;
            String out = held.substring(0, at);
            held.setLength(0);
            return out;
        }
        return drain(held.length() - partialTail());
    }

    /** True once the stop string appeared: the caller ends generation. */
    public boolean stopped() {
        return stopped;
    }

    /** Whatever is held back (call when generation ended for another reason). */
    public String flush() {
        return drain(held.length());
    }

    /** The text with the stop string and all after it cut off (for a whole answer). */
    public static String cut(String text, String stop) {
        if (stop == null || stop.isEmpty()) return text;
        int at = text.indexOf(stop);
        return at < 0 ? text : text.substring(0, at);
    }

    /** Length of the longest suffix of the held text that is a proper prefix of the stop string. */
    private int partialTail() {
        for (int n = Math.min(stop.length() - 1, held.length()); n > 0; n--)
            if (held.substring(held.length() - n).equals(stop.substring(0, n))) return n;
        return 0;
    }

    private String drain(int n) {
        String out = held.substring(0, n);
        held.delete(0, n);
        return out;
    }
}
