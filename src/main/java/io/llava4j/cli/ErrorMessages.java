package io.llava4j.cli;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;

/** The one line a failed command prints: what went wrong, in the user's terms, never a stack trace. */
final class ErrorMessages {
    private ErrorMessages() {}

    /** Exceptions that carry a message written for the user (a bad flag, file, record, config). */
    static boolean isUserError(Throwable t) {
        return t instanceof IllegalArgumentException || t instanceof io.llava4j.data.DataException
                || t instanceof IOException || t instanceof UncheckedIOException
                || t.getClass().getName().startsWith("io.llava4j.") && t instanceof RuntimeException && !(t instanceof IllegalStateException);
    }

    static String of(Throwable t) {
        if (t instanceof UncheckedIOException u && u.getCause() != null) {
            String own = u.getMessage(), cause = u.getCause().getMessage();
            // our wrappers say which file and what it means ("…: cannot write the model: No space left …"): keep them;
            // a bare wrapper (new UncheckedIOException(e)) says only what its cause says
            if (own != null && !own.equals(String.valueOf(u.getCause())) && !own.equals(cause) && (cause == null || own.contains(cause)))
                return own;
            t = u.getCause();
        }
        // a library's wrapper (Javalin's around a BindException, say) around an error with a message for the user
        for (Throwable c = t.getCause(); !isUserError(t) && c != null && c != c.getCause(); c = c.getCause())
            if (isUserError(c) && c.getMessage() != null) return of(c);
        if (t instanceof java.nio.file.FileAlreadyExistsException e) return e.getFile() + ": exists and is not a folder";
        String m = t.getMessage();
        if (t instanceof NoSuchFileException e) return e.getFile() + ": no such file or folder";
        if (t instanceof AccessDeniedException e) return e.getFile() + ": permission denied";
        if (t instanceof FileSystemException e && e.getFile() != null)
            return e.getFile() + ": " + (e.getReason() != null ? e.getReason() : e.getClass().getSimpleName());
        if (t instanceof OutOfMemoryError)
            return "out of memory (" + m + "): give the JVM more heap (LLAVA4J_JAVA_OPTS=-Xmx...) or use --bf16 True";
        if (t instanceof UnsatisfiedLinkError || t instanceof NoClassDefFoundError || t instanceof ExceptionInInitializerError)
            return "the native libraries did not load (" + t.getClass().getSimpleName() + ": " + m + ")";
        if (isUserError(t) && m != null && !m.isBlank()) return m;
        return "internal error: " + t.getClass().getSimpleName() + (m == null || m.isBlank() ? "" : ": " + m);
    }
}
