package io.llava4j.generate;

import java.util.List;

/**
 * LLaVA cli.py's keyword stop for streamed text: generation ends once the text holds the template's stop string
 * ({@code "###"} for v0, {@code "<|im_end|>"} for mpt). Text is passed on as it comes, except a tail that could be the
 * start of the stop string, which is held back until it is known not to be; the stop string and what follows it are
 * never passed on. A stop string the tokenizer decodes as a special token ({@code </s>}) is left to the stop token.
 * Several stop strings (OpenAI's {@code stop}) stop at whichever appears first.
 */
public final class StopString {
    private final List<String> stops;
    private final StringBuilder held = new StringBuilder();
    private boolean stopped;

    /** {@code stop}: the keyword; null or empty = never stops. */
    public StopString(String stop) {
        this(stop == null ? List.of() : List.of(stop));
    }

    /** Stops at the first of {@code stops} to appear (empty strings are ignored). */
    public StopString(List<String> stops) {
        this.stops = stops.stream().filter(x -> !x.isEmpty()).toList();
    }

    /** Adds decoded text; returns what can be shown now. */
    public String push(String text) {
        if (stopped) return "";
        held.append(text);
        if (stops.isEmpty()) return drain(held.length());
        int at = first(held, stops);
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
        return cut(text, List.of(stop));
    }

    /** The text cut at the first of {@code stops} to appear. */
    public static String cut(String text, List<String> stops) {
        int at = first(text, stops.stream().filter(x -> !x.isEmpty()).toList());
        return at < 0 ? text : text.substring(0, at);
    }

    private static int first(CharSequence text, List<String> stops) {
        String t = text.toString();
        int best = -1;
        for (String stop : stops) {
            int at = t.indexOf(stop);
            if (at >= 0 && (best < 0 || at < best)) best = at;
        }
        return best;
    }

    /** Length of the longest suffix of the held text that is a proper prefix of a stop string. */
    private int partialTail() {
        int longest = 0;
        for (String stop : stops)
            for (int n = Math.min(stop.length() - 1, held.length()); n > longest; n--)
                if (held.substring(held.length() - n).equals(stop.substring(0, n))) {
                    longest = n;
                    break;
                }
        return longest;
    }

    private String drain(int n) {
        String out = held.substring(0, n);
        held.delete(0, n);
        return out;
    }
}
