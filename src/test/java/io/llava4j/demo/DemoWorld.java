package io.llava4j.demo;

import java.nio.file.Path;

/** Development tool (not a test): {@code DemoWorld DIR SEED [TRAIN_IMAGES]} writes the world of a full run. */
public final class DemoWorld {
    public static void main(String[] args) throws Exception {
        Demo.Settings full = Demo.Settings.FULL;
        WorldData.write(Path.of(args[0]), Long.parseLong(args[1]), args.length > 2 ? Integer.parseInt(args[2]) : full.trainImages(),
                full.heldOutImages(), full.imageSize(), i -> {});
    }
}
