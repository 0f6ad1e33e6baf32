package io.llava4j.dist;

import java.util.Map;

/**
 * A rank's place in a data-parallel run, from torchrun's environment variables: {@code RANK}, {@code WORLD_SIZE},
 * {@code LOCAL_RANK}, {@code LOCAL_WORLD_SIZE}, {@code MASTER_ADDR}, {@code MASTER_PORT}. The {@link Launcher} sets
 * them for each child JVM; any other launcher that sets them (torchrun's conventions, a batch system) works too.
 */
public record DistEnv(int rank, int worldSize, int localRank, int localWorldSize, String masterAddr, int masterPort) {

    public DistEnv {
        if (worldSize < 1) throw new IllegalArgumentException("WORLD_SIZE must be >= 1, got " + worldSize);
        if (rank < 0 || rank >= worldSize) throw new IllegalArgumentException("RANK " + rank + " is outside WORLD_SIZE " + worldSize);
        if (masterPort < 1 || masterPort > 65535) throw new IllegalArgumentException("MASTER_PORT " + masterPort + " is not a port");
    }

    /** The rank described by {@code env}, or null when {@code WORLD_SIZE} is not set (one process). */
    public static DistEnv of(Map<String, String> env) {
        String world = env.get("WORLD_SIZE");
        if (world == null || world.isBlank()) return null;
        int w = number(env, "WORLD_SIZE", null);
        int rank = number(env, "RANK", null);
        int local = number(env, "LOCAL_RANK", String.valueOf(rank));
        int localWorld = number(env, "LOCAL_WORLD_SIZE", String.valueOf(w));
        String addr = env.getOrDefault("MASTER_ADDR", "127.0.0.1");
        return new DistEnv(rank, w, local, localWorld, addr, number(env, "MASTER_PORT", "29500"));
    }

    private static int number(Map<String, String> env, String key, String dflt) {
        String v = env.getOrDefault(key, dflt);
        if (v == null) throw new IllegalArgumentException("WORLD_SIZE is set but " + key + " is not: set both (torchrun's variables)");
        try {
            return Integer.parseInt(v.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("environment variable " + key + "=" + v + " is not a number");
        }
    }
}
