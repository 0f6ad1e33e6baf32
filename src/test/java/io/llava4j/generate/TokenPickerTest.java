package io.llava4j.generate;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class TokenPickerTest {
    /** OpenAI's penalties: logit[j] -= count[j] * frequency + (count[j] > 0) * presence, over the tokens picked so far. */
    @Test
    void penaltiesLowerTokensAlreadyPicked() {
        TokenPicker plain = new TokenPicker(Sampling.greedy(8));
        assertEquals(0, plain.pick(new float[]{1f, 0.9f, 0f}));
        assertEquals(0, plain.pick(new float[]{1f, 0.9f, 0f}));
        TokenPicker presence = new TokenPicker(new Sampling(8, 0, 1, 0, 0.5, 0));
        assertEquals(0, presence.pick(new float[]{1f, 0.9f, 0f}));
        assertEquals(1, presence.pick(new float[]{1f, 0.9f, 0f})); // 1 - 0.5 < 0.9
        assertEquals(0, presence.pick(new float[]{1f, 0.9f, 0f})); // both penalised once: 0.5 > 0.4
        TokenPicker frequency = new TokenPicker(new Sampling(8, 0, 1, 0, 0, 0.06));
        int[] got = new int[4];
        for (int i = 0; i < 4; i++) got[i] = frequency.pick(new float[]{1f, 0.9f, 0f});
        assertArrayEquals(new int[]{0, 0, 1, 0}, got); // 1 - 0.12 < 0.9; then 0.88 > 0.9 - 0.06
        assertThrows(IllegalArgumentException.class, () -> new Sampling(8, 0, 1, 0, 2.5, 0));
    }

    @Test
    void severalStopStringsStopAtTheFirst() {
        StopString s = new StopString(List.of("END", "##"));
        assertEquals("ab", s.push("ab#"));
        assertEquals("#c", s.push("cE")); // the held "#" goes once "c" follows; "E" may start "END"
        assertFalse(s.stopped());
        assertEquals("", s.push("N"));
        assertEquals("", s.push("D and more"));
        assertTrue(s.stopped());
        assertEquals("x y", StopString.cut("x y## z END", List.of("END", "##")));
    }
}
