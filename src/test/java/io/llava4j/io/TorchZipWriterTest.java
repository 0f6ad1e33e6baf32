package io.llava4j.io;

import io.llava4j.bench.SparseCheckpoints;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/** torch.save's zip format written by llava4j: read back by our reader, by PyTorch (when installed), and past 4 GiB. */
class TorchZipWriterTest {

    static Map<String, HostTensor> sample() {
        Map<String, HostTensor> m = new LinkedHashMap<>();
        m.put("model.mm_projector.0.weight", HostTensor.ofFloats(new long[]{2, 3}, new float[]{1, -2, 3.5f, 4, 5, 6}));
        ByteBuffer h = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < 4; i++) h.putShort((short) (0x3c00 + i)); // fp16 1.0, 1.0009765625, ...
        m.put("half", new HostTensor(DType.F16, new long[]{4}, h.flip()));
        m.put("ids", HostTensor.ofLongs(new long[]{3}, new long[]{-1, 0, 1L << 40}));
        return m;
    }

    @Test
    void roundTripsThroughTheReader(@TempDir Path tmp) throws Exception {
        Path f = tmp.resolve("mm_projector.bin");
        TorchZipWriter.write(f, sample());
        assertTrue(TorchPickleReader.isTorchZip(f));
        Map<String, HostTensor> back = TorchPickleReader.read(f);
        assertEquals(List.copyOf(sample().keySet()), List.copyOf(back.keySet()));
        sample().forEach((k, v) -> {
            assertEquals(v.dtype(), back.get(k).dtype(), k);
            assertArrayEquals(v.shape(), back.get(k).shape(), k);
            assertEquals(v.data(), back.get(k).data(), k);
        });
    }

    @Test
    void pytorchLoadsItWithWeightsOnly(@TempDir Path tmp) throws Exception {
        Path python = Path.of("/usr/bin/python3");
        Assumptions.assumeTrue(Files.isExecutable(python), "no /usr/bin/python3");
        Process probe = new ProcessBuilder(python.toString(), "-c", "import torch").start();
        Assumptions.assumeTrue(probe.waitFor(60, TimeUnit.SECONDS) && probe.exitValue() == 0, "no PyTorch (python3-torch)");
        Path f = tmp.resolve("mm_projector.bin");
        TorchZipWriter.write(f, sample());
        Process p = new ProcessBuilder(python.toString(), "-c", "import torch, sys\n"
                + "d = torch.load(sys.argv[1], weights_only=True)\n"
                + "print(list(d), d['model.mm_projector.0.weight'].tolist(), d['half'].dtype, d['half'].tolist(), d['ids'].tolist())",
                f.toString()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(120, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), out);
        assertEquals("['model.mm_projector.0.weight', 'half', 'ids'] [[1.0, -2.0, 3.5], [4.0, 5.0, 6.0]] torch.float16 "
                + "[1.0, 1.0009765625, 1.001953125, 1.0029296875] [-1, 0, 1099511627776]", out.trim());
    }

    @Test
    void archivesPastFourGibUseZip64(@TempDir Path tmp) throws Exception {
        Path f = tmp.resolve("big.bin");
        long n = 768L << 20; // F16 values: three storages of 1.5 GiB each, holes in the file
        Map<String, TorchZipWriter.Tensor> t = new LinkedHashMap<>();
        t.put("small", new TorchZipWriter.Tensor(DType.F16, new long[]{4}, SparseCheckpoints.hole(8)));
        for (int i = 0; i < 3; i++)
            t.put("big" + i, new TorchZipWriter.Tensor(DType.F16, new long[]{n / 1024, 1024}, SparseCheckpoints.hole(2 * n)));
        t.put("after", new TorchZipWriter.Tensor(DType.F16, new long[]{2}, SparseCheckpoints.hole(4)));
        TorchZipWriter.writeTensors(f, t);
        assertTrue(Files.size(f) > (4L << 30));
        Map<String, HostTensor> back = TorchPickleReader.read(f);
        assertArrayEquals(new long[]{n / 1024, 1024}, back.get("big2").shape());
        assertArrayEquals(new long[]{2}, back.get("after").shape()); // its entry lies past 4 GiB
        assertEquals(0, back.get("after").data().getShort(2));
    }
}
