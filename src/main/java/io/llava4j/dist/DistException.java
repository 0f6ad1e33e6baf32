package io.llava4j.dist;

/**
 * A collective of data-parallel training failed: another rank died, hung past {@code --ddp_timeout}, or cannot be
 * reached. The message names this rank and what it was doing; every rank stops (the newest checkpoint is untouched:
 * checkpoints are written whole and renamed into place).
 */
public final class DistException extends RuntimeException {
    public DistException(DistEnv env, String what, RuntimeException cause) {
        super("rank " + env.rank() + " of " + env.worldSize() + ": " + what + " — another rank stopped, hung or is "
                + "unreachable (" + firstLine(cause.getMessage()) + "); stopping. Checkpoints are whole: continue with "
                + "--resume_from_checkpoint True (any number of ranks with the same global batch)", cause);
    }

    private static String firstLine(String m) {
        if (m == null) return "no detail";
        String l = m.strip().lines().findFirst().orElse(m);
        return l.replaceAll("^\\[[^\\]]*\\] ", ""); // drop libtorch's [source-file:line] prefix
    }
}
