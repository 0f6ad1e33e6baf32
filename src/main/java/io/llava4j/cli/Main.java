package io.llava4j.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code llava4j} command line. */
@Command(name = "llava4j", mixinStandardHelpOptions = true, version = "llava4j 0.1.0",
        description = "Train and run LLaVA vision-language models on the JVM (libtorch through JavaCPP).",
        subcommands = {ScoreCommand.class, InspectCommand.class, TrainCommand.class, GenerateCommand.class, ChatCommand.class, ServeCommand.class, DemoCommand.class})
public class Main implements Runnable {

    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs the CLI and returns its exit code (tests call this instead of {@link #main}). */
    public static int run(String... args) {
        CommandLine cl = new CommandLine(new Main());
        cl.setCaseInsensitiveEnumValuesAllowed(true);
        cl.setExecutionExceptionHandler((ex, cmd, parsed) -> {
            cmd.getErr().println("error: " + ex.getMessage());
            if (Boolean.getBoolean("llava4j.trace")) ex.printStackTrace(cmd.getErr());
            return 1;
        });
        return cl.execute(args);
    }

    @Override
    public void run() {
        new CommandLine(this).usage(System.out);
    }
}
