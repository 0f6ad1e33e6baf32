package io.llava4j.train;

import io.llava4j.TestData;
import io.llava4j.data.DataException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * --dataloader_num_workers and --cache_vision_features change where and when work happens, never the result: stage 1
 * on the reference data over three epochs (batch 1, so each epoch reorders the images) gives the same losses as the
 * plain run, and a second run reads every image's tower features from the cache.
 */
class FreezeAwareDataTest {

    static List<String> stage1(Path out, String... extra) {
        List<String> f = new ArrayList<>(List.of("--model_name_or_path", TestData.tinyLlava().toString(),
                "--image_folder", TestData.tinyData().resolve("images").toString(), "--per_device_train_batch_size", "1",
                "--learning_rate", "1e-3", "--lr_scheduler_type", "constant", "--max_grad_norm", "0", "--save_steps", "0",
                "--version", "plain", "--data_path", TestData.tinyData().resolve("pretrain.json").toString(),
                "--tune_mm_mlp_adapter", "True", "--max_steps", "6", "--output_dir", out.toString()));
        f.addAll(List.of(extra));
        return f;
    }

    static Map<String, FileTime> entries(Path dir) throws Exception {
        Map<String, FileTime> m = new TreeMap<>();
        try (Stream<Path> s = Files.list(dir)) {
            for (Path p : s.toList()) m.put(p.getFileName().toString(), Files.getLastModifiedTime(p));
        }
        return m;
    }

    @Test
    void workersGiveTheSameLosses(@TempDir Path tmp) throws Exception {
        Trainer t = TrainRuns.run(stage1(tmp.resolve("a")));
        List<Double> plain = t.losses();
        List<Double> workers = TrainRuns.run(stage1(tmp.resolve("b"), "--dataloader_num_workers", "2")).losses();
        assertEquals(6, plain.size());
        assertEquals(plain, workers);
        // gradients are dropped after each step (zero_grad(set_to_none=True)): no memory held between steps
        t.parameters().forEach((n, p) -> assertFalse(p.grad().defined(), n + " still has a gradient"));
    }

    @Test
    void workersSkipABadRecordAsTheTrainingThreadDoes(@TempDir Path tmp) throws Exception {
        Path images = tmp.resolve("images");
        Files.createDirectories(images);
        Files.copy(TestData.tinyData().resolve("images/img0.png"), images.resolve("img0.png")); // img1.png is missing
        List<String> plain = stage1(tmp.resolve("a"), "--on_bad_sample", "skip");
        plain.set(plain.indexOf("--image_folder") + 1, images.toString());
        List<String> workers = stage1(tmp.resolve("b"), "--on_bad_sample", "skip", "--dataloader_num_workers", "2");
        workers.set(workers.indexOf("--image_folder") + 1, images.toString());
        List<Double> a = TrainRuns.run(plain).losses(), b = TrainRuns.run(workers).losses();
        assertFalse(a.isEmpty());
        assertEquals(a, b);
    }

    @Test
    void cachedFeaturesGiveTheSameLossesAndAreReusedByALaterRun(@TempDir Path tmp) throws Exception {
        Path cache = tmp.resolve("cache");
        List<Double> plain = TrainRuns.run(stage1(tmp.resolve("a"))).losses();
        List<Double> first = TrainRuns.run(stage1(tmp.resolve("b"), "--cache_vision_features", cache.toString())).losses();
        Map<String, FileTime> stored = entries(cache);
        assertEquals(2, stored.size(), "one entry per image: " + stored.keySet());
        // the later epochs of the first run and the whole second run read the tower's output from the cache
        List<Double> second = TrainRuns.run(stage1(tmp.resolve("c"), "--cache_vision_features", cache.toString(),
                "--dataloader_num_workers", "1")).losses();
        assertEquals(stored, entries(cache), "the second run wrote nothing");
        assertEquals(plain, first, "the tower computes each image's features as the uncached run does");
        assertEquals(plain, second);
        // another precision is another tower identity: new entries, never the fp32 ones
        TrainRuns.run(stage1(tmp.resolve("d"), "--cache_vision_features", cache.toString(), "--bf16", "True"));
        assertEquals(4, entries(cache).size());
    }

    @Test
    void theCacheNeedsAFrozenTower(@TempDir Path tmp) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TrainRuns.run(
                stage1(tmp.resolve("out"), "--cache_vision_features", tmp.resolve("cache").toString(), "--unfreeze_mm_vision_tower", "True")));
        assertTrue(e.getMessage().contains("--cache_vision_features") && e.getMessage().contains("frozen"), e.getMessage());
    }
}
