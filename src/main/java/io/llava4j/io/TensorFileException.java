package io.llava4j.io;

import java.io.IOException;
import java.nio.file.Path;

/**
 * A tensor file (safetensors, shard index, torch.save zip) that is malformed, truncated or refused.
 * The message always starts with the file, followed by the tensor or key at fault where there is one.
 */
public class TensorFileException extends IOException {

    private static final long serialVersionUID = 1L;

    private final transient Path file;

    public TensorFileException(Path file, String message) {
        super(file + ": " + message);
        this.file = file;
    }

    public TensorFileException(Path file, String message, Throwable cause) {
        super(file + ": " + message, cause);
        this.file = file;
    }

    /** The file at fault. */
    public Path file() {
        return file;
    }
}
