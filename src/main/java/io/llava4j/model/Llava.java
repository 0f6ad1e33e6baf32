package io.llava4j.model;

import io.llava4j.config.LlavaConfig;
import io.llava4j.engine.Tensors;
import org.bytedeco.pytorch.Module;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

import java.util.ArrayList;
import java.util.List;

/**
 * LLaVA: vision tower (CLIP or SigLIP) → projector → LLM (LLaMA, Mistral, Qwen2), with each image token of the input
 * replaced by that image's projected feature rows. With AnyRes (LLaVA-NeXT, OneVision; {@link LlavaConfig#anyres()}) an
 * image is a base tile plus a grid of tiles, and its rows are packed by {@link AnyResPacking} with {@code image_newline}:
 * the number of rows then depends on the image's size, which travels with the pixels ({@code imageSizes}).
 * Parameter names are transformers' {@code LlavaForConditionalGeneration} / {@code LlavaNextForConditionalGeneration}
 * names (llava-hf layout): {@code vision_tower.vision_model...}, {@code multi_modal_projector.linear_k...},
 * {@code image_newline}, {@code language_model.model...}, {@code language_model.lm_head.weight}.
 */
public class Llava extends Module {
    public static final long IGNORE_INDEX = -100;

    public final LlavaConfig config;
    public final VisionTower visionTower;
    public final Projector projector;
    public final Llama languageModel;
    /** [text_h] the row closing each grid row of an AnyRes image; null without AnyRes. */
    public final Tensor imageNewline;
    /** The AnyRes layout, derived once from the config (null without AnyRes). */
    private final io.llava4j.data.AnyRes.Spec anyResSpec;
    /**
     * The file tensor (memory-mapped) each parameter was loaded from, by llava-hf name; an entry is dropped when its
     * parameter is overwritten from elsewhere. Frozen parameters are saved from here: bit-identical, in the file's own
     * dtype, with no copy in memory.
     */
    public final java.util.Map<String, io.llava4j.io.HostTensor> loadedFrom = new java.util.HashMap<>();
    /**
     * The file mappings that parameters loaded in place ({@link Checkpoints#loadForInference}) read straight from: kept
     * here, never dropped, so that no mapping is unmapped while a parameter still points into it.
     */
    public final java.util.List<java.nio.ByteBuffer> mappedInPlace = new java.util.ArrayList<>();
    /** The LLM's linear weights held quantized ({@code --bits}, {@code --load_4bit/8bit}); null when none are. */
    public QuantizedLlm quantized;

    public Llava(LlavaConfig c) {
        config = c;
        visionTower = register_module("vision_tower",
                c.vision().isSiglip() ? new SiglipVisionTower(c.vision()) : new ClipVisionTower(c.vision()));
        projector = register_module("multi_modal_projector",
                new Projector(c.projectorDepth(), c.vision().hiddenSize(), c.text().hiddenSize(), c.projectorAct()));
        imageNewline = c.anyres() == null ? null : io.llava4j.nn.Params.register(this, "image_newline", torch.empty(c.text().hiddenSize()));
        anyResSpec = io.llava4j.data.AnyRes.spec(c);
        languageModel = register_module("language_model", new Llama(c.text()));
    }

    /** Logits over the merged sequence and the labels expanded to it (-100 at image rows and padding). */
    public record Output(Tensor logits /* [B, L, V] */, Tensor labels /* [B, L] int64 */, int[] lengths) {}

    /** [N, C, H, W] → [N, F, text_h]: the selected vision hidden state (CLS dropped for "default"), projected. */
    public Tensor imageFeatures(Tensor pixels) {
        return projector.forward(towerFeatures(pixels));
    }

