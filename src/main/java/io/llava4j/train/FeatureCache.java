package io.llava4j.train;

import io.llava4j.data.DataException;
import io.llava4j.data.LlavaDataset;
import io.llava4j.data.LlavaDataset.Sample;
import io.llava4j.engine.Tensors;
import io.llava4j.model.Llava;
import io.llava4j.nn.Precision;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Module;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * {@code --cache_vision_features DIR}: the frozen vision tower's output for each image ({@link Llava#towerFeatures},
 * the projector's input, [F, vision_h] fp32) stored once and reused in later epochs and later runs, so that a stage-1
 * sweep pays for the tower (and the image decoding) once. Only for a frozen tower: its output for an image then never
 * changes during training.
 *
 * <p>An entry's key is the SHA-256 of: the image file's content, the preprocessing ({@link LlavaDataset#preprocessing()}),
 * and the tower's identity (its config, the selected layer and feature strategy, the run's precision, and the SHA-256 of
 * its weights as stored). A different image, tower, layer, processor or precision is a different entry, never a stale
 * one. Each entry is one file {@code DIR/<key>.f32} (an 8-byte tag, rows, width, then little-endian floats), written
 * to a temporary name and moved in place, so a crash leaves no half-written entry.
 */
public final class FeatureCache implements LlavaDataset.ImageKeys {
    private static final byte[] TAG = "llv4jfc1".getBytes(StandardCharsets.US_ASCII);

    private final Path dir;
    private final String tower; // hex SHA-256 of the tower's identity
    private final String preprocessing;
    private final long rows, width;
    private final Map<Path, String> keys = new ConcurrentHashMap<>(); // image file → key (content hashed once per run)
    private final AtomicLong hits = new AtomicLong(), misses = new AtomicLong();

    private FeatureCache(Path dir, String tower, String preprocessing, long rows, long width) {
        this.dir = dir;
        this.tower = tower;
        this.preprocessing = preprocessing;
        this.rows = rows;
        this.width = width;
    }

    /**
     * A cache in {@code dir} (created if missing) for {@code model}'s tower, which must be frozen by {@code plan}.
     *
     * @param preprocessing the dataset's {@link LlavaDataset#preprocessing()}
     */
    public static FeatureCache open(Path dir, Llava model, FreezePlan plan, Precision precision, String preprocessing) {
        if (plan.partTrains("vision"))
            throw new IllegalArgumentException("--cache_vision_features " + dir + ": the vision tower trains in this run"
                    + " (--unfreeze_mm_vision_tower True), so its features change every step; the cache needs a frozen tower");
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new UncheckedIOException("--cache_vision_features " + dir + ": cannot create the folder: " + e.getMessage(), e);
        }
        MessageDigest md = sha256();
        md.update((model.config.vision() + "|layer=" + model.config.featureLayerIndex() + "|select="
                + model.config.visionFeatureSelectStrategy() + "|storage=" + precision.storage + "|gemm=" + precision.gemm() + "|")
                .getBytes(StandardCharsets.UTF_8));
        hashWeights(md, model.visionTower);
        return new FeatureCache(dir, HexFormat.of().formatHex(md.digest()), preprocessing, model.config.imageFeatureTokens(),
                model.config.vision().hiddenSize());
    }

    private static void hashWeights(MessageDigest md, Module tower) {
        try (PointerScope s = new PointerScope()) {
            for (Map.Entry<String, Tensor> e : Tensors.namedParameters(tower).entrySet()) {
                md.update((e.getKey() + ":" + e.getValue().scalar_type().intern() + ":").getBytes(StandardCharsets.UTF_8));
                md.update(Tensors.hostView(e.getValue()).data().duplicate());
            }
        }
    }

    @Override
    public String key(Path image) {
        return keys.computeIfAbsent(image.toAbsolutePath().normalize(), p -> {
            MessageDigest md = sha256();
            try {
                md.update(Files.readAllBytes(p));
            } catch (IOException e) {
                throw new DataException("cannot read image " + p + ": " + e.getMessage(), e);
            }
            String content = HexFormat.of().formatHex(md.digest());
            md.update((tower + "|" + preprocessing + "|" + content).getBytes(StandardCharsets.UTF_8));
            return HexFormat.of().formatHex(md.digest());
        });
    }

    @Override
    public boolean has(String key) {
        return Files.isRegularFile(file(key));
    }

    /** Images whose features came from the cache / were computed, in this run. */
    public long hits() {
        return hits.get();
    }

    public long misses() {
        return misses.get();
    }

    private Path file(String key) {
        return dir.resolve(key + ".f32");
    }

    /**
     * The tower features [T, F, vision_h] of a micro-batch's images' T tiles (one per image without AnyRes; an AnyRes
     * image's base and grid tiles are one entry), in sample order: stored ones read, the others
     * computed from {@code pixels} (the batch's decoded images, in order, as {@link Batches#input} stacks them) under
     * the caller's autocast, then stored. Null when no sample has an image.
     */
    public Tensor towerFeatures(List<Sample> samples, Tensor pixels, Llava model) {
        Tensor computed = null;
        if (pixels != null) {
            try (NoGradGuard g = new NoGradGuard()) {
                computed = model.towerFeatures(pixels); // [M, F, vision_h]
            }
        }
        TensorVector rowsOut = new TensorVector();
        long tileLen = 3L * model.config.vision().imageSize() * model.config.vision().imageSize();
        int next = 0;
        for (Sample s : samples) {
            if (!s.hasImage()) continue;
            if (s.pixels() != null) {
                int tiles = (int) (s.pixels().length / tileLen); // AnyRes: base + grid tiles, one entry per image
                Tensor f = computed.narrow(0, next, tiles); // [tiles, F, vision_h]
                next += tiles;
                if (s.imageKey() != null) store(s.imageKey(), f.reshape(-1, f.size(2)));
                misses.incrementAndGet();
                rowsOut.push_back(f);
            } else {
                rowsOut.push_back(load(s.imageKey(), s.id()));
                hits.incrementAndGet();
            }
        }
        return rowsOut.empty() ? null : torch.cat(rowsOut, 0); // [tiles of the batch, F, vision_h]
    }

    private void store(String key, Tensor f) {
        float[] v = Tensors.toFloats(f);
        ByteBuffer b = ByteBuffer.allocate(TAG.length + 16 + v.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        b.put(TAG).putLong(f.size(0)).putLong(f.size(1));
        b.asFloatBuffer().put(v);
        Path target = file(key);
        try {
            Path tmp = Files.createTempFile(dir, key, ".tmp");
            Files.write(tmp, b.array());
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("--cache_vision_features: cannot write " + target + ": " + e.getMessage(), e);
        }
    }

    private Tensor load(String key, String sampleId) {
        Path p = file(key);
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(p);
        } catch (IOException e) {
            throw new UncheckedIOException("--cache_vision_features: cannot read " + p + " (sample " + sampleId + "): " + e.getMessage(), e);
        }
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        byte[] tag = new byte[TAG.length];
        boolean ok = bytes.length >= TAG.length + 16;
        long stored = 0;
        if (ok) {
            b.get(tag);
            stored = b.getLong();
            ok = java.util.Arrays.equals(tag, TAG) && stored > 0 && stored % rows == 0 && b.getLong() == width
                    && bytes.length == TAG.length + 16 + stored * width * 4;
        }
        if (!ok)
            throw new DataException("--cache_vision_features: " + p + " is not a (tiles x " + rows + ") x " + width
                    + " feature entry of this cache; delete it and run again");
        float[] v = new float[Math.toIntExact(stored * width)];
        b.asFloatBuffer().get(v);
        return Tensors.floats(v, stored / rows, rows, width); // [tiles, F, vision_h]
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
