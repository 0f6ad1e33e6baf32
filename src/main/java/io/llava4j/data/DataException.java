package io.llava4j.data;

/**
 * Training data that cannot be used: a malformed LLaVA JSON record, a conversation that does not fit the template,
 * an unreadable image or processor config. The message names the file, the record (index and id) and the field.
 */
public class DataException extends RuntimeException {
    public DataException(String message) {
        super(message);
    }

    public DataException(String message, Throwable cause) {
        super(message, cause);
    }
}
