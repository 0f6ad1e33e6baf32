package io.llava4j.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code llava4j} command line. */
@Command(name = "llava4j", mixinStandardHelpOptions = true, version = "llava4j 0.1.0",
        description = "Train and run LLaVA vision-language models on the JVM (libtorch through JavaCPP).",
        subcommands = {ScoreCommand.class, InspectCommand.class, TrainCommand.class, ValidateCommand.class, BenchCommand.class, MergeCommand.class, GenerateCommand.class, ChatCommand.class, ServeCommand.class, DemoCommand.class})
public class Main implements Runnable {
    @picocli.CommandLine.Option(names = "--debug", scope = picocli.CommandLine.ScopeType.INHERIT,
            description = "on an error, print the Java stack trace too")
    boolean debug;

    /**
     * {@code LLAVA4J_MEMORY_REPORT=FILE} writes the run's peak resident memory to FILE as JSON at exit
     * ({@code peak_rss_anon_mb}: what the process holds, without clean pages of memory-mapped weights;
     * {@code peak_rss_mb}: with them) — the figure the benchmarks in bench/ report. {@code {rank}} in FILE becomes the
     * rank ({@code RANK}; "launcher" in the process that starts the ranks).
     */
    public static void main(String[] args) {
        String report = System.getenv("LLAVA4J_MEMORY_REPORT");
        if (report != null) report = report.replace("{rank}", System.getenv().getOrDefault("RANK", "launcher")); // one file per rank
        io.llava4j.engine.MemoryMonitor mon = report == null || report.isEmpty() ? null : new io.llava4j.engine.MemoryMonitor();
        int rc = run(args);
        if (mon != null) {
            try {
                java.nio.file.Files.writeString(java.nio.file.Path.of(report), String.format(java.util.Locale.ROOT,
                        "{\"peak_rss_anon_mb\": %.1f, \"peak_rss_mb\": %.1f, \"exit_code\": %d}%n",
                        mon.peakAnonBytes() / 1048576.0, mon.peakRssBytes() / 1048576.0, rc));
            } catch (java.io.IOException e) {
                System.err.println("warning: cannot write " + report + ": " + e.getMessage());
            }
        }
        System.exit(rc);
    }

    /**
     * Runs the CLI and returns its exit code (tests call this instead of {@link #main}). Whatever goes wrong is one
     * line on stderr, {@code error: ...}, and exit code 1 (2 for a command line picocli cannot parse); {@code --debug}
     * (anywhere on the command line) or {@code -Dllava4j.trace=true} adds the stack trace.
     */
    public static int run(String... args) {
        boolean debug = Boolean.getBoolean("llava4j.trace") || java.util.Arrays.asList(args).contains("--debug");
        CommandLine cl = new CommandLine(new Main());
        cl.setCaseInsensitiveEnumValuesAllowed(true);
        cl.setExecutionExceptionHandler((ex, cmd, parsed) -> fail(ex, cmd.getErr(), debug));
        try {
            return cl.execute(args);
        } catch (Throwable t) { // an Error (out of memory, a native library that does not load) escapes picocli's handler
            return fail(t, new java.io.PrintWriter(System.err, true), debug);
        }
    }

    /** Prints one line for {@code t} (and its stack trace under --debug); returns the exit code 1. */
    static int fail(Throwable t, java.io.PrintWriter err, boolean debug) {
        err.println("error: " + ErrorMessages.of(t) + (debug || ErrorMessages.isUserError(t) ? "" : " (--debug prints the stack trace)"));
        if (debug) t.printStackTrace(err);
        err.flush();
        return 1;
    }

    @Override
    public void run() {
        new CommandLine(this).usage(System.out);
    }
}
