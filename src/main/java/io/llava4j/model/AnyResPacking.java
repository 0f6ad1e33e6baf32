package io.llava4j.model;

import org.bytedeco.pytorch.Tensor;

import java.util.List;

/** Placeholder until the AnyRes packing lands. */
public final class AnyResPacking {
    private AnyResPacking() {}

    public static int[] gridShape(int h, int w, List<int[]> pinpointsHW, int tile) {
        throw new UnsupportedOperationException("AnyRes");
    }

    public static Tensor pack(Tensor f, int rows, int cols, int h, int w, int side, Tensor newline, Integer maxN, boolean hfRounding) {
        throw new UnsupportedOperationException("AnyRes");
    }

    public static int numTokens(int h, int w, List<int[]> pinpointsHW, int tile, int side, Integer maxN, boolean hfRounding) {
        throw new UnsupportedOperationException("AnyRes");
    }
}
