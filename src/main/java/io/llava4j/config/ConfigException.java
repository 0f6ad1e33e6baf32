package io.llava4j.config;

/** A config.json (or preprocessor/tokenizer config) that cannot be used; the message names the file and the field. */
public class ConfigException extends RuntimeException {
    public ConfigException(String message) {
        super(message);
    }

    public ConfigException(String message, Throwable cause) {
        super(message, cause);
    }
}