    /**
     * Each image's rows for the LLM, in order: [F, text_h] per image without AnyRes; with AnyRes, image i takes the next
     * 1 + rows·cols tiles (base first, then the grid row-major, as the processor makes them) and is packed to
     * [tokens_i, text_h] by {@link AnyResPacking}.
     *
     * @param projected  [tiles, F, text_h] the projector's output for every tile of the batch
     * @param imageSizes per image its original (height, width); required with AnyRes, ignored otherwise
     */
    public List<Tensor> perImage(Tensor projected, int[][] imageSizes) {
        List<Tensor> out = new ArrayList<>();
        io.llava4j.data.AnyRes.Spec spec = anyResSpec;
        if (spec == null) {
            for (long i = 0; i < projected.size(0); i++) out.add(projected.get(i)); // [F, h]
            return out;
        }
        if (imageSizes == null)
            throw new IllegalArgumentException("an AnyRes model needs each image's size (image_sizes) beside its tiles");
        int offset = 0;
        for (int[] hw : imageSizes) {
            io.llava4j.data.AnyRes.Grid grid = io.llava4j.data.AnyRes.grid(hw[0], hw[1], spec);
            int tiles = 1 + grid.tiles();
            if (offset + tiles > projected.size(0))
                throw new IllegalArgumentException("image of size " + hw[0] + "x" + hw[1] + " needs " + tiles + " tiles; the batch has "
                        + (projected.size(0) - offset) + " left");
            Tensor f = projected.narrow(0, offset, tiles); // [1 + rows·cols, S·S, h]
            out.add(AnyResPacking.pack(f, grid.rows(), grid.cols(), hw[0], hw[1], imageNewline, spec.maxTiles(), spec.rounding()));
            offset += tiles;
        }
        if (offset != projected.size(0))
            throw new IllegalArgumentException("the batch has " + projected.size(0) + " tiles but its images' sizes account for " + offset);
        return out;
    }

    /**
     * A fresh {@code image_newline}, as LLaVA-NeXT makes it when it builds an AnyRes model on a plain LLM: normal values
     * times 1/√hidden.
     */
    public void initImageNewline() {
        try (org.bytedeco.pytorch.NoGradGuard g = new org.bytedeco.pytorch.NoGradGuard()) {
            imageNewline.normal_(0.0, 1.0 / Math.sqrt(imageNewline.size(0)), null);
        }
    }

    /** Rows image {@code (height, width)} becomes in the LLM's input: {@link LlavaConfig#imageFeatureTokens()} without AnyRes. */
    public int imageTokens(int height, int width) {
        if (anyResSpec == null) return config.imageFeatureTokens();
        return io.llava4j.data.AnyRes.numImageTokens(height, width, anyResSpec);
    }

    /**
     * [N, C, H, W] → [N, F, vision_h]: the selected vision hidden state, the projector's input. {@code default} drops the
     * first row: CLIP's class token, or for SigLIP (no class token) the top-left patch, as TinyLLaVA does.
     */
    public Tensor towerFeatures(Tensor pixels) {
        Tensor f = visionTower.features(pixels, config.featureLayerIndex()); // [N, T, vision_h]
        if ("default".equals(config.visionFeatureSelectStrategy())) f = f.narrow(1, 1, f.size(1) - 1); // [N, T - 1, vision_h]
        return f.contiguous(); // the projector's GEMM sees the same layout as for features read from a cache: same bits
    }

    /**
     * Runs the model on a right-padded batch.
     *
     * @param pixels   [N, C, H, W] for the N images of the batch in order (null when no sample has an image)
     * @param inputIds per sample, token ids with one {@code image_token_index} per image (unpadded or right-padded)
     * @param labels   per sample, same length as its ids (-100 = not supervised); null for inference
     */
    public Output forward(Tensor pixels, long[][] inputIds, long[][] labels) {
        return forward(pixels, inputIds, labels, null, 0);
    }

    /**
     * As {@link #forward(Tensor, long[][], long[][])} for a padded batch, as LLaVA's model takes it: positions whose
     * {@code attentionMask} is false (padding; null = none) are dropped before merging, and each merged sequence is cut
     * to {@code maxLength} positions (LLaVA's {@code tokenizer_model_max_length}: image rows count too; 0 = no limit).
     */
    public Output forward(Tensor pixels, long[][] inputIds, long[][] labels, boolean[][] attentionMask, int maxLength) {
        return forward(pixels, null, inputIds, labels, attentionMask, maxLength);
    }

    /** As {@link #forward(Tensor, long[][], long[][], boolean[][], int)} with each image's (height, width) (AnyRes). */
    public Output forward(Tensor pixels, int[][] imageSizes, long[][] inputIds, long[][] labels, boolean[][] attentionMask, int maxLength) {
        Merged m = embed(pixels, imageSizes, null, inputIds, labels, attentionMask, maxLength);
        return new Output(languageModel.forward(m.embeds), m.labels, m.lengths);
    }

