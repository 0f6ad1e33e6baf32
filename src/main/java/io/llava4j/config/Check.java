package io.llava4j.config;

import java.util.Collection;

/** Validation checks: every failure names the file and the field. */
final class Check {
    private Check() {}

    static void that(boolean ok, String where, String field, String message) {
        if (!ok) throw new ConfigException(where + ": field '" + field + "': " + message);
    }

    static void positive(String where, String field, Integer v) {
        that(v != null && v > 0, where, field, "must be a positive integer, got " + v);
    }

    static void oneOf(String where, String field, String v, Collection<String> allowed) {
        that(allowed.contains(v), where, field, "'" + v + "' is not one of " + allowed);
    }
}
