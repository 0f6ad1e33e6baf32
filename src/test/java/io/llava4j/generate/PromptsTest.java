package io.llava4j.generate;

import io.llava4j.data.Conversation;
import io.llava4j.data.Conversation.Template;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Prompts as LLaVA's conversation.py get_prompt builds them for run_llava and cli.py. */
class PromptsTest {
    @Test
    void runLlavaV1() {
        assertEquals(Conversation.SYSTEM_V1 + " USER: <image>\nWhat is this? ASSISTANT:",
                Prompts.runLlava(Template.VICUNA_V1, "What is this?", true));
        assertEquals(Conversation.SYSTEM_V1 + " USER: Compare <image> with that. ASSISTANT:",
                Prompts.runLlava(Template.VICUNA_V1, "Compare <image-placeholder> with that.", true));
        assertEquals(Conversation.SYSTEM_V1 + " USER: Hi ASSISTANT:", Prompts.runLlava(Template.VICUNA_V1, "Hi", false));
    }

    @Test
    void runLlavaPlain() {
        assertEquals("<image>\nWhat is this?\n", Prompts.runLlava(Template.PLAIN, "What is this?", true));
    }

    @Test
    void multiTurnAsCliBuildsIt() {
        Prompts p = new Prompts(Template.VICUNA_V1).user(Prompts.withImage("Q1"));
        assertEquals(Conversation.SYSTEM_V1 + " USER: <image>\nQ1 ASSISTANT:", p.prompt());
        p.answer("A1").user("Q2");
        assertEquals(Conversation.SYSTEM_V1 + " USER: <image>\nQ1 ASSISTANT: A1</s>USER: Q2 ASSISTANT:", p.prompt());
        assertEquals(2, p.turns());
        assertThrows(IllegalStateException.class, () -> p.user("Q3"));
        assertThrows(IllegalArgumentException.class, () -> new Prompts(Template.PLAIN).user("a").answer("b").user("c"));
    }
}
