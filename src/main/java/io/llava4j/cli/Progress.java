package io.llava4j.cli;

import io.llava4j.train.TrainProgress;

/** A one-line progress bar on stderr: step/total, a bar, caller's fields and the ETA. */
public final class Progress implements TrainProgress {
    private final String label;
    private long total;
    private long started = System.nanoTime();
    private long startStep;
    private final boolean tty = System.console() != null;

    /** A bar whose total comes with {@link #start}. */
    public Progress(String label) {
        this.label = label;
    }

    public Progress(String label, long total) {
        this(label);
        start(total, 0);
    }

    /** {@code startStep}: steps already done before this run (resume), not counted in the ETA's rate. */
    @Override
    public void start(long total, long startStep) {
        this.total = total;
        this.startStep = startStep;
        this.started = System.nanoTime();
    }

    @Override
    public void update(long step, String fields) {
        double elapsed = (System.nanoTime() - started) / 1e9;
        long done = step - startStep;
        double eta = done > 0 ? elapsed / done * (total - step) : 0;
        int width = 24, filled = (int) (width * step / Math.max(1, total));
        String bar = "=".repeat(filled) + " ".repeat(width - filled);
        String line = String.format("%s %d/%d [%s] %s elapsed %s ETA %s", label, step, total, bar, fields, clock(elapsed), clock(eta));
        System.err.print(tty ? "\r" + line : line + "\n");
        System.err.flush();
    }

    @Override
    public void done() {
        if (tty) System.err.println();
    }

    static String clock(double s) {
        long t = Math.round(s);
        return t >= 3600 ? String.format("%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String.format("%02d:%02d", t / 60, t % 60);
    }
}
