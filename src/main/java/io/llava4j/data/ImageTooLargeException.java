package io.llava4j.data;

/** An image over one of the {@link ImageLimits}, found from its header before decoding; the message names the image and the limit. */
public final class ImageTooLargeException extends DataException {
    public final ImageLimits.Kind kind;

    public ImageTooLargeException(ImageLimits.Kind kind, String message) {
        super(message);
        this.kind = kind;
    }
}
