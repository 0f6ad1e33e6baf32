package io.llava4j.cli;

import io.llava4j.TestData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** The data-parallel flags: what each rank's command line keeps, and backends refused before any rank starts. */
class DistOptionsTest {

    @Test
    void ranksGetTheCommandLineWithoutTheLauncherFlags() {
        assertEquals(List.of("train", "--output_dir", "o", "--ddp_backend", "gloo", "--seed=3"),
                DistOptions.childArgs(List.of("train", "--nproc_per_node", "2", "--output_dir", "o", "--nnodes=2",
                        "--node_rank", "1", "--ddp_backend", "gloo", "--master_addr", "10.0.0.1", "--master_port=29501", "--seed=3")));
    }

    @Test
    void ncclWithoutCudaAndUnknownBackendsAreRefused(@TempDir Path tmp) {
        List<String> base = List.of("train", "--model_name_or_path", TestData.tinyLlava().toString(),
                "--data_path", TestData.tinyData().resolve("pretrain.json").toString(), "--output_dir", tmp.toString(),
                "--tune_mm_mlp_adapter", "True", "--max_steps", "1");
        String nccl = run(base, "--nproc_per_node", "2", "--ddp_backend", "nccl");
        assertTrue(nccl.contains("error: --ddp_backend nccl needs CUDA GPUs"), nccl);
        String mpi = run(base, "--ddp_backend", "mpi");
        assertTrue(mpi.contains("error: --ddp_backend mpi: use gloo (CPU) or nccl (CUDA GPUs)"), mpi);
        String nodes = run(base, "--nproc_per_node", "1", "--nnodes", "2", "--node_rank", "2");
        assertTrue(nodes.contains("error: --node_rank 2 must be in [0, --nnodes 2)"), nodes);
    }

    /** DeepSpeed's launcher flags map onto torchrun's; --hostfile is refused; the --deepspeed file is checked against their world size. */
    @Test
    void deepSpeedLauncherFlags(@TempDir Path tmp) throws Exception {
        assertEquals(List.of("train", "--output_dir", "o"), DistOptions.childArgs(List.of("train", "--num_gpus", "2", "--output_dir", "o", "--num_nodes=1")));
        List<String> base = List.of("train", "--model_name_or_path", TestData.tinyLlava().toString(),
                "--data_path", TestData.tinyData().resolve("pretrain.json").toString(), "--output_dir", tmp.resolve("o").toString(),
                "--tune_mm_mlp_adapter", "True", "--max_steps", "1", "--per_device_train_batch_size", "2");
        String nodes = run(base, "--num_gpus", "1", "--num_nodes", "2", "--node_rank", "2");
        assertTrue(nodes.contains("error: --node_rank 2 must be in [0, --nnodes 2)"), nodes);
        String host = run(base, "--hostfile", "hosts.txt", "--num_gpus", "2");
        assertTrue(host.contains("error: --hostfile hosts.txt: llava4j does not start ranks on other hosts over ssh"), host);
        String both = run(base, "--num_gpus", "2", "--nproc_per_node", "3");
        assertTrue(both.contains("error: --num_gpus 2 and --nproc_per_node 3 disagree"), both);
        Path ds = tmp.resolve("ds.json");
        java.nio.file.Files.writeString(ds, "{\"train_batch_size\": 4, \"zero_optimization\": {\"stage\": 2}}");
        String world = run(base, "--num_gpus", "3", "--deepspeed", ds.toString()); // 2 × 3 ranks = 6, not 4: refused before any rank starts
        assertTrue(world.contains("train_batch_size=4 vs --train_batch_size (world 3 x micro-batch x accumulation)=6"), world);
        assertFalse(world.contains("launcher:"), world);
    }

    private static String run(List<String> base, String... more) {
        PrintStream err = System.err;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        System.setErr(new PrintStream(buf, true, StandardCharsets.UTF_8));
        try {
            java.util.List<String> args = new java.util.ArrayList<>(base);
            args.addAll(List.of(more));
            assertEquals(1, Main.run(args.toArray(new String[0])));
        } finally {
            System.setErr(err);
        }
        return buf.toString(StandardCharsets.UTF_8);
    }
}
