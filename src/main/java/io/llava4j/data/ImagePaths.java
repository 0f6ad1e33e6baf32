package io.llava4j.data;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;

/**
 * Resolves a record's image path against {@code --image_folder} and refuses one that resolves outside it: an
 * absolute path elsewhere, {@code ..} segments that climb out, or a symlink (the file or a folder on the way) that
 * points out. A data file can thus never make training read a file the image folder does not hold.
 */
final class ImagePaths {
    private final Path folder;     // absolute, normalized
    private volatile Path realFolder;

    ImagePaths(Path folder) {
        this.folder = folder.toAbsolutePath().normalize();
    }

    /** {@code image} inside the folder, or a {@link RecordException} ({@link DataProblem#PATH_ESCAPE}) naming {@code where}. */
    Path resolve(String image, String where) {
        Path p;
        try {
            p = folder.resolve(image).normalize();
        } catch (InvalidPathException e) {
            throw new RecordException(DataProblem.IMAGE_MISSING, where + ": field image: not a valid path: \"" + image + "\"");
        }
        if (!p.startsWith(folder))
            throw new RecordException(DataProblem.PATH_ESCAPE, where + ": field image: \"" + image + "\" resolves to " + p
                    + ", outside --image_folder " + folder);
        if (Files.exists(p)) {
            try {
                Path real = p.toRealPath(), base = realFolder();
                if (!real.startsWith(base))
                    throw new RecordException(DataProblem.PATH_ESCAPE, where + ": field image: \"" + image + "\" is a symlink (or lies under one)"
                            + " that points to " + real + ", outside --image_folder " + base);
            } catch (IOException e) {
                throw new RecordException(DataProblem.IMAGE_UNREADABLE, where + ": field image: " + p + ": " + e.getMessage(), e);
            }
        }
        return p;
    }

    private Path realFolder() throws IOException {
        Path r = realFolder;
        if (r == null) realFolder = r = folder.toRealPath();
        return r;
    }
}
