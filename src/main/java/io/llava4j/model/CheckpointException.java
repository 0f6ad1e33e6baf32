package io.llava4j.model;

/** A checkpoint that does not match its config or cannot be read; the message names the folder and the tensors. */
public class CheckpointException extends RuntimeException {
    public CheckpointException(String message) {
        super(message);
    }

    public CheckpointException(String message, Throwable cause) {
        super(message, cause);
    }
}