    /** The loss and the merged sequences' lengths of one {@link #forwardBackward} call. */
    public record Step(double loss, int[] lengths) {}

    /**
     * One micro-batch's forward and backward: {@link #loss} of {@link #forward}, times {@code scale}, back-propagated.
     * With {@code checkpointing} the LLM's decoder layers are recomputed in the backward
     * ({@link Llama#checkpointedBackward}); the gradients are the same.
     */
    public Step forwardBackward(Tensor pixels, long[][] inputIds, long[][] labels, boolean[][] attentionMask, int maxLength,
                                double scale, boolean checkpointing) {
        return forwardBackward(pixels, null, null, inputIds, labels, attentionMask, maxLength, tokens -> scale, checkpointing);
    }

    /** As below, without AnyRes image sizes. */
    public Step forwardBackward(Tensor pixels, Tensor towerFeatures, long[][] inputIds, long[][] labels, boolean[][] attentionMask,
                                int maxLength, java.util.function.LongToDoubleFunction scaleOfTokens, boolean checkpointing) {
        return forwardBackward(pixels, null, towerFeatures, inputIds, labels, attentionMask, maxLength, scaleOfTokens, checkpointing);
    }

    /**
     * {@link #forwardBackward} whose scale depends on the micro-batch's supervised-token count (the loss's divisor),
     * asked once the merged labels are known and before the backward: data-parallel training scales each rank's mean
     * by its share of the global batch's tokens. {@code towerFeatures} [N, F, vision_h] (the frozen tower's
     * {@link #towerFeatures}, e.g. from a feature cache), when not null, stand for the images instead of {@code pixels}.
     * {@code imageSizes}: each image's (height, width), for AnyRes (null otherwise).
     */
    public Step forwardBackward(Tensor pixels, int[][] imageSizes, Tensor towerFeatures, long[][] inputIds, long[][] labels,
                                boolean[][] attentionMask, int maxLength, java.util.function.LongToDoubleFunction scaleOfTokens,
                                boolean checkpointing) {
        Merged m = embed(towerFeatures != null ? null : pixels, imageSizes, towerFeatures, inputIds, labels, attentionMask, maxLength);
        double scale = scaleOfTokens.applyAsDouble(supervisedTokens(m.labels)) /* the loss's divisor */;
        if (!checkpointing) {
            Tensor l = supervisedLoss(languageModel.model.forward(m.embeds), m.labels);
            double lv = l.item_double();
            l.mul(new org.bytedeco.pytorch.Scalar(scale)).backward();
            return new Step(lv, m.lengths);
        }
        double l = languageModel.checkpointedBackward(m.embeds, hidden -> supervisedLoss(hidden, m.labels), scale);
        return new Step(l, m.lengths);
    }

    /**
     * LLaVA's loss from the LLM's final hidden states [B, L, h] and the merged labels [B, L], with the LM head applied
     * only at the supervised positions: the value and gradients of {@link #loss} over the full logits, without the
     * [B, L, vocab] logits (in stage 1 most positions are image rows, which are never supervised).
     */
    public Tensor supervisedLoss(Tensor hidden, Tensor labels) {
        long l = hidden.size(1), h = hidden.size(2);
        Tensor target = labels.narrow(1, 1, l - 1).reshape(-1);                                            // [B·(L-1)]
        Tensor keep = target.ne(new org.bytedeco.pytorch.Scalar(IGNORE_INDEX)).nonzero().squeeze(1);      // [S]
        long s = keep.size(0);
        if (s == 0) return hidden.sum().mul(new org.bytedeco.pytorch.Scalar(0.0)); // nothing supervised: loss 0, as loss() gives
        Tensor rows = hidden.narrow(1, 0, l - 1).reshape(-1, h).index_select(0, keep);                     // [S, h]
        Tensor logits = languageModel.head(rows);                                                           // [S, vocab]
        return torch.cross_entropy_loss(logits, target.index_select(0, keep), new TensorOptional(), 2, IGNORE_INDEX, 0.0)
                .div(new org.bytedeco.pytorch.Scalar((double) s));
    }

    /** Per sample of a batch: the summed cross entropy of its supervised next-token targets, and how many there are. */
    public record SampleLosses(double[] sums, long[] counts) {}

