package io.llava4j.dist;

import io.llava4j.engine.Engine;
import org.bytedeco.javacpp.chrono.Milliseconds;
import org.bytedeco.pytorch.AllreduceOptions;
import org.bytedeco.pytorch.Backend;
import org.bytedeco.pytorch.BroadcastOptions;
import org.bytedeco.pytorch.GlooDeviceVector;
import org.bytedeco.pytorch.ProcessGroupGloo;
import org.bytedeco.pytorch.TCPStore;
import org.bytedeco.pytorch.TCPStoreOptions;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.Work;
import org.bytedeco.pytorch.global.torch;

import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.time.Duration;

/**
 * One rank's c10d process group: a {@link TCPStore} at {@code MASTER_ADDR:MASTER_PORT} (rank 0 serves it, as
 * {@code init_process_group("env://")}) and a Gloo (CPU) or NCCL (CUDA) backend, with every collective bounded by
 * {@code timeout}. A collective that fails (a peer died: Gloo sees the closed connection at once; a peer hangs: Gloo's
 * timeout) throws a {@link DistException} that names the rank and what it was doing. A watchdog thread stops the JVM
 * if a collective outlives the timeout anyway, or when the launcher that started this rank is gone.
 */
public final class Comm implements AutoCloseable {
    private final DistEnv env;
    private final String backendName;
    private final Duration timeout;
    private final TCPStore store;
    private final Backend pg;
    private long bytes; // payload handed to all-reduce and broadcast since the last take
    private volatile long busySince; // nanoTime a collective began, 0 when none runs
    private volatile String busyWith = "";
    private final Thread watchdog;

    private Comm(DistEnv env, String backendName, Duration timeout) {
        this.env = env;
        this.backendName = backendName;
        this.timeout = timeout;
        Engine.init();
        if (backendName.equals("nccl") && !torch.cuda_is_available())
            throw new IllegalArgumentException("--ddp_backend nccl needs CUDA GPUs (and the GPU build, mvn -Pgpu package); "
                    + "this JVM sees none: use --ddp_backend gloo");
        if (!backendName.equals("gloo") && !backendName.equals("nccl"))
            throw new IllegalArgumentException("--ddp_backend " + backendName + ": use gloo (CPU) or nccl (CUDA GPUs)");
        watchdog = new Thread(this::watch, "llava4j-ddp-watchdog");
        watchdog.setDaemon(true);
        watchdog.start();
        busy("connecting to the rendezvous at " + env.masterAddr() + ":" + env.masterPort());
        try {
            TCPStoreOptions so = new TCPStoreOptions();
            so.port((short) env.masterPort()); // c10d's uint16_t: ports above 32767 wrap to the same bits
            so.isServer(env.rank() == 0);
            so.waitWorkers(false);
            so.timeout(new Milliseconds(timeout.toMillis()));
            store = new TCPStore(env.masterAddr(), so);
            if (backendName.equals("gloo")) {
                ProcessGroupGloo.Options o = new ProcessGroupGloo.Options(new Milliseconds(timeout.toMillis()));
                o.devices(new GlooDeviceVector(glooDevice(env)));
                pg = new ProcessGroupGloo(store, env.rank(), env.worldSize(), o);
            } else {
                org.bytedeco.pytorch.nccl.ProcessGroupNCCL.Options o = new org.bytedeco.pytorch.nccl.ProcessGroupNCCL.Options();
                o.timeout(new Milliseconds(timeout.toMillis()));
                pg = new org.bytedeco.pytorch.nccl.ProcessGroupNCCL(store, env.rank(), env.worldSize(), o);
            }
        } catch (RuntimeException e) {
            throw new DistException(env, "could not join the process group at " + env.masterAddr() + ":" + env.masterPort()
                    + " within " + timeout.toSeconds() + " s", e);
        } finally {
            idle();
        }
    }

    /** Joins the process group of {@code env} ({@code backend} gloo or nccl); every collective is bounded by {@code timeout}. */
    public static Comm connect(DistEnv env, String backend, Duration timeout) {
        return new Comm(env, backend, timeout);
    }

    public DistEnv env() {
        return env;
    }

    public String backend() {
        return backendName;
    }

    public Duration timeout() {
        return timeout;
    }

    /** Starts a sum all-reduce of {@code t} in place; {@link #await} finishes it. */
    public Work allreduceAsync(Tensor t, String what) {
        bytes += t.numel() * t.element_size();
        busy(what);
        try {
            Work w = pg.allreduce(new TensorVector(t), new AllreduceOptions());
            w.retainReference(); // may start inside a micro-batch's PointerScope (a backward hook) and finish after it: await releases it
            return w;
        } catch (RuntimeException e) {
            idle();
            throw new DistException(env, what + " failed", e);
        }
    }

    /** Waits for {@code w}; a failure (a peer died or timed out) becomes a {@link DistException}. */
    public void await(Work w, String what) {
        try {
            w._wait();
        } catch (RuntimeException e) {
            throw new DistException(env, what + " failed", e);
        } finally {
            w.releaseReference();
            idle();
        }
    }

    /** Sum all-reduce of {@code t} in place. */
    public void allreduce(Tensor t, String what) {
        await(allreduceAsync(t, what), what);
    }

