package io.llava4j.cli;

import io.llava4j.TestData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Every command, given bad input, prints one clear message and exits non-zero, never a Java stack trace; --debug
 * adds the trace.
 */
class CliErrorsTest {
    record Result(int rc, String out, String err) {}

    static Result run(String... args) {
        PrintStream out = System.out, err = System.err;
        ByteArrayOutputStream o = new ByteArrayOutputStream(), e = new ByteArrayOutputStream();
        System.setOut(new PrintStream(o, true));
        System.setErr(new PrintStream(e, true));
        try {
            return new Result(Main.run(args), o.toString(), e.toString());
        } finally {
            System.setOut(out);
            System.setErr(err);
        }
    }

    /** rc != 0, the message names {@code culprit}, and no stack trace. */
    static void fails(String culprit, String... args) {
        Result r = run(args);
        String all = r.out() + r.err();
        assertNotEquals(0, r.rc(), String.join(" ", args) + "\n" + all);
        assertFalse(all.contains("\tat ") || all.contains("Exception in thread") || all.matches("(?s).*\\bat [a-z]+\\.[a-z].*\\(.*\\.java:\\d+\\).*"),
                "stack trace for " + String.join(" ", args) + ":\n" + all);
        assertTrue(r.err().contains(culprit), "'" + culprit + "' not named for " + String.join(" ", args) + ":\n" + r.err());
    }

    static String[] cmd(String command, String... args) {
        List<String> a = new ArrayList<>(List.of(command));
        a.addAll(List.of(args));
        return a.toArray(new String[0]);
    }

    @Test
    void everyCommandAnswersBadInputInOneLine(@TempDir Path dir) throws Exception {
        String model = TestData.tinyLlava().toString(), data = TestData.tinyData().resolve("finetune.json").toString(),
                images = TestData.tinyData().resolve("images").toString(), image = TestData.tinyData().resolve("images/img0.png").toString();
        Path noModel = dir.resolve("no-model"), empty = Files.createDirectories(dir.resolve("empty"));
        Path badConfig = Files.createDirectories(dir.resolve("bad-config"));
        Files.writeString(badConfig.resolve("config.json"), "{\"model_type\": ");
        Path noWeights = Files.createDirectories(dir.resolve("no-weights"));
        Files.copy(TestData.tinyLlava().resolve("config.json"), noWeights.resolve("config.json"));
        Path aFile = Files.writeString(dir.resolve("a-file"), "x");
        Path junkImage = Files.writeString(dir.resolve("junk.png"), "not a png");
        String out = dir.resolve("out").toString();

        // train
        fails("--data_path", cmd("train", "--model_name_or_path", model, "--output_dir", out));
        fails("nope.json", cmd("train", "--model_name_or_path", model, "--data_path", dir.resolve("nope.json").toString(), "--output_dir", out));
        fails(noModel.toString(), cmd("train", "--model_name_or_path", noModel.toString(), "--data_path", data, "--output_dir", out));
        fails("--per_device_train_batch_size", cmd("train", "--model_name_or_path", model, "--data_path", data, "--output_dir", out,
                "--per_device_train_batch_size", "0"));
        fails("--learning_rate", cmd("train", "--model_name_or_path", model, "--data_path", data, "--output_dir", out, "--learning_rate", "fast"));
        fails("--on_bad_sample", cmd("train", "--model_name_or_path", model, "--data_path", data, "--output_dir", out, "--on_bad_sample", "maybe"));
        fails("--image_folder", cmd("train", "--model_name_or_path", model, "--data_path", data, "--output_dir", out));
        fails(aFile.toString(), cmd("train", "--model_name_or_path", model, "--data_path", data, "--image_folder", images,
                "--output_dir", aFile.resolve("sub").toString(), "--max_steps", "1"));
        // score
        fails(noModel.toString(), cmd("score", "--model_name_or_path", noModel.toString(), "--data_path", data, "--output_json", out));
        fails(badConfig.resolve("config.json").toString(), cmd("score", "--model_name_or_path", badConfig.toString(), "--data_path", data, "--output_json", out));
        fails("nope.json", cmd("score", "--model_name_or_path", model, "--data_path", dir.resolve("nope.json").toString(), "--output_json", out));
        // inspect
        fails(empty.toString(), cmd("inspect", "--model_name_or_path", empty.toString()));
        fails(noWeights.toString(), cmd("inspect", "--model_name_or_path", noWeights.toString()));
        fails("--bf16", cmd("inspect", "--model_name_or_path", model, "--bf16", "--fp16"));
        // generate
        fails("nope.png", cmd("generate", "--model_name_or_path", model, "--image", dir.resolve("nope.png").toString(), "--prompt", "What?"));
        fails(junkImage.toString(), cmd("generate", "--model_name_or_path", model, "--image", junkImage.toString(), "--prompt", "What?"));
        fails("bogus", cmd("generate", "--model_name_or_path", model, "--image", image, "--prompt", "What?", "--conv_mode", "bogus"));
        fails("temperature", cmd("generate", "--model_name_or_path", model, "--prompt", "What?", "--temperature", "-1"));
        // chat
        fails(noModel.toString(), cmd("chat", "--model_name_or_path", noModel.toString(), "--image", image));
        fails("nope.png", cmd("chat", "--model_name_or_path", model, "--image", dir.resolve("nope.png").toString()));
        // serve
        fails(noModel.toString(), cmd("serve", "--model_name_or_path", noModel.toString()));
        fails("--port", cmd("serve", "--model_name_or_path", model, "--port", "99999"));
        try (java.net.ServerSocket taken = new java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            fails("bind to /127.0.0.1:" + taken.getLocalPort(), cmd("serve", "--model_name_or_path", model, "--port", String.valueOf(taken.getLocalPort())));
        }
        // demo
        fails(aFile + ": exists and is not a folder", cmd("demo", "--quick", "--output_dir", aFile.toString()));
        fails("--seed", cmd("demo", "--seed", "x"));
        // validate
        fails("nope.json", cmd("validate", "--model_name_or_path", model, "--data_path", dir.resolve("nope.json").toString()));
        fails("bogus", cmd("validate", "--model_name_or_path", model, "--data_path", data, "--image_folder", images, "--version", "bogus"));
        fails("nowhere", cmd("validate", "--model_name_or_path", model, "--data_path", data, "--image_folder", dir.resolve("nowhere").toString()));
        // unknown command or flag
        fails("frobnicate", "frobnicate");
        fails("--nope", cmd("inspect", "--model_name_or_path", model, "--nope"));
    }

    @Test
    void debugShowsTheStackTrace(@TempDir Path dir) {
        Result plain = run("inspect", "--model_name_or_path", dir.toString());
        Result debug = run("--debug", "inspect", "--model_name_or_path", dir.toString());
        Result after = run("inspect", "--model_name_or_path", dir.toString(), "--debug");
        assertNotEquals(0, plain.rc());
        assertEquals(plain.rc(), debug.rc());
        assertFalse(plain.err().contains("\tat "), plain.err());
        assertTrue(debug.err().contains("\tat io.llava4j."), debug.err());
        assertTrue(after.err().contains("\tat io.llava4j."), "--debug after the command too:\n" + after.err());
        assertEquals(plain.err().lines().findFirst(), debug.err().lines().findFirst(), "the same message first");
    }
}
