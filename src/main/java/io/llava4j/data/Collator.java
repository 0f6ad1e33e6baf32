package io.llava4j.data;

import java.util.Arrays;
import java.util.List;

/**
 * LLaVA's DataCollatorForSupervisedDataset without tensors: right-pads a list of samples to the longest one, input ids
 * with the pad id (unk for LLaVA's v1 models), labels with -100.
 *
 * <p>The attention mask marks each sample's real tokens. (LLaVA computes it as {@code input_ids != pad_id}, which also
 * hides a real unk token in the text; {@link LlavaDataset#get} has already dropped those, as LLaVA's
 * prepare_inputs_labels_for_multimodal does, so the two agree.) Pad with {@link LlavaDataset#collator()}'s id.
 */
public final class Collator {

    /**
     * A padded batch, rows in the order of the samples.
     *
     * @param pixels one CHW array per sample (AnyRes: its tiles, [T, C, H, W]), null for a text-only sample
     * @param imageSizes per sample its image's original (height, width) under AnyRes, else null
     */
    public record Batch(String[] ids, long[][] inputIds, long[][] labels, boolean[][] attentionMask, float[][] pixels,
                        String[] warnings, int[][] imageSizes) {
        public int size() {
            return inputIds.length;
        }

        /** Padded length (the longest sample). */
        public int length() {
            return inputIds.length == 0 ? 0 : inputIds[0].length;
        }
    }

    private final int padId;

    public Collator(int padId) {
        this.padId = padId;
    }

    public Batch collate(List<LlavaDataset.Sample> samples) {
        int n = samples.size();
        int len = 0;
        for (LlavaDataset.Sample s : samples) len = Math.max(len, s.inputIds().length);
        String[] ids = new String[n];
        long[][] input = new long[n][len];
        long[][] labels = new long[n][len];
        boolean[][] mask = new boolean[n][len];
        float[][] pixels = new float[n][];
        String[] warnings = new String[n];
        int[][] sizes = new int[n][];
        for (int b = 0; b < n; b++) {
            LlavaDataset.Sample s = samples.get(b);
            int l = s.inputIds().length;
            if (s.labels().length != l)
                throw new IllegalArgumentException("sample " + s.id() + ": " + l + " input ids but " + s.labels().length + " labels");
            Arrays.fill(input[b], padId);
            Arrays.fill(labels[b], Conversation.IGNORE_INDEX);
            for (int i = 0; i < l; i++) {
                input[b][i] = s.inputIds()[i];
                labels[b][i] = s.labels()[i];
                mask[b][i] = true;
            }
            ids[b] = s.id();
            pixels[b] = s.pixels();
            warnings[b] = s.warning();
            sizes[b] = s.imageSize();
        }
        return new Batch(ids, input, labels, mask, pixels, warnings, sizes);
    }
}
