package io.llava4j.model;

/** A checkpoint that does not match its config or cannot be read; the message names the folder and the tensors. */
public class CheckpointException extends RuntimeException {
    public CheckpointException(String message) {
        super(message);
    }

    public CheckpointException(String message, Throwable cause) {
        super(message, cause);
    }

    /** Throws one exception listing every missing, unexpected and wrongly shaped tensor; returns when all lists are empty. */
    public static void throwIfMismatched(String header, java.util.List<String> missing, java.util.List<String> unexpected,
                                         java.util.List<String> wrongShape) {
        if (missing.isEmpty() && unexpected.isEmpty() && wrongShape.isEmpty()) return;
        StringBuilder sb = new StringBuilder(header);
        if (!missing.isEmpty()) sb.append("\n  missing tensors: ").append(missing);
        if (!unexpected.isEmpty()) sb.append("\n  unexpected tensors: ").append(unexpected);
        if (!wrongShape.isEmpty()) sb.append("\n  shape mismatches: ").append(wrongShape);
        throw new CheckpointException(sb.toString());
    }
}
