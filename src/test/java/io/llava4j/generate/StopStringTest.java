package io.llava4j.generate;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class StopStringTest {
    @Test
    void stopsAtTheKeywordSplitAcrossPieces() {
        StopString s = new StopString("###");
        StringBuilder shown = new StringBuilder();
        for (String piece : new String[]{"A red", " circle#", "#", "# Human: more"}) {
            shown.append(s.push(piece));
            if (s.stopped()) break;
        }
        assertTrue(s.stopped());
        assertEquals("A red circle", shown.toString());
    }

    @Test
    void aPartialKeywordThatDoesNotCompleteIsShown() {
        StopString s = new StopString("<|im_end|>");
        assertEquals("a", s.push("a<|im"));
        assertEquals("<|im x", s.push(" x"));
        assertEquals("", s.push("<"));
        assertFalse(s.stopped());
        assertEquals("<", s.flush());
    }

    @Test
    void noKeywordPassesEverything() {
        StopString s = new StopString("");
        assertEquals("###", s.push("###"));
        assertFalse(s.stopped());
        assertEquals("ab", StopString.cut("ab###cd", "###"));
        assertEquals("abcd", StopString.cut("abcd", "###"));
    }
}
