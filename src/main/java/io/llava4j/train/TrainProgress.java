package io.llava4j.train;

/** What the trainer reports as it goes (the command line shows it as a progress bar); passed in, so train/ knows no UI. */
public interface TrainProgress {
    /** Once, before the first step of this run: the run's total steps and the steps already done (a resume). */
    void start(long total, long startStep);

    /** After global step {@code step}, with the step's fields ("loss … lr … tok/s"). */
    void update(long step, String fields);

    /** The run ended (or stopped). */
    void done();

    /** Reports nothing. */
    TrainProgress NONE = new TrainProgress() {
        @Override public void start(long total, long startStep) {}
        @Override public void update(long step, String fields) {}
        @Override public void done() {}
    };
}
