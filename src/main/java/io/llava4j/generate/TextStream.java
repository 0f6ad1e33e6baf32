package io.llava4j.generate;

import io.llava4j.data.LlavaTokenizer;

import java.util.ArrayList;
import java.util.List;

/**
 * Turns generated ids into text as they come: each call decodes all ids so far (special tokens skipped) and returns
 * what was not returned yet. Text that ends in an incomplete UTF-8 sequence (U+FFFD from byte-fallback pieces) is held
 * back until the sequence completes, as HF's TextStreamer does.
 */
public final class TextStream {
    private final LlavaTokenizer tok;
    private final List<Integer> ids = new ArrayList<>();
    private String emitted = "";

    public TextStream(LlavaTokenizer tok) {
        this.tok = tok;
    }

    /** Adds one id; returns the new printable text (possibly empty). */
    public String push(int id) {
        ids.add(id);
        String text = text();
        if (text.endsWith("\uFFFD")) return "";
        return delta(text);
    }

    /** Whatever is left (call after the last token). */
    public String flush() {
        return delta(text());
    }

    /** The full text so far. */
    public String text() {
        return tok.decodeGenerated(ids.stream().mapToInt(Integer::intValue).toArray(), true);
    }

    private String delta(String text) {
        int common = 0;
        while (common < Math.min(text.length(), emitted.length()) && text.charAt(common) == emitted.charAt(common)) common++;
        String d = text.substring(common);
        emitted = text;
        return d;
    }
}