    /**
     * LLaVA's loss per sample without training ({@code llava4j score}): {@link #tokenLosses} summed per sample, with
     * the LM head applied only at the supervised positions (no [B, L, vocab] logits).
     */
    public SampleLosses sampleLosses(Tensor pixels, long[][] inputIds, long[][] labels, boolean[][] attentionMask, int maxLength) {
        return sampleLosses(pixels, null, inputIds, labels, attentionMask, maxLength);
    }

    /** As above with each image's (height, width) (AnyRes). */
    public SampleLosses sampleLosses(Tensor pixels, int[][] imageSizes, long[][] inputIds, long[][] labels, boolean[][] attentionMask, int maxLength) {
        Merged m = embed(pixels, imageSizes, null, inputIds, labels, attentionMask, maxLength);
        Tensor hidden = languageModel.model.forward(m.embeds); // [B, L, h]
        int b = (int) hidden.size(0);
        long l = hidden.size(1), h = hidden.size(2);
        double[] sums = new double[b];
        long[] counts = new long[b];
        Tensor target = m.labels.narrow(1, 1, l - 1).reshape(-1);                                       // [B·(L-1)]
        Tensor keep = target.ne(new org.bytedeco.pytorch.Scalar(IGNORE_INDEX)).nonzero().squeeze(1); // [S]
        if (keep.size(0) == 0) return new SampleLosses(sums, counts);
        Tensor logits = languageModel.head(hidden.narrow(1, 0, l - 1).reshape(-1, h).index_select(0, keep)); // [S, vocab]
        Tensor losses = torch.cross_entropy_loss(logits, target.index_select(0, keep), new TensorOptional(), 0, IGNORE_INDEX, 0.0); // [S]
        long[] where = Tensors.toLongs(keep);
        float[] values = Tensors.toFloats(losses);
        for (int i = 0; i < where.length; i++) {
            int sample = (int) (where[i] / (l - 1));
            sums[sample] += values[i];
            counts[sample]++;
        }
        return new SampleLosses(sums, counts);
    }

    /** Drops padding, runs the tower and projector, and merges: the LLM's input embeddings [B, L, h] and labels. */
    private Merged embed(Tensor pixels, int[][] imageSizes, Tensor towerFeatures, long[][] inputIds, long[][] labels,
                         boolean[][] attentionMask, int maxLength) {
        if (attentionMask != null) {
            long[][] ids = new long[inputIds.length][], labs = labels == null ? null : new long[inputIds.length][];
            for (int b = 0; b < inputIds.length; b++) {
                ids[b] = kept(inputIds[b], attentionMask[b]);
                if (labs != null) labs[b] = kept(labels[b], attentionMask[b]);
            }
            inputIds = ids;
            labels = labs;
        }
        Tensor projected = towerFeatures != null ? projector.forward(towerFeatures) : pixels == null ? null : imageFeatures(pixels); // [tiles, F, h]
        return merge(inputIds, labels, projected == null ? List.of() : perImage(projected, imageSizes), maxLength);
    }

    /**
     * The input embeddings of one sample for generation: its token embeddings with the image token replaced by the
     * image's projected feature rows, [1, L, h] ({@code pixels} [1, C, H, W], or null for a text-only prompt).
     */
    public Tensor embedPrompt(Tensor pixels, long[] inputIds) {
        return embedPrompt(pixels, null, inputIds);
    }

    /** As above with each image's (height, width) (AnyRes; null otherwise). */
    public Tensor embedPrompt(Tensor pixels, int[][] imageSizes, long[] inputIds) {
        List<Tensor> feats = pixels == null ? List.of() : perImage(imageFeatures(pixels), imageSizes);
        return merge(new long[][]{inputIds}, null, feats, 0).embeds;
    }

    private static long[] kept(long[] values, boolean[] mask) {
        return java.util.stream.IntStream.range(0, values.length).filter(i -> mask[i]).mapToLong(i -> values[i]).toArray();
    }

    private record Merged(Tensor embeds, Tensor labels, int[] lengths) {}

