package io.llava4j.train;

import io.llava4j.cli.TrainCommand;

import java.util.List;

/** Runs training from LLaVA-style flags, through the CLI's parser, and hands back the trainer to inspect. */
final class TrainRuns {
    private TrainRuns() {}

    static Trainer run(List<String> flags) throws Exception {
        Trainer t = new Trainer(TrainCommand.parse(flags.toArray(new String[0])));
        t.run();
        return t;
    }
}
