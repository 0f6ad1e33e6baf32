package io.llava4j.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.TestData;
import io.llava4j.config.ConfigException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** LLaVA's model flags on a llava-hf folder are applied, noted or refused, never silently ignored. */
class LlavaHfFlagsTest {
    static final ObjectMapper JSON = new ObjectMapper();

    static List<String> flags(Path out, String... extra) {
        List<String> f = new ArrayList<>(List.of("--model_name_or_path", TestData.tinyLlava().toString(), "--version", "v1",
                "--data_path", TestData.tinyData().resolve("finetune.json").toString(),
                "--image_folder", TestData.tinyData().resolve("images").toString(), "--max_steps", "1",
                "--output_dir", out.toString(), "--dry_run", "True"));
        f.addAll(List.of(extra));
        return f;
    }

    /** A CLIP folder whose config.json is the tiny model's vision_config, with {@code field} changed when given. */
    static Path clip(Path dir, String field, int value) throws Exception {
        ObjectNode vc = (ObjectNode) JSON.readTree(TestData.tinyLlava().resolve("config.json").toFile()).get("vision_config");
        if (field != null) vc.put(field, value);
        Files.createDirectories(dir);
        JSON.writeValue(dir.resolve("config.json").toFile(), vc);
        return dir;
    }

    @Test
    void visionTowerThatDoesNotExistIsAnError(@TempDir Path tmp) {
        ConfigException e = assertThrows(ConfigException.class,
                () -> TrainRuns.run(flags(tmp, "--vision_tower", tmp.resolve("openai/clip-vit-large-patch14-336").toString())));
        assertTrue(e.getMessage().contains("--vision_tower") && e.getMessage().contains("no such folder"), e.getMessage());
    }

    @Test
    void visionTowerOfAnotherArchitectureContradicts(@TempDir Path tmp) throws Exception {
        Path other = clip(tmp.resolve("clip-wide"), "hidden_size", 64);
        ConfigException e = assertThrows(ConfigException.class, () -> TrainRuns.run(flags(tmp, "--vision_tower", other.toString())));
        assertTrue(e.getMessage().contains("contradicts") && e.getMessage().contains("vision_config"), e.getMessage());
    }

    @Test
    void matchingFlagsAreAcceptedAndTheKeptTowerIsNoted(@TempDir Path tmp) throws Exception {
        Path same = clip(tmp.resolve("clip"), null, 0);
        PrintStream old = System.out;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        System.setOut(new PrintStream(out));
        try {
            TrainRuns.run(flags(tmp.resolve("o"), "--vision_tower", same.toString(), "--mm_projector_type", "mlp2x_gelu",
                    "--mm_vision_select_layer", "-2", "--mm_vision_select_feature", "patch"));
        } finally {
            System.setOut(old);
        }
        assertTrue(out.toString().contains("note: --vision_tower " + same) && out.toString().contains("tower weights are used"), out.toString());
    }

    @Test
    void projectorAndFeatureFlagsThatDifferFromTheModelAreRefused(@TempDir Path tmp) {
        for (String[] f : new String[][]{{"--mm_projector_type", "linear", "mlp2x_gelu"}, {"--mm_vision_select_layer", "-1", "-2"},
                {"--mm_vision_select_feature", "cls_patch", "patch"}}) {
            ConfigException e = assertThrows(ConfigException.class, () -> TrainRuns.run(flags(tmp, f[0], f[1])), f[0]);
            assertTrue(e.getMessage().contains(f[0] + " " + f[1]) && e.getMessage().contains("contradicts")
                    && e.getMessage().contains(f[2]), e.getMessage());
        }
    }
}
