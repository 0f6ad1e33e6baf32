package io.llava4j.cli;

import io.llava4j.dist.Comm;
import io.llava4j.dist.DistEnv;
import io.llava4j.dist.DistributedDataParallel;
import io.llava4j.dist.Launcher;
import io.llava4j.train.DataParallel;
import picocli.CommandLine.Option;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * Data-parallel training flags: torchrun's launcher flags ({@code --nproc_per_node} starts one JVM per rank) and HF
 * TrainingArguments' {@code --ddp_backend}, {@code --ddp_timeout}, {@code --ddp_bucket_cap_mb}. A process started with
 * torchrun's environment ({@code WORLD_SIZE}, {@code RANK}, …) joins that run as its rank.
 */
public final class DistOptions {
    static final Set<String> LAUNCHER_FLAGS = Set.of("--nproc_per_node", "--nnodes", "--node_rank", "--master_addr", "--master_port",
            "--num_gpus", "--num_nodes");

    @Option(names = "--nproc_per_node", description = "start this many ranks (JVMs) on this node, as torchrun") Integer nproc;
    @Option(names = "--nnodes", defaultValue = "1", description = "nodes in the run (torchrun)") int nnodes;
    @Option(names = "--node_rank", defaultValue = "0", description = "this node's index (torchrun)") int nodeRank;
    @Option(names = "--master_addr", defaultValue = "127.0.0.1", description = "address of node 0, where rank 0 serves the rendezvous (torchrun)") String masterAddr;
    @Option(names = "--master_port", defaultValue = "29500", description = "rendezvous port on --master_addr (torchrun)") int masterPort;
    // DeepSpeed's launcher flags, as LLaVA's scripts pass them to `deepspeed llava/train/train_mem.py`
    @Option(names = "--num_gpus", description = "DeepSpeed's launcher: ranks on this node (= --nproc_per_node)") Integer numGpus;
    @Option(names = "--num_nodes", description = "DeepSpeed's launcher: nodes (= --nnodes)") Integer numNodes;
    @Option(names = "--hostfile", description = "DeepSpeed's launcher: refused (start each node with --nnodes / --node_rank / --master_addr)") String hostfile;
    @Option(names = "--ddp_backend", description = "gloo (default; CPU) or nccl (CUDA GPUs)") String backend;
    @Option(names = "--ddp_timeout", defaultValue = "1800", description = "seconds a collective may take before every rank stops (HF's default 1800)") int timeout;
    @Option(names = "--ddp_bucket_cap_mb", defaultValue = "25", description = "gradient all-reduce bucket size in MiB (DDP's 25)") double bucketMb;

    /** True when this invocation starts the ranks (and trains in none of them). */
    boolean launches() {
        resolveDeepSpeedLauncher();
        return nproc != null;
    }

    /**
     * {@code --num_gpus N} / {@code --num_nodes N} are DeepSpeed's names for {@code --nproc_per_node} / {@code --nnodes};
     * a {@code --hostfile} (ssh to each host) is refused with what to do instead.
     */
    private void resolveDeepSpeedLauncher() {
        if (hostfile != null)
            throw new IllegalArgumentException("--hostfile " + hostfile + ": llava4j does not start ranks on other hosts over ssh; "
                    + "run the same command on each node with --nproc_per_node N --nnodes M --node_rank I --master_addr HOST0");
        if (numGpus != null) {
            if (nproc != null && !nproc.equals(numGpus))
                throw new IllegalArgumentException("--num_gpus " + numGpus + " and --nproc_per_node " + nproc + " disagree: give one");
            nproc = numGpus;
        }
        if (numNodes != null) {
            if (nnodes != 1 && nnodes != numNodes)
                throw new IllegalArgumentException("--num_nodes " + numNodes + " and --nnodes " + nnodes + " disagree: give one");
            nnodes = numNodes;
        }
    }

