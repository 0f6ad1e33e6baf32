package io.llava4j.dist;

import io.llava4j.TestData;
import io.llava4j.io.HostTensor;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Two "hosts": two network namespaces joined by a veth pair (private addresses of the test's own namespaces), one
 * node of {@code --nnodes 2} in each, rendezvous at node 0's address. The run equals one process with the global
 * batch (stage 1 and stage 2 with DDP, stage 2 with ZeRO-2 and {@code overlap_comm} and with ZeRO-3), and the bytes that crossed the
 * veth in stage 1 are far fewer than the frozen LLM's.
 * Skipped where network namespaces cannot be made (not root, no {@code ip}).
 */
class TwoHostsTest {
    private static final String ADDR0 = "10.231.77.1", ADDR1 = "10.231.77.2";

    @Test
    void twoNamespacesEqualOneProcess(@TempDir Path tmp) throws Exception {
        String id = Long.toString(ProcessHandle.current().pid() % 100000);
        String ns0 = "llava4j-t" + id + "-0", ns1 = "llava4j-t" + id + "-1", veth0 = "l4j" + id + "a", veth1 = "l4j" + id + "b";
        try {
            Assumptions.assumeTrue(ip("netns", "add", ns0) == 0,
                    "skipped: cannot create a network namespace here (needs root and iproute2's ip)");
            assertEquals(0, ip("netns", "add", ns1));
            assertEquals(0, ip("link", "add", veth0, "netns", ns0, "type", "veth", "peer", "name", veth1, "netns", ns1));
            assertEquals(0, ip("-n", ns0, "addr", "add", ADDR0 + "/24", "dev", veth0));
            assertEquals(0, ip("-n", ns1, "addr", "add", ADDR1 + "/24", "dev", veth1));
            for (String[] nd : new String[][]{{ns0, veth0}, {ns1, veth1}}) {
                assertEquals(0, ip("-n", nd[0], "link", "set", nd[1], "up"));
                assertEquals(0, ip("-n", nd[0], "link", "set", "lo", "up"));
            }

            long tx0 = txBytes(ns0, veth0);
            int steps = 4;
            runBoth(tmp, ns0, ns1, false, steps, null);
            long crossed = txBytes(ns0, veth0) - tx0;
            Map<String, HostTensor> model = TestData.tensors(TestData.tinyLlava().resolve("model.safetensors"));
            long projector = 0, llm = 0;
            for (Map.Entry<String, HostTensor> e : model.entrySet()) {
                long n = 1;
                for (long d : e.getValue().shape()) n *= d;
                if (e.getKey().startsWith("multi_modal_projector.")) projector += 4 * n;
                else if (e.getKey().startsWith("language_model.")) llm += 4 * n;
            }
            // ring all-reduce with 2 ranks: each rank sends the payload once a step, plus rendezvous, headers, scalars
            assertTrue(crossed >= steps * projector, "node 0 sent " + crossed + " B in " + steps + " steps of " + projector + " B");
            assertTrue(crossed < llm, "node 0 sent " + crossed + " B: as much as the frozen LLM (" + llm + " B)");

            runBoth(tmp, ns0, ns1, true, 3, null);
            // ZeRO-2 with overlap_comm on the same two hosts, against the same one-process run
            runBoth(tmp, ns0, ns1, true, 3, ZeroTrainingTest.config(tmp, 2, 30_000, true));
            // ZeRO-3: every decoder layer gathered twice and reduce-scattered once a micro-batch, across the hosts
            runBoth(tmp, ns0, ns1, true, 3, ZeroTrainingTest.config(tmp, 3, 30_000, true));
        } finally {
            ip("netns", "del", ns0); // its veth end goes with it, and the peer with that
            ip("netns", "del", ns1);
        }
    }

    /**
     * One process with the global batch here (once per stage), then node 0 and node 1 in their namespaces (DDP, or ZeRO
     * with the {@code deepspeed} file); compares the two.
     */
    private static void runBoth(Path tmp, String ns0, String ns1, boolean stage2, int steps, Path deepspeed) throws Exception {
        String stage = stage2 ? "stage2" : "stage1";
        Path data = DdpRuns.data(tmp.resolve(stage), stage2);
        Path one = tmp.resolve(stage).resolve("one"), two = tmp.resolve(stage).resolve(deepspeed == null ? "two" : "two-" + name(deepspeed));
        // stage 2 with --gradient_checkpointing: one backward per decoder layer, gradient hooks firing in each
        List<String> extra = new ArrayList<>(stage2 ? List.of("--gradient_checkpointing", "True", "--ddp_bucket_cap_mb", "0.1") : List.of());
        if (deepspeed != null) extra.addAll(List.of("--deepspeed", deepspeed.toString()));
        List<String> refFlags = new ArrayList<>(DdpRuns.flags(data, one, stage2, stage2 ? 2 : 4, 1, steps));
        if (stage2) refFlags.addAll(List.of("--gradient_checkpointing", "True"));
        if (!Files.exists(one.resolve("log.jsonl"))) {
            DdpRuns.Result ref = DdpRuns.cli(refFlags);
            assertEquals(0, ref.code(), ref.output());
        }
        int port = DdpRuns.freePort();
        List<Process> nodes = new ArrayList<>();
        List<Path> logs = new ArrayList<>();
        for (int node = 0; node < 2; node++) {
            List<String> f = DdpRuns.flags(data, two, stage2, stage2 ? 1 : 2, 1, steps);
            f.add("--ddp_timeout=60");
            f.addAll(extra);
            // stage 1 through the launcher (torchrun's flags); stage 2 as ranks started by another launcher (torchrun's variables)
            if (!stage2) f.addAll(List.of("--nproc_per_node", "1", "--nnodes", "2", "--node_rank", String.valueOf(node),
                    "--master_addr", ADDR0, "--master_port", String.valueOf(port)));
            List<String> cmd = new ArrayList<>(List.of("ip", "netns", "exec", node == 0 ? ns0 : ns1));
            cmd.addAll(DdpRuns.javaCommand(f));
            Path log = tmp.resolve(stage + (deepspeed == null ? "" : "-" + name(deepspeed)) + "-node" + node + ".txt");
            logs.add(log);
            ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
            if (stage2) pb.environment().putAll(Map.of("RANK", String.valueOf(node), "WORLD_SIZE", "2", "LOCAL_RANK", "0",
                    "MASTER_ADDR", ADDR0, "MASTER_PORT", String.valueOf(port), "OMP_NUM_THREADS", "1"));
            nodes.add(pb.start());
        }
        for (int node = 0; node < 2; node++) {
            Process p = nodes.get(node);
            if (!p.waitFor(240, TimeUnit.SECONDS)) {
                nodes.forEach(Process::destroyForcibly);
                fail("node " + node + " did not finish: " + Files.readString(logs.get(node)));
            }
            assertEquals(0, p.exitValue(), "node " + node + ": " + Files.readString(logs.get(node)));
        }
        DdpRuns.assertSameLosses(DdpRuns.log(one), DdpRuns.log(two), 1e-5);
        DdpRuns.assertSameTensors(DdpRuns.written(one, stage2), DdpRuns.written(two, stage2), 1e-5);
        boolean zero3 = deepspeed != null && name(deepspeed).startsWith("zero3");
        if (stage2 && !zero3)
            for (com.fasterxml.jackson.databind.JsonNode s : DdpRuns.log(two))
                assertTrue(s.get("buckets_started_in_backward").asLong() >= 1, "no bucket started during the backward: " + s);
        if (deepspeed != null) {
            assertTrue(Files.readString(logs.get(0)).contains("ZeRO stage " + (zero3 ? 3 : 2) + ": 2 ranks"), Files.readString(logs.get(0)));
            for (com.fasterxml.jackson.databind.JsonNode s : DdpRuns.log(two))
                assertTrue(s.get("reduce_scatter_grad_bytes").asLong() > 0, s.toString());
        }
    }

    /** "zero2-overlap" for zero2-overlap.json. */
    private static String name(Path deepspeed) {
        String f = deepspeed.getFileName().toString();
        return f.substring(0, f.length() - ".json".length());
    }

    private static int ip(String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("ip"));
        cmd.addAll(List.of(args));
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            int code = p.waitFor();
            if (code != 0) System.err.println("ip " + String.join(" ", args) + ": " + out.strip());
            return code;
        } catch (IOException e) { // no ip binary
            System.err.println("ip: " + e.getMessage());
            return -1;
        }
    }

    private static long txBytes(String ns, String dev) throws IOException, InterruptedException {
        Process p = new ProcessBuilder("ip", "netns", "exec", ns, "cat", "/sys/class/net/" + dev + "/statistics/tx_bytes").start();
        String s = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
        assertEquals(0, p.waitFor());
        return Long.parseLong(s);
    }
}
