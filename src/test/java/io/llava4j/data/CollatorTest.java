package io.llava4j.data;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class CollatorTest {

    @Test
    void rightPadsToTheLongest() {
        float[] px = {1f, 2f, 3f};
        LlavaDataset.Sample a = new LlavaDataset.Sample("a", new int[]{1, 1023, 5, 6}, new int[]{-100, -100, 5, 6}, px, null);
        LlavaDataset.Sample b = new LlavaDataset.Sample("b", new int[]{1, 7}, new int[]{-100, 7}, null, "w");
        Collator.Batch batch = new Collator(0).collate(List.of(a, b));
        assertEquals(2, batch.size());
        assertEquals(4, batch.length());
        assertArrayEquals(new long[]{1, 1023, 5, 6}, batch.inputIds()[0]);
        assertArrayEquals(new long[]{1, 7, 0, 0}, batch.inputIds()[1]);
        assertArrayEquals(new long[]{-100, -100, 5, 6}, batch.labels()[0]);
        assertArrayEquals(new long[]{-100, 7, -100, -100}, batch.labels()[1]);
        assertArrayEquals(new boolean[]{true, true, true, true}, batch.attentionMask()[0]);
        assertArrayEquals(new boolean[]{true, true, false, false}, batch.attentionMask()[1]);
        assertSame(px, batch.pixels()[0]);
        assertNull(batch.pixels()[1]);
        assertArrayEquals(new String[]{"a", "b"}, batch.ids());
        assertArrayEquals(new String[]{null, "w"}, batch.warnings());
    }

    @Test
    void padsWithTheGivenId() {
        LlavaDataset.Sample a = new LlavaDataset.Sample("a", new int[]{1, 2, 3}, new int[]{-100, 2, 3}, null, null);
        LlavaDataset.Sample b = new LlavaDataset.Sample("b", new int[]{1}, new int[]{-100}, null, null);
        Collator.Batch batch = new Collator(32000).collate(List.of(b, a));
        assertArrayEquals(new long[]{1, 32000, 32000}, batch.inputIds()[0]);
        assertArrayEquals(new long[]{-100, -100, -100}, batch.labels()[0]);
    }
}
