package io.llava4j.generate;

import io.llava4j.data.Conversation;
import io.llava4j.data.Conversation.Template;

import java.util.List;

/**
 * Prompts as LLaVA builds them for inference ({@code llava/conversation.py}'s {@code get_prompt}, used by
 * {@code llava/eval/run_llava.py} and {@code llava/serve/cli.py}): {@code conv_templates[mode].copy()}, then
 * {@code append_message(roles[0], query)} and {@code append_message(roles[1], None)} per turn, the answer written into
 * the open turn. Every {@link Template} is supported, e.g.
 * <ul>
 *   <li>vicuna_v1 (SeparatorStyle.TWO): {@code system + " "}, then {@code "USER: q "} / {@code "ASSISTANT: a</s>"};
 *       the open turn ends in {@code "ASSISTANT:"}.</li>
 *   <li>v0 / llava_v0 (SINGLE): {@code system + "###"}, then {@code "Human: q###"} / {@code "Assistant: a###"}; v0
 *       starts with conv_vicuna_v0's example exchange.</li>
 *   <li>llava_llama_2 / llama_2 / mistral_instruct (LLAMA_2): {@code "[INST] <<SYS>>\n…\n<</SYS>>\n\nq [/INST] a </s>"},
 *       later turns after {@code sep} ({@code "<s>"}, or nothing for mistral_instruct).</li>
 *   <li>mpt / chatml_direct (MPT): {@code system + "<|im_end|>"}, then {@code "<|im_start|>user\nq<|im_end|>"} and
 *       {@code "<|im_start|>assistant\n"} for the open turn.</li>
 *   <li>plain (PLAIN): the user message + {@code "\n"}; one turn only (LLaVA's plain template has no sep2).</li>
 *   <li>qwen_1_5 / qwen_2 (LLaVA-NeXT's conv_qwen, CHATML): {@code <|im_start|>system\nYou are a helpful assistant.<|im_end|>\n},
 *       then {@code <|im_start|>user\nq<|im_end|>\n} / {@code <|im_start|>assistant\na<|im_end|>\n}; the open turn is
 *       {@code <|im_start|>assistant\n}; stop {@code <|im_end|>}.</li>
 *   <li>qwen2_base / qwen2_instruct (TinyLLaVA, TWO): vicuna_v1's text with {@code <|endoftext|>} / {@code <|im_end|>}
 *       after each answer, which is also the stop string.</li>
 * </ul>
 * The image goes in the first user message: run_llava replaces {@code <image-placeholder>} by {@code <image>} when the
 * query has one, else puts {@code "<image>\n"} in front ({@code mm_use_im_start_end} False, as LLaVA-1.5).
 * {@link #stop()} is the string at which cli.py stops (its KeywordsStoppingCriteria).
 */
public final class Prompts {
    /** run_llava's IMAGE_PLACEHOLDER. */
    public static final String IMAGE_PLACEHOLDER = "<image-placeholder>";

    private final Template template;
    private final String system;
    private final List<String[]> messages; // {role, message}; message null = open turn
    private final int initial;             // template's own leading messages (v0's example exchange)

    public Prompts(Template template) {
        this(template, template.system());
    }

    /** With another system prompt than the template's (LLaVA's {@code conv.system = ...}; plain has none). */
    public Prompts(Template template, String system) {
        this.template = template;
        this.system = system;
        this.messages = template.initialMessages();
        this.initial = messages.size();
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
        if (messages.size() > initial && messages.get(messages.size() - 1)[1] == null)
            throw new IllegalStateException("the assistant's turn is still open");
        if (template == Template.PLAIN && messages.size() > initial)
            throw new IllegalArgumentException("the plain template holds one turn only; use v1 for a conversation");
        String[] roles = template.roles();
        messages.add(new String[]{roles[0], message});
        messages.add(new String[]{roles[1], null});
        return this;
    }

    /** Closes the open assistant turn with its answer. */
    public Prompts answer(String message) {
        if (messages.size() == initial || messages.get(messages.size() - 1)[1] != null)
            throw new IllegalStateException("no open assistant turn");
        messages.get(messages.size() - 1)[1] = message;
        return this;
    }

    /** Number of user turns so far. */
    public int turns() {
        return (messages.size() - initial) / 2;
    }

    /** LLaVA's get_prompt. */
    public String prompt() {
        return template.prompt(system, messages);
    }

    /** Where LLaVA's cli.py stops generating: the template's {@code sep} ({@code sep2} for SeparatorStyle.TWO). */
    public String stop() {
        return template.stop();
    }
}
