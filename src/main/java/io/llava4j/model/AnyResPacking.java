package io.llava4j.model;

import io.llava4j.data.AnyRes;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * LLaVA-NeXT / OneVision's {@code spatial_unpad} packing of one AnyRes image's projected tile features into the
 * sequence of embeddings that replaces its {@code <image>} token (transformers' {@code pack_image_features},
 * LLaVA-NeXT's {@code prepare_inputs_labels_for_multimodal}). Pure tensor ops, so autograd reaches the features and
 * {@code image_newline}. The row count equals {@link AnyRes#numImageTokens} for the same settings.
 */
public final class AnyResPacking {

    private AnyResPacking() {
    }

    /**
     * Packs [base, tiles...] features into [S·S + h·(w + 1), D]:
     * <ol>
     *   <li>base = feats[0] (S·S rows, kept as is);</li>
     *   <li>the tiles laid out as one feature map: feats[1:].view(rows, cols, S, S, D).permute(4, 0, 2, 1, 3)
     *       → (D, rows·S, cols·S);</li>
     *   <li>unpad to the image's aspect ratio: if W/H > cw/ch the map is too tall, keep rows [pad, ch − pad) with
     *       nh = rnd(H · (cw / W)), pad = (ch − nh) // 2; else the same on columns;</li>
     *   <li>{@code anyres_max_N}: r = sqrt(h·w / (N·S²)); if r > 1.1, bilinear (align_corners false) to
     *       (int(h // r), int(w // r));</li>
     *   <li>{@code imageNewline} appended as one more column; flattened row-major → h·(w + 1) rows after the base.</li>
     * </ol>
     * A 1×1 grid (two tensors) takes the same path.
     *
     * @param tileFeatures [1 + gridRows·gridCols, S·S, D], after the projector; base tile first, then the grid's tiles
     *                     row by row (as {@link AnyRes#process} orders the pixels)
     * @param imageH       the original image's height (not the best resolution's)
     * @param imageNewline [D]
     * @param maxTiles     N of anyres_max_N, null for plain anyres (no downsampling)
     */
    public static Tensor pack(Tensor tileFeatures, int gridRows, int gridCols, int imageH, int imageW, Tensor imageNewline,
                              Integer maxTiles, AnyRes.Rounding rounding) {
        long[] shape = tileFeatures.sizes().vec().get();
        if (shape.length != 3) throw new IllegalArgumentException("tile features must be [tiles, S*S, D], got rank " + shape.length);
        long tiles = shape[0], n = shape[1], d = shape[2];
        int s = (int) Math.round(Math.sqrt(n));
        if ((long) s * s != n) throw new IllegalArgumentException(n + " features per tile is not a square");
        if (tiles != 1L + (long) gridRows * gridCols)
            throw new IllegalArgumentException(tiles + " tiles of features for a " + gridRows + "x" + gridCols + " grid (expected "
                    + (1 + gridRows * gridCols) + ")");
        Tensor base = tileFeatures.select(0, 0);                                             // [S*S, D]
        Tensor grid = tileFeatures.narrow(0, 1, tiles - 1)
                .reshape(gridRows, gridCols, s, s, d)
                .permute(4, 0, 2, 1, 3)
                .reshape(d, (long) gridRows * s, (long) gridCols * s);                      // [D, rows*S, cols*S]
        grid = unpad(grid, imageH, imageW, rounding);                                      // [D, h, w]
        long h = grid.size(1), w = grid.size(2);
        if (maxTiles != null) {
            double r = AnyRes.downsampleRatio((int) h, (int) w, maxTiles, s);
            if (r > 1.1) {
                long nh = (long) AnyRes.pyFloorDiv(h, r), nw = (long) AnyRes.pyFloorDiv(w, r);
                grid = torch.upsample_bilinear2d(grid.unsqueeze(0), new long[]{nh, nw}, false).squeeze(0);
                h = nh;
                w = nw;
            }
        }
        Tensor newline = imageNewline.to(grid.scalar_type()).reshape(d, 1, 1).expand(d, h, 1);
        Tensor withNewlines = torch.cat(new TensorVector(grid, newline), -1);                // [D, h, w+1]
        Tensor rows = withNewlines.reshape(d, h * (w + 1)).t();                               // [h*(w+1), D]
        return torch.cat(new TensorVector(base, rows), 0);
    }

    /**
     * Unpads a (D, ch, cw) feature map of an image of {@code imageH × imageW} (transformers' / LLaVA-NeXT's
     * unpad_image): removes the rows (or columns) that covered the black padding of the resize-and-pad step.
     */
    public static Tensor unpad(Tensor map, int imageH, int imageW, AnyRes.Rounding rounding) {
        long ch = map.size(1), cw = map.size(2);
        if ((double) imageW / imageH > (double) cw / ch) {
            int nh = rounding.apply(imageH * ((double) cw / imageW));
            long pad = (ch - nh) / 2;
            return map.narrow(1, pad, ch - 2 * pad);
        }
        int nw = rounding.apply(imageW * ((double) ch / imageH));
        long pad = (cw - nw) / 2;
        return map.narrow(2, pad, cw - 2 * pad);
    }

    /**
     * The other branch of transformers' pack_image_features: an image that came with a single tile (no grid; multi-image
     * samples with {@code pad}, video frames) becomes its S·S features followed by one {@code image_newline} row.
     * The AnyRes image path never produces this: even a 1×1 grid has a base and a tile and goes through {@link #pack}.
     *
     * @param tileFeatures [1, S·S, D]
     * @return [S·S + 1, D]
     */
    public static Tensor packSingleTile(Tensor tileFeatures, Tensor imageNewline) {
        if (tileFeatures.size(0) != 1) throw new IllegalArgumentException("expected one tile, got " + tileFeatures.size(0));
        Tensor base = tileFeatures.select(0, 0);
        return torch.cat(new TensorVector(base, imageNewline.to(base.scalar_type()).unsqueeze(0)), 0);
    }
}