    /** Starts a sum reduce-scatter: {@code out} [n] gets part {@code rank} of the ranks' summed {@code in} [W·n]. */
    public Work reduceScatterAsync(Tensor out, Tensor in, String what) {
        bytes += in.numel() * in.element_size();
        busy(what);
        try {
            Work w = pg._reduce_scatter_base(out, in, new org.bytedeco.pytorch.ReduceScatterOptions());
            w.retainReference();
            return w;
        } catch (RuntimeException e) {
            idle();
            throw new DistException(env, what + " failed", e);
        }
    }

    /** Starts an all-gather: {@code out} [W·n] gets every rank's {@code in} [n], in rank order. */
    public Work allgatherAsync(Tensor out, Tensor in, String what) {
        bytes += out.numel() * out.element_size();
        busy(what);
        try {
            Work w = pg._allgather_base(out, in, new org.bytedeco.pytorch.AllgatherOptions());
            w.retainReference();
            return w;
        } catch (RuntimeException e) {
            idle();
            throw new DistException(env, what + " failed", e);
        }
    }

    /** The sum over ranks of {@code v}, exactly (one float64 all-reduce). */
    public double sum(double v, String what) {
        try (org.bytedeco.javacpp.PointerScope scope = new org.bytedeco.javacpp.PointerScope()) {
            Tensor t = torch.empty(new long[]{1}, new org.bytedeco.pytorch.TensorOptions(torch.ScalarType.Double), null); // [1] float64
            t.data_ptr_double().put(v);
            t = io.llava4j.engine.Device.place(t);
            allreduce(t, what);
            return t.item_double();
        }
    }

    /** Rank 0's {@code t} everywhere. */
    public void broadcast(Tensor t, String what) {
        bytes += t.numel() * t.element_size();
        busy(what);
        try {
            pg.broadcast(new TensorVector(t), new BroadcastOptions().rootRank(0))._wait();
        } catch (RuntimeException e) {
            throw new DistException(env, what + " failed", e);
        } finally {
            idle();
        }
    }

    /** Bytes of the tensors handed to collectives since the last call. */
    public long takeBytes() {
        long b = bytes;
        bytes = 0;
        return b;
    }

    private void busy(String what) {
        busyWith = what;
        busySince = System.nanoTime();
    }

    private void idle() {
        busySince = 0;
    }

    /**
     * Stops this JVM when a collective runs more than the timeout plus a grace period (Gloo should have thrown by then),
     * or when the launcher that started it ({@code LLAVA4J_LAUNCHER_PID}) is gone: no rank outlives its run.
     */
    private void watch() {
        long limit = timeout.toNanos() + Duration.ofSeconds(15).toNanos();
        java.util.Optional<ProcessHandle> launcher = launcher();
        while (true) {
            try {
                Thread.sleep(500);
            } catch (InterruptedException e) {
                return;
            }
            long since = busySince;
            if (since != 0 && System.nanoTime() - since > limit) {
                System.err.printf("%nerror: rank %d of %d: %s has not finished in %d s (--ddp_timeout %d): another rank is "
                                + "gone or stuck; stopping this rank%n", env.rank(), env.worldSize(), busyWith,
                        (System.nanoTime() - since) / 1_000_000_000L, timeout.toSeconds());
                Runtime.getRuntime().halt(1);
            }
            if (launcher.isPresent() && !launcher.get().isAlive()) {
                System.err.printf("%nerror: rank %d of %d: its launcher (pid %d) is gone; stopping this rank%n",
                        env.rank(), env.worldSize(), launcher.get().pid());
                Runtime.getRuntime().halt(1);
            }
        }
    }

    private static java.util.Optional<ProcessHandle> launcher() {
        String pid = System.getenv(Launcher.PID_VARIABLE);
        if (pid == null) return java.util.Optional.empty();
        try {
            return ProcessHandle.of(Long.parseLong(pid));
        } catch (NumberFormatException e) {
            return java.util.Optional.empty();
        }
    }

    /**
     * The Gloo device this rank listens on: the interface named by {@code GLOO_SOCKET_IFNAME} (as PyTorch), else the
     * local address this host uses to reach {@code MASTER_ADDR} (so ranks on other hosts can connect back).
     */
    static org.bytedeco.pytorch.gloo.Device glooDevice(DistEnv env) {
        String ifname = System.getenv("GLOO_SOCKET_IFNAME");
        if (ifname != null && !ifname.isBlank()) return ProcessGroupGloo.createDeviceForInterface(ifname.split(",")[0]);
        return ProcessGroupGloo.createDeviceForHostname(localAddressTowards(env.masterAddr(), env.masterPort()));
    }

    static String localAddressTowards(String host, int port) {
        try (DatagramSocket s = new DatagramSocket()) {
            InetAddress target = InetAddress.getByName(host);
            if (target.isLoopbackAddress()) return target.getHostAddress();
            s.connect(new InetSocketAddress(target, port)); // no packet is sent: the kernel picks the route's source address
            return s.getLocalAddress().getHostAddress();
        } catch (java.io.IOException e) {
            throw new IllegalArgumentException("MASTER_ADDR " + host + ": cannot route to it (" + e.getMessage() + ")");
        }
    }

    @Override
    public void close() {
        watchdog.interrupt();
    }
}
