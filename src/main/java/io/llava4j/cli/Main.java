package io.llava4j.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code llava4j} command line. */
@Command(name = "llava4j", mixinStandardHelpOptions = true, version = "llava4j 0.1.0",
        description = "Train and run LLaVA vision-language models on the JVM (libtorch through JavaCPP).",
        subcommands = {ScoreCommand.class, InspectCommand.class, TrainCommand.class, BenchCommand.class, GenerateCommand.class, ChatCommand.class, ServeCommand.class, DemoCommand.class})
public class Main implements Runnable {

    /**
     * {@code LLAVA4J_MEMORY_REPORT=FILE} writes the run's peak resident memory to FILE as JSON at exit
     * ({@code peak_rss_anon_mb}: what the process holds, without clean pages of memory-mapped weights;
     * {@code peak_rss_mb}: with them) — the figure the benchmarks in bench/ report.
     */
    public static void main(String[] args) {
        String report = System.getenv("LLAVA4J_MEMORY_REPORT");
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
