package io.llava4j.data;

/**
 * A record's image could not be read when its sample was prepared (missing, empty, undecodable, or outside the image
 * folder): training skips the sample with a warning and counts it, instead of losing the run.
 */
public class UnreadableImageException extends RecordException {
    public UnreadableImageException(DataProblem problem, String message, Throwable cause) {
        super(problem, message, cause);
    }
}