    /** Replaces each image token by that image's feature rows [F_i, h]; pads to the longest sample with zeros / -100. */
    private Merged merge(long[][] inputIds, long[][] labels, List<Tensor> feats, int maxLength) {
        long imageToken = config.imageTokenIndex();
        int nImages = feats.size();
        int tokens = 0;
        for (long[] ids : inputIds) for (long id : ids) if (id == imageToken) tokens++;
        if (tokens != nImages)
            throw new IllegalArgumentException("the batch has " + tokens + " image tokens (id " + imageToken + ") but "
                    + nImages + " images: every image needs exactly one image token");
        Tensor table = languageModel.model.embedTokens.weight; // [V, h]
        List<Tensor> rows = new ArrayList<>();
        List<long[]> labs = new ArrayList<>();
        int[] lengths = new int[inputIds.length];
        int img = 0;
        for (int b = 0; b < inputIds.length; b++) {
            long[] ids = inputIds[b];
            long[] safe = ids.clone();
            for (int i = 0; i < safe.length; i++) if (safe[i] == imageToken) safe[i] = 0;
            Tensor text = io.llava4j.nn.Autocast.embedding(table, Tensors.longs(safe, safe.length)); // [T, h] fp32
            TensorVector pieces = new TensorVector();
            List<Long> lab = new ArrayList<>();
            int start = 0;
            for (int i = 0; i <= ids.length; i++) {
                if (i == ids.length || ids[i] == imageToken) {
                    if (i > start) pieces.push_back(text.narrow(0, start, i - start));
                    for (int j = start; j < i; j++) lab.add(labels == null ? IGNORE_INDEX : labels[b][j]);
                    if (i < ids.length) {
                        Tensor rowsOfImage = feats.get(img++); // [F_i, h]
                        pieces.push_back(rowsOfImage);
                        for (long j = 0; j < rowsOfImage.size(0); j++) lab.add(IGNORE_INDEX);
                    }
                    start = i + 1;
                }
            }
            Tensor row = torch.cat(pieces, 0); // [L_b, h]
            if (maxLength > 0 && lab.size() > maxLength) {
                row = row.narrow(0, 0, maxLength);
                lab = lab.subList(0, maxLength);
            }
            rows.add(row);
            labs.add(lab.stream().mapToLong(Long::longValue).toArray());
            lengths[b] = lab.size();
        }
        int maxLen = 0;
        for (int l : lengths) maxLen = Math.max(maxLen, l);
        long h = table.size(1);
        TensorVector padded = new TensorVector();
        long[] labelData = new long[inputIds.length * maxLen];
        java.util.Arrays.fill(labelData, IGNORE_INDEX);
        for (int b = 0; b < rows.size(); b++) {
            Tensor r = rows.get(b);
            if (lengths[b] < maxLen) r = torch.cat(new TensorVector(r, io.llava4j.engine.Device.place(torch.zeros(maxLen - lengths[b], h))), 0);
            padded.push_back(r.unsqueeze(0));
            System.arraycopy(labs.get(b), 0, labelData, b * maxLen, lengths[b]);
        }
        return new Merged(torch.cat(padded, 0), Tensors.longs(labelData, inputIds.length, maxLen), lengths);
    }

    /** Cross entropy of logits[:, :-1] against labels[:, 1:], -100 ignored: per position, shape [B, L-1]. */
    public static Tensor tokenLosses(Tensor logits, Tensor labels) {
        long b = logits.size(0), l = logits.size(1), v = logits.size(2);
        Tensor lg = logits.narrow(1, 0, l - 1).reshape(-1, v);
        Tensor lb = labels.narrow(1, 1, l - 1).reshape(-1);
        return torch.cross_entropy_loss(lg, lb, new TensorOptional(), 0, IGNORE_INDEX, 0.0).view(b, l - 1);
    }

    /** Number of supervised (not -100) next-token targets, labels[:, 1:]. */
    public static long supervisedTokens(Tensor labels) {
        return labels.narrow(1, 1, labels.size(1) - 1).ne(new org.bytedeco.pytorch.Scalar(IGNORE_INDEX)).sum().item_long();
    }

    /** The LLaVA loss: mean cross entropy over every supervised token of the batch. */
    public static Tensor loss(Output out) {
        return tokenLosses(out.logits(), out.labels()).sum().div(new org.bytedeco.pytorch.Scalar((double) Math.max(1, supervisedTokens(out.labels()))));
    }
}