    /** The run's world size: torchrun's WORLD_SIZE in a rank, the launcher flags in the launching process, else 1. */
    int worldSize() {
        resolveDeepSpeedLauncher();
        String w = System.getenv("WORLD_SIZE");
        if (w != null && !w.isBlank()) {
            try {
                return Integer.parseInt(w.trim());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("environment variable WORLD_SIZE=" + w + " is not a number");
            }
        }
        return nproc == null ? 1 : nproc * nnodes;
    }

    /** Starts one JVM per local rank with {@code original} minus the launcher flags; returns the run's exit code. */
    int launch(List<String> original, DeviceOption device) throws Exception {
        backend(device);
        if (System.getenv("WORLD_SIZE") != null)
            throw new IllegalArgumentException("--nproc_per_node in a process that already is a rank (WORLD_SIZE is set)");
        Launcher.Spec spec = new Launcher.Spec(nproc, nnodes, nodeRank, masterAddr, masterPort);
        return Launcher.launch(spec, Main.class.getName(), childArgs(original));
    }

    /** {@code original} (picocli's original arguments, from "train" on) without the launcher's flags: each rank's command line. */
    static List<String> childArgs(List<String> original) {
        List<String> child = new ArrayList<>();
        for (int i = 0; i < original.size(); i++) {
            String a = original.get(i);
            String name = a.contains("=") ? a.substring(0, a.indexOf('=')) : a;
            if (LAUNCHER_FLAGS.contains(name)) {
                if (!a.contains("=")) i++; // its value
                continue;
            }
            child.add(a);
        }
        return child;
    }

    /** The backend: --ddp_backend, else nccl on CUDA and gloo on the CPU (as PyTorch); refused where it cannot run. */
    private String backend(DeviceOption device) {
        boolean cuda = device.device.startsWith("cuda");
        String b = backend == null ? (cuda ? "nccl" : "gloo") : backend;
        if (!b.equals("gloo") && !b.equals("nccl"))
            throw new IllegalArgumentException("--ddp_backend " + b + ": use gloo (CPU) or nccl (CUDA GPUs)");
        if (b.equals("nccl") && !org.bytedeco.pytorch.global.torch.cuda_is_available())
            throw new IllegalArgumentException("--ddp_backend nccl needs CUDA GPUs and the GPU build (mvn -Pgpu package); "
                    + "this machine has none: use --ddp_backend gloo");
        if (b.equals("nccl") && !cuda)
            throw new IllegalArgumentException("--ddp_backend nccl all-reduces CUDA tensors: add --device cuda (rank r uses "
                    + "cuda:LOCAL_RANK), or use --ddp_backend gloo");
        return b;
    }

    /**
     * This process's rank from torchrun's environment, joined to the process group (ZeRO for a {@code --deepspeed}
     * file of stage 1, 2 or 3, else DDP); one process without it.
     */
    DataParallel join(DeviceOption device, io.llava4j.config.DeepSpeedConfig deepspeed) {
        DistEnv env = DistEnv.of(System.getenv());
        String b = backend(device);
        if (env == null) return DataParallel.SINGLE;
        if (timeout < 1) throw new IllegalArgumentException("--ddp_timeout must be >= 1 second, got " + timeout);
        if (b.equals("nccl") && device.device.equals("cuda")) device.device = "cuda:" + env.localRank(); // one GPU per rank
        device.apply();
        Comm comm = Comm.connect(env, b, Duration.ofSeconds(timeout));
        if (deepspeed != null && deepspeed.stage() == 3) return new io.llava4j.dist.Zero3DataParallel(comm);
        if (deepspeed != null && deepspeed.stage() >= 1) // ZeRO: "auto" buckets are sized from the model once it is known
            return new io.llava4j.dist.ZeroDataParallel(comm, deepspeed.stage(), Math.max(0, deepspeed.reduceBucketSize()),
                    deepspeed.overlapComm());
        return new DistributedDataParallel(comm, (long) (bucketMb * 1024 * 1024));
    }
}
