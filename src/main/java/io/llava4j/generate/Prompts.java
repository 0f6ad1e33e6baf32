package io.llava4j.generate;

import io.llava4j.data.Conversation;
import io.llava4j.data.Conversation.Template;

import java.util.ArrayList;
import java.util.List;

/**
 * Prompts as LLaVA builds them for inference ({@code llava/conversation.py}'s {@code get_prompt}, used by
 * {@code llava/eval/run_llava.py} and {@code llava/serve/cli.py}):
 * <ul>
 *   <li>vicuna_v1 (separator style TWO): {@code system + " "}, then {@code "USER: " + msg + " "} and
 *       {@code "ASSISTANT: " + msg + "</s>"} per message; the open assistant turn ends in {@code "ASSISTANT:"}.</li>
 *   <li>plain (separator style PLAIN): the user message + {@code "\n"}; the open assistant turn adds nothing. One turn
 *       only (LLaVA's plain template has no second separator).</li>
 * </ul>
 * The image goes in the first user message: run_llava replaces {@code <image-placeholder>} by {@code <image>} when the
 * query has one, else puts {@code "<image>\n"} in front ({@code mm_use_im_start_end} False, as LLaVA-1.5).
 */
public final class Prompts {
    /** run_llava's IMAGE_PLACEHOLDER. */
    public static final String IMAGE_PLACEHOLDER = "<image-placeholder>";

    private final Template template;
    private final String system;
    private final List<String[]> messages = new ArrayList<>(); // {role, message}; message null = open turn

    public Prompts(Template template) {
        this(template, Conversation.SYSTEM_V1);
    }

    /** With another system prompt than vicuna_v1's (ignored by plain, which has none). */
    public Prompts(Template template, String system) {
        this.template = template;
        this.system = system;
    }

    public Template template() {
        return template;
    }

    /** run_llava's query with the image placed: {@code <image-placeholder>} → {@code <image>}, else {@code "<image>\n"} first. */
    public static String withImage(String query) {
        return query.contains(IMAGE_PLACEHOLDER) ? query.replace(IMAGE_PLACEHOLDER, Conversation.IMAGE)
                : Conversation.IMAGE + "\n" + query;
    }

    /** The prompt run_llava builds for one query (the image placed as {@link #withImage} does when {@code image}). */
    public static String runLlava(Template template, String query, boolean image) {
        return new Prompts(template).user(image ? withImage(query) : query).prompt();
    }

    /** Appends a user turn and opens the assistant's. */
    public Prompts user(String message) {
        if (!messages.isEmpty() && messages.get(messages.size() - 1)[1] == null)
            throw new IllegalStateException("the assistant's turn is still open");
        if (template == Template.PLAIN && !messages.isEmpty())
            throw new IllegalArgumentException("the plain template holds one turn only; use v1 for a conversation");
        messages.add(new String[]{"USER", message});
        messages.add(new String[]{"ASSISTANT", null});
        return this;
    }

    /** Closes the open assistant turn with its answer. */
    public Prompts answer(String message) {
        if (messages.isEmpty() || messages.get(messages.size() - 1)[1] != null)
            throw new IllegalStateException("no open assistant turn");
        messages.get(messages.size() - 1)[1] = message;
        return this;
    }

    /** Number of user turns so far. */
    public int turns() {
        return messages.size() / 2;
    }

    /** LLaVA's get_prompt. */
    public String prompt() {
        StringBuilder p = new StringBuilder();
        if (template == Template.PLAIN) {
            for (int i = 0; i < messages.size(); i++) {
                String m = messages.get(i)[1];
                if (m != null) p.append(m).append(i % 2 == 0 ? "\n" : "");
            }
            return p.toString();
        }
        p.append(system).append(' ');
        for (int i = 0; i < messages.size(); i++) {
            String[] rm = messages.get(i);
            if (rm[1] != null) p.append(rm[0]).append(": ").append(rm[1]).append(i % 2 == 0 ? " " : "</s>");
            else p.append(rm[0]).append(':');
        }
        return p.toString();
    }
}
