package io.llava4j.data;

import java.util.List;
import java.util.Locale;

/**
 * One record of a LLaVA training file ({@code {id, image?, conversations: [{from, value}, ...]}}), validated by
 * {@link LlavaJson}: at most one image; roles and values are judged by the template ({@link Conversation}).
 *
 * @param source        the file it was read from (for error messages)
 * @param index         its position in that file, from 0
 * @param id            the record's {@code id} (a number is kept as its text), or null when it has none
 * @param image         the image file relative to the image folder, or null for a text-only record
 * @param conversations the turns, in order
 */
public record LlavaRecord(String source, int index, String id, String image, List<Turn> conversations) {

    /** Who speaks a turn: LLaVA's {@code human} (USER) or {@code gpt} (ASSISTANT). */
    public enum Role { HUMAN, GPT }

    /**
     * One turn. {@code from} is as written in the file; {@code human}/{@code user} mean {@link Role#HUMAN},
     * {@code gpt}/{@code assistant} mean {@link Role#GPT} (case-insensitive).
     */
    public record Turn(String from, String value) {
        public Role role() {
            Role r = roleOf(from);
            if (r == null) throw new IllegalStateException("unknown role " + from);
            return r;
        }
    }

    public LlavaRecord {
        conversations = List.copyOf(conversations);
    }

    /** The role a {@code from} value names, or null if it names none. */
    public static Role roleOf(String from) {
        if (from == null) return null;
        switch (from.toLowerCase(Locale.ROOT)) {
            case "human": case "user": return Role.HUMAN;
            case "gpt": case "assistant": return Role.GPT;
            default: return null;
        }
    }

    public boolean hasImage() {
        return image != null;
    }

    /** "file: record #3 (id "abc")", the prefix of every error about this record. */
    public String describe() {
        return source + ": record #" + index + (id != null ? " (id \"" + id + "\")" : "");
    }
}
