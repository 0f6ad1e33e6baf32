package io.llava4j.cli;

import java.util.Locale;

/** HF's size strings ({@code max_shard_size}): "5GB" = 5·10⁹ bytes, "2GiB" = 2·2³⁰, "500MB", "100KB", or a number of bytes. */
final class ByteSizes {
    private ByteSizes() {}

    static long parse(String flag, String v) {
        String s = v.trim().toUpperCase(Locale.ROOT);
        String[][] units = {{"GIB", "1073741824"}, {"MIB", "1048576"}, {"KIB", "1024"}, {"GB", "1000000000"},
                {"MB", "1000000"}, {"KB", "1000"}, {"B", "1"}};
        try {
            for (String[] u : units)
                if (s.endsWith(u[0])) {
                    double n = Double.parseDouble(s.substring(0, s.length() - u[0].length()).trim());
                    long bytes = (long) (n * Long.parseLong(u[1]));
                    if (bytes <= 0) break;
                    return bytes;
                }
            long bytes = Long.parseLong(s);
            if (bytes > 0) return bytes;
        } catch (NumberFormatException ignored) {
            // reported below
        }
        throw new IllegalArgumentException(flag + " " + v + ": not a size (e.g. 5GB, 500MB, 2GiB)");
    }
}
