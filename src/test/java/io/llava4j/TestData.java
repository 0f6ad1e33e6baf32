package io.llava4j;

import io.llava4j.io.HostTensor;
import io.llava4j.io.Safetensors;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.Map;

/**
 * Paths of the reference fixtures in the test resources: outputs of independent PyTorch references (see CONTRIBUTING.md),
 * copied in so that the tests need nothing outside this repository.
 */
public final class TestData {
    private TestData() {}

    public static Path reference() {
        return resource("/reference");
    }

    /** The second fixture (GQA, feature layer 1 with CLS, rope_theta 5e5, other mean/std), made by reference-gqa/make_gqa.py. */
    public static Path gqa() {
        return resource("/reference-gqa");
    }

    /** The OneVision reference (SigLIP + Qwen2 + AnyRes): tiny-onevision, tiny-data, expected. */
    public static Path onevision() {
        return resource("/reference-onevision");
    }

    /** A second OneVision case made with the same script (see its README): other widths, feature layer −2, other pinpoints. */
    public static Path onevisionSecond() {
        return resource("/reference-onevision-second");
    }

    private static Path resource(String name) {
        java.net.URL url = TestData.class.getResource(name);
        if (url == null) throw new IllegalStateException("test fixture " + name + " is missing from src/test/resources");
        try {
            return Path.of(url.toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    /** LLaVA's DeepSpeed configs as shipped (scripts/zero2.json, zero3.json, zero3_offload.json). */
    public static Path deepspeed(String file) {
        return resource("/deepspeed/" + file);
    }

    public static Path tinyLlava() {
        return reference().resolve("tiny-llava");
    }

    public static Path tinyData() {
        return reference().resolve("tiny-data");
    }

    public static Path expected() {
        return reference().resolve("expected");
    }

    public static Map<String, String> metadata(Path file) {
        try {
            return Safetensors.read(file).metadata();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public static Map<String, HostTensor> tensors(Path file) {
        try {
            return Safetensors.read(file).tensors();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
