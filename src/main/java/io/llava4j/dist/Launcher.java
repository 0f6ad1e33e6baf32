package io.llava4j.dist;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * torchrun for llava4j: starts {@code nprocPerNode} JVMs on this node, one per rank, with this JVM's java, class path
 * and JVM flags, and torchrun's environment ({@code RANK = node_rank × nproc_per_node + LOCAL_RANK},
 * {@code WORLD_SIZE = nnodes × nproc_per_node}, {@code LOCAL_RANK}, {@code LOCAL_WORLD_SIZE}, {@code GROUP_RANK},
 * {@code MASTER_ADDR}, {@code MASTER_PORT}; {@code OMP_NUM_THREADS} = cores / nproc_per_node unless set, as torchrun
 * sets it to 1). Rank 0's output passes through unchanged (its progress bar); other ranks' lines are prefixed
 * {@code [rank N]}. When a rank fails, the others get {@link #GRACE} to stop on their own (they see the failure at
 * their next collective and say so), then are killed; the launcher exits with the first failure's code.
 */
public final class Launcher {
    /** The launcher's pid, in each child's environment: a rank whose launcher is gone stops (see {@link Comm}). */
    public static final String PID_VARIABLE = "LLAVA4J_LAUNCHER_PID";
    static final java.time.Duration GRACE = java.time.Duration.ofSeconds(30);

    /** torchrun's flags. */
    public record Spec(int nprocPerNode, int nnodes, int nodeRank, String masterAddr, int masterPort) {
        public Spec {
            if (nprocPerNode < 1) throw new IllegalArgumentException("--nproc_per_node must be >= 1, got " + nprocPerNode);
            if (nnodes < 1) throw new IllegalArgumentException("--nnodes must be >= 1, got " + nnodes);
            if (nodeRank < 0 || nodeRank >= nnodes)
                throw new IllegalArgumentException("--node_rank " + nodeRank + " must be in [0, --nnodes " + nnodes + ")");
            if (masterPort < 1 || masterPort > 65535) throw new IllegalArgumentException("--master_port " + masterPort + " is not a port");
        }

        public int worldSize() {
            return nnodes * nprocPerNode;
        }
    }

    private Launcher() {}

    /**
     * Runs {@code mainClass} with {@code args} in one child JVM per local rank and waits for all of them.
     * @return 0 when every rank succeeded, else the exit code of the first rank that failed
     */
    public static int launch(Spec spec, String mainClass, List<String> args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments())
            if (!a.startsWith("-agentlib:jdwp") && !a.startsWith("-Xrunjdwp") && !a.equals("-Xdebug")) cmd.add(a);
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(mainClass);
        cmd.addAll(args);
        int threads = Math.max(1, Runtime.getRuntime().availableProcessors() / spec.nprocPerNode());
        boolean setThreads = System.getenv("OMP_NUM_THREADS") == null;
        if (setThreads && spec.nprocPerNode() > 1)
            System.err.printf("launcher: OMP_NUM_THREADS=%d for each of the %d ranks of this node (set it to override)%n",
                    threads, spec.nprocPerNode());
        List<Process> procs = new ArrayList<>();
        List<Thread> pumps = new ArrayList<>();
        Thread killer = new Thread(() -> procs.forEach(Process::destroyForcibly));
        Runtime.getRuntime().addShutdownHook(killer);
        try {
            for (int local = 0; local < spec.nprocPerNode(); local++) {
                int rank = spec.nodeRank() * spec.nprocPerNode() + local;
                ProcessBuilder pb = new ProcessBuilder(cmd);
                Map<String, String> env = pb.environment();
                env.putAll(rankEnv(spec, local));
                env.put(PID_VARIABLE, String.valueOf(ProcessHandle.current().pid()));
                if (setThreads) env.put("OMP_NUM_THREADS", String.valueOf(threads));
                env.putIfAbsent("OMP_WAIT_POLICY", "PASSIVE");
                Process p = pb.start();
                procs.add(p);
                pumps.add(pump(p.getInputStream(), System.out, rank));
                pumps.add(pump(p.getErrorStream(), System.err, rank));
            }
            int failed = -1, code = 0;
            long failedAt = 0;
            while (true) {
                boolean alive = false;
                for (int i = 0; i < procs.size(); i++) {
                    Process p = procs.get(i);
                    if (p.isAlive()) {
                        alive = true;
                        continue;
                    }
                    if (failed < 0 && p.exitValue() != 0) {
                        failed = spec.nodeRank() * spec.nprocPerNode() + i;
                        code = p.exitValue();
                        failedAt = System.nanoTime();
                        System.err.printf("%nlauncher: rank %d exited with code %d; the other ranks stop at their next "
                                + "collective (killed after %d s)%n", failed, code, GRACE.toSeconds());
                    }
                }
                if (!alive) break;
                if (failed >= 0 && System.nanoTime() - failedAt > GRACE.toNanos()) {
                    for (Process p : procs) if (p.isAlive()) p.destroyForcibly();
                    for (Process p : procs) p.waitFor();
                    break;
                }
                Thread.sleep(100);
            }
            for (Thread t : pumps) t.join(5000);
            return code;
        } finally {
            for (Process p : procs) if (p.isAlive()) p.destroyForcibly();
            try {
                Runtime.getRuntime().removeShutdownHook(killer);
            } catch (IllegalStateException ignored) {
                // the JVM is shutting down: the hook runs
            }
        }
    }

    /** torchrun's environment for local rank {@code local} of this node. */
    static Map<String, String> rankEnv(Spec spec, int local) {
        Map<String, String> env = new HashMap<>();
        env.put("RANK", String.valueOf(spec.nodeRank() * spec.nprocPerNode() + local));
        env.put("WORLD_SIZE", String.valueOf(spec.worldSize()));
        env.put("LOCAL_RANK", String.valueOf(local));
        env.put("LOCAL_WORLD_SIZE", String.valueOf(spec.nprocPerNode()));
        env.put("GROUP_RANK", String.valueOf(spec.nodeRank()));
        env.put("MASTER_ADDR", spec.masterAddr());
        env.put("MASTER_PORT", String.valueOf(spec.masterPort()));
        return env;
    }

    /** Copies a child's stream: rank 0's as it comes (progress bars redraw with \r), other ranks' line by line with a prefix. */
    private static Thread pump(InputStream in, PrintStream out, int rank) {
        Thread t = new Thread(() -> {
            try (in) {
                if (rank == 0) {
                    byte[] buf = new byte[8192];
                    for (int n; (n = in.read(buf)) > 0; ) {
                        synchronized (out) {
                            out.write(buf, 0, n);
                            out.flush();
                        }
                    }
                } else {
                    java.io.BufferedReader r = new java.io.BufferedReader(new java.io.InputStreamReader(in, StandardCharsets.UTF_8));
                    for (String line; (line = r.readLine()) != null; ) {
                        synchronized (out) {
                            out.println("[rank " + rank + "] " + line);
                        }
                    }
                }
            } catch (IOException ignored) {
                // the child is gone
            }
        }, "llava4j-rank-" + rank + "-output");
        t.setDaemon(true);
        t.start();
        return t;
    }
}
