package io.llava4j.cli;

import io.llava4j.TestData;
import io.llava4j.engine.Device;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/**
 * --device on a build or machine without CUDA: cpu runs; cuda is refused with a message that says how to get it. This
 * test never runs the CUDA path (it is skipped where CUDA is available); nothing in the suite does.
 */
class DeviceOptionWithoutCudaTest {

    @Test
    void cudaIsRefusedOnTheCpuBuildAndCpuWorks(@TempDir Path tmp) throws Exception {
        org.junit.jupiter.api.Assumptions.assumeFalse(org.bytedeco.pytorch.global.torch.cuda_is_available(), "a GPU build");
        PrintStream err = System.err;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        System.setErr(new PrintStream(buf, true));
        int rc;
        try {
            rc = Main.run("inspect", "--model_name_or_path", TestData.tinyLlava().toString(), "--device", "cuda");
        } finally {
            System.setErr(err);
        }
        assertEquals(1, rc);
        assertTrue(buf.toString().contains("--device cuda") && buf.toString().contains("-Pgpu"), buf.toString());
        assertThrows(IllegalArgumentException.class, () -> Device.use("tpu"));
        assertEquals(0, Main.run("score", "--device", "cpu", "--model_name_or_path", TestData.tinyLlava().toString(),
                "--data_path", TestData.tinyData().resolve("pretrain.json").toString(), "--image_folder",
                TestData.tinyData().resolve("images").toString(), "--version", "plain", "--output_json", tmp.resolve("s.json").toString()));
        assertTrue(Device.isCpu());
        assertTrue(Files.isRegularFile(tmp.resolve("s.json")));
    }
}
