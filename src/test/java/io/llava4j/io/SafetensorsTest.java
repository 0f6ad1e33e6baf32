package io.llava4j.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.net.URISyntaxException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static io.llava4j.io.TensorAssertions.assertTensorEquals;
import static io.llava4j.io.TensorAssertions.assertTensorMapsEqual;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Safetensors reading, writing, validation and sharded checkpoints. */
class SafetensorsTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    static Path referenceModel() throws URISyntaxException {
        return Path.of(SafetensorsTest.class.getResource("/reference/tiny-llava/model.safetensors").toURI());
    }

    static HostTensor raw(DType dtype, long[] shape, short... bits) {
        ByteBuffer b = ByteBuffer.allocate(bits.length * 2).order(ByteOrder.LITTLE_ENDIAN);
        for (short s : bits) b.putShort(s);
        return new HostTensor(dtype, shape, b.flip());
    }

    static LinkedHashMap<String, HostTensor> sampleTensors() {
        LinkedHashMap<String, HostTensor> m = new LinkedHashMap<>();
        m.put("z.f32", HostTensor.ofFloats(new long[]{2, 3}, new float[]{1f, -2.5f, 3.25f, 0f, Float.MAX_VALUE, -1e-7f}));
        m.put("a.f16", raw(DType.F16, new long[]{3}, (short) 0x3C00, (short) 0xC000, (short) 0x3555));
        m.put("m.bf16", raw(DType.BF16, new long[]{2, 1}, (short) 0x3F80, (short) 0x4049));
        m.put("b.i64", HostTensor.ofLongs(new long[]{4}, new long[]{0, -1, 1L << 40, Long.MIN_VALUE}));
        m.put("c.scalar", HostTensor.ofFloats(new long[]{}, new float[]{42f}));
        m.put("d.empty", HostTensor.ofFloats(new long[]{0, 5}, new float[]{}));
        m.put("e.u8", new HostTensor(DType.U8, new long[]{3}, ByteBuffer.wrap(new byte[]{1, (byte) 200, 7})));
        return m;
    }

    static Path rawFile(Path file, String headerJson, int dataBytes) throws IOException {
        byte[] h = headerJson.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h);
        Files.write(file, b.array());
        return file;
    }

    static String message(Path file) {
        return assertThrows(IOException.class, () -> Safetensors.read(file)).getMessage();
    }

    // ------------------------------------------------------------------------------------------ round trip

    @Test
    void roundTripOfAllDtypesKeepsValuesAndMetadata() throws IOException {
        Path file = tmp.resolve("rt.safetensors");
        Map<String, HostTensor> tensors = sampleTensors();
        Safetensors.write(file, tensors, Map.of("format", "pt", "note", "round trip"));

        Safetensors.SafetensorsFile read = Safetensors.read(file);
        assertEquals(Map.of("format", "pt", "note", "round trip"), read.metadata());
        // written (and read back) in sorted name order
        assertEquals(List.of("a.f16", "b.i64", "c.scalar", "d.empty", "e.u8", "m.bf16", "z.f32"),
                new ArrayList<>(read.tensors().keySet()));
        for (Map.Entry<String, HostTensor> e : tensors.entrySet())
            assertTensorEquals(e.getValue(), read.tensors().get(e.getKey()), e.getKey());

        assertArrayEquals(new float[]{1f, -2.5f, 3.25f, 0f, Float.MAX_VALUE, -1e-7f},
                read.tensors().get("z.f32").toFloats());
        assertArrayEquals(new float[]{1f, -2f, 0.33325195f}, read.tensors().get("a.f16").toFloats());
        assertArrayEquals(new float[]{1f, 3.140625f}, read.tensors().get("m.bf16").toFloats());
        assertArrayEquals(new long[]{0, -1, 1L << 40, Long.MIN_VALUE}, read.tensors().get("b.i64").toLongs());
        assertArrayEquals(new long[]{}, read.tensors().get("c.scalar").shape());
        assertEquals(0, read.tensors().get("d.empty").numel());
        assertTrue(read.tensors().get("z.f32").data().isReadOnly(), "mapped data is read-only");
    }

    @Test
    void headerIsSortedAndSpacePaddedToEightBytes() throws IOException {
        Path file = tmp.resolve("h.safetensors");
        Safetensors.write(file, sampleTensors(), Map.of("format", "pt"));
        byte[] all = Files.readAllBytes(file);
        long n = ByteBuffer.wrap(all).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        assertEquals(0, n % 8);
        String header = new String(all, 8, (int) n, StandardCharsets.UTF_8);
        assertTrue(header.startsWith("{\"__metadata__\":{\"format\":\"pt\"},\"a.f16\":{\"dtype\":\"F16\",\"shape\":[3],"
                + "\"data_offsets\":[0,6]}"), header);
        assertEquals(header.stripTrailing(), header.substring(0, header.lastIndexOf('}') + 1));
        List<String> keys = new ArrayList<>();
        JSON.readTree(header).fieldNames().forEachRemaining(keys::add);
        List<String> sorted = new ArrayList<>(keys);
        sorted.sort(null);
        assertEquals(sorted, keys);
    }

    @Test
    void writeReplacesAtomicallyAndLeavesNoTempFiles() throws IOException {
        Path file = tmp.resolve("w.safetensors");
        Safetensors.write(file, Map.of("x", HostTensor.ofFloats(new long[]{1}, new float[]{1f})), null);
        Safetensors.SafetensorsFile old = Safetensors.read(file); // keeps a map of the old file
        Safetensors.write(file, Map.of("y", HostTensor.ofFloats(new long[]{2}, new float[]{2f, 3f})), Map.of());
        assertEquals(List.of("y"), new ArrayList<>(Safetensors.read(file).tensors().keySet()));
        assertArrayEquals(new float[]{1f}, old.tensors().get("x").toFloats(), "old map still valid after replace");
        try (Stream<Path> files = Files.list(tmp)) {
            assertEquals(List.of(file), files.toList());
        }
    }

    // ------------------------------------------------------------------------------------------ reference model

    @Test
    void readsTheReferenceTinyLlava() throws Exception {
        Safetensors.SafetensorsFile f = Safetensors.read(referenceModel());
        assertEquals("pt", f.metadata().get("format"));
        assertEquals(80, f.tensors().size());
        Map<String, long[]> expected = Map.of(
                "language_model.model.embed_tokens.weight", new long[]{1024, 48},
                "language_model.lm_head.weight", new long[]{1024, 48},
                "language_model.model.layers.1.mlp.down_proj.weight", new long[]{48, 96},
                "multi_modal_projector.linear_1.weight", new long[]{48, 32},
                "multi_modal_projector.linear_2.bias", new long[]{48},
                "vision_tower.vision_model.embeddings.patch_embedding.weight", new long[]{32, 3, 4, 4},
                "vision_tower.vision_model.embeddings.position_embedding.weight", new long[]{17, 32});
        for (Map.Entry<String, long[]> e : expected.entrySet()) {
            HostTensor t = f.tensors().get(e.getKey());
            assertTrue(t != null, e.getKey() + " missing");
            assertEquals(DType.F32, t.dtype(), e.getKey());
            assertArrayEquals(e.getValue(), t.shape(), e.getKey());
        }
        for (Map.Entry<String, HostTensor> e : f.tensors().entrySet())
            for (float v : e.getValue().toFloats()) assertTrue(Float.isFinite(v), e.getKey() + " has " + v);
        assertTrue(Safetensors.readModel(referenceModel().getParent()).containsKey("language_model.model.norm.weight"));

        // written back and re-read: identical tensors
        Path copy = tmp.resolve("copy.safetensors");
        Safetensors.write(copy, f.tensors(), f.metadata());
        assertTensorMapsEqual(f.tensors(), Safetensors.read(copy).tensors());
    }

    // ------------------------------------------------------------------------------------------ corrupt files

    @Test
    void truncatedFileIsDetected() throws Exception {
        Path file = tmp.resolve("cut.safetensors");
        Files.copy(referenceModel(), file);
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
            raf.setLength(raf.length() - 10);
        }
        String msg = message(file);
        assertTrue(msg.contains(file.toString()) && msg.contains("truncated"), msg);
        // the tensor at the end of the data section is named
        assertTrue(msg.contains("'vision_tower.vision_model.pre_layrnorm.weight'"), msg);

        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
            raf.setLength(100); // inside the JSON header
        }
        msg = message(file);
        assertTrue(msg.contains(file.toString()) && msg.contains("truncated"), msg);

        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
            raf.setLength(5); // inside the length field
        }
        msg = message(file);
        assertTrue(msg.contains(file.toString()) && msg.contains("truncated"), msg);
    }

    @Test
    void corruptedOffsetInHeaderNamesTheTensor() throws IOException {
        Path file = tmp.resolve("corrupt.safetensors");
        LinkedHashMap<String, HostTensor> m = new LinkedHashMap<>();
        m.put("a.weight", HostTensor.ofFloats(new long[]{4}, new float[]{1, 2, 3, 4}));
        m.put("b.weight", HostTensor.ofFloats(new long[]{2, 2}, new float[]{5, 6, 7, 8}));
        Safetensors.write(file, m, null);
        byte[] bytes = Files.readAllBytes(file);
        String s = new String(bytes, StandardCharsets.ISO_8859_1);
        int at = s.indexOf("[16,32]");
        assertTrue(at > 0, s);
        byte[] patch = "[16,99]".getBytes(StandardCharsets.ISO_8859_1);
        System.arraycopy(patch, 0, bytes, at, patch.length);
        Files.write(file, bytes);
        String msg = message(file);
        assertTrue(msg.contains(file.toString()) && msg.contains("'b.weight'") && msg.contains("[16, 99]"), msg);
    }

    @Test
    void headerValidationErrorsNameFileAndTensor() throws IOException {
        Path f = tmp.resolve("bad.safetensors");

        rawFile(f, "{\"x.weight\":{\"dtype\":\"F32\",\"shape\":[25],\"data_offsets\":[0,100]}}", 96);
        String msg = message(f);
        assertTrue(msg.equals(f + ": tensor 'x.weight': data_offsets [0, 100] exceed the data section of 96 bytes"
                + " (file truncated or header corrupt)"), msg);

        rawFile(f, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", 12);
        msg = message(f);
        assertTrue(msg.contains("tensor 'x'") && msg.contains("needs 8 bytes"), msg);

        rawFile(f, "{\"x\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2);
        msg = message(f);
        assertTrue(msg.contains("tensor 'x'") && msg.contains("unknown dtype 'F8_E4M3'"), msg);

        rawFile(f, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8);
        msg = message(f);
        assertTrue(msg.contains("tensor 'x'") && msg.contains("not in order"), msg);

        rawFile(f, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12);
        msg = message(f);
        assertTrue(msg.contains("tensor 'b'") && msg.contains("overlap tensor 'a'"), msg);

        rawFile(f, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8);
        msg = message(f);
        assertTrue(msg.contains("tensor 'a'") && msg.contains("gap"), msg);

        rawFile(f, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 12);
        msg = message(f);
        assertTrue(msg.contains("data section is 12 bytes but the tensors cover 4 bytes"), msg);

        rawFile(f, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4);
        msg = message(f);
        assertTrue(msg.contains("tensor 'a'") && msg.contains("'shape'"), msg);

        rawFile(f, "{\"a\": [1, 2", 0);
        msg = message(f);
        assertTrue(msg.startsWith(f + ": header is not valid JSON"), msg);

        rawFile(f, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
        msg = message(f);
        assertTrue(msg.contains("not valid JSON") && msg.contains("'a'"), msg);

        rawFile(f, "{\"__metadata__\":{\"format\":3}}", 0);
        msg = message(f);
        assertTrue(msg.contains("__metadata__") && msg.contains("'format'"), msg);

        Files.write(f, new byte[]{(byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff, 0, 0, 0, 0, '{', '}'});
        msg = message(f);
        assertTrue(msg.contains(f.toString()) && msg.contains("header length"), msg);
    }

    // ------------------------------------------------------------------------------------------ folders & shards

    @Test
    void shardedWriteReadsBackLikeTheSingleFile() throws Exception {
        LinkedHashMap<String, HostTensor> all = new LinkedHashMap<>(Safetensors.read(referenceModel()).tensors());
        all.putAll(sampleTensors());

        Path single = Files.createDirectories(tmp.resolve("single"));
        Safetensors.write(single.resolve(Safetensors.SINGLE_FILE), all, Map.of("format", "pt"));
        Path sharded = tmp.resolve("sharded");
        Safetensors.writeSharded(sharded, "model", all, 200_000, Map.of("format", "pt"));

        JsonNode index = JSON.readTree(sharded.resolve(Safetensors.INDEX_FILE).toFile());
        long total = all.values().stream().mapToLong(t -> t.data().remaining()).sum();
        assertEquals(total, index.get("metadata").get("total_size").asLong());
        assertEquals(all.size(), index.get("weight_map").size());
        List<String> shardFiles;
        try (Stream<Path> files = Files.list(sharded)) {
            shardFiles = files.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".safetensors"))
                    .sorted().toList();
        }
        int n = shardFiles.size();
        assertTrue(n >= 3, "expected several shards, got " + shardFiles);
        assertEquals(String.format("model-00001-of-%05d.safetensors", n), shardFiles.get(0));
        for (String shard : shardFiles)
            assertTrue(Files.size(sharded.resolve(shard)) < 200_000 + 20_000 || Safetensors.read(
                    sharded.resolve(shard)).tensors().size() == 1, shard + " too big");

        Map<String, HostTensor> fromSingle = Safetensors.readModel(single);
        Map<String, HostTensor> fromShards = Safetensors.readModel(sharded);
        assertTensorMapsEqual(fromSingle, fromShards);
        assertEquals(new ArrayList<>(fromShards.keySet()), new ArrayList<>(Safetensors.readModel(sharded).keySet()),
                "deterministic order");
    }

    private Path shardedFixture() throws IOException {
        Path dir = tmp.resolve("ckpt");
        LinkedHashMap<String, HostTensor> m = new LinkedHashMap<>();
        for (int i = 0; i < 4; i++)
            m.put("layer." + i + ".weight", HostTensor.ofFloats(new long[]{4}, new float[]{i, i + 1, i + 2, i + 3}));
        Safetensors.writeSharded(dir, "model", m, 32, null); // two tensors per shard
        return dir;
    }

    private static void editWeightMap(Path dir, java.util.function.Consumer<ObjectNode> edit) throws IOException {
        Path index = dir.resolve(Safetensors.INDEX_FILE);
        ObjectNode root = (ObjectNode) JSON.readTree(index.toFile());
        edit.accept((ObjectNode) root.get("weight_map"));
        JSON.writeValue(index.toFile(), root);
    }

    @Test
    void indexListingATensorItsShardLacksIsAnError() throws IOException {
        Path dir = shardedFixture();
        editWeightMap(dir, wm -> wm.put("ghost.weight", "model-00002-of-00002.safetensors"));
        String msg = assertThrows(IOException.class, () -> Safetensors.readModel(dir)).getMessage();
        assertTrue(msg.contains(Safetensors.INDEX_FILE) && msg.contains("'ghost.weight'")
                && msg.contains("model-00002-of-00002.safetensors"), msg);
    }

    @Test
    void shardHoldingAnUnlistedTensorIsAnError() throws IOException {
        Path dir = shardedFixture();
        editWeightMap(dir, wm -> wm.remove("layer.3.weight"));
        String msg = assertThrows(IOException.class, () -> Safetensors.readModel(dir)).getMessage();
        assertTrue(msg.contains("model-00002-of-00002.safetensors") && msg.contains("'layer.3.weight'"), msg);

        Path dir2 = tmp.resolve("ckpt");
        editWeightMap(dir2, wm -> {
            wm.put("layer.3.weight", "model-00002-of-00002.safetensors");
            wm.put("layer.0.weight", "model-00002-of-00002.safetensors");
        });
        msg = assertThrows(IOException.class, () -> Safetensors.readModel(dir2)).getMessage();
        assertTrue(msg.contains("'layer.0.weight'"), msg);
    }

    @Test
    void missingShardAndEscapingShardNamesAreErrors() throws IOException {
        Path dir = shardedFixture();
        Files.delete(dir.resolve("model-00002-of-00002.safetensors"));
        String msg = assertThrows(IOException.class, () -> Safetensors.readModel(dir)).getMessage();
        assertTrue(msg.contains("model-00002-of-00002.safetensors") && msg.contains("does not exist"), msg);

        editWeightMap(dir, wm -> {
            wm.put("layer.2.weight", "../elsewhere.safetensors");
            wm.put("layer.3.weight", "../elsewhere.safetensors");
        });
        msg = assertThrows(IOException.class, () -> Safetensors.readModel(dir)).getMessage();
        assertTrue(msg.contains("'layer.2.weight'") && msg.contains("../elsewhere.safetensors"), msg);
    }

    @Test
    void folderWithoutCheckpointNamesFolderAndFiles() throws IOException {
        Path empty = Files.createDirectories(tmp.resolve("empty"));
        String msg = assertThrows(IOException.class, () -> Safetensors.readModel(empty)).getMessage();
        assertTrue(msg.contains(empty.toString()) && msg.contains(Safetensors.INDEX_FILE)
                && msg.contains(Safetensors.SINGLE_FILE), msg);
        Path absent = tmp.resolve("absent");
        msg = assertThrows(IOException.class, () -> Safetensors.readModel(absent)).getMessage();
        assertTrue(msg.contains(absent.toString()) && msg.contains(Safetensors.SINGLE_FILE), msg);
    }

    @Test
    void writeRejectsReservedNames() {
        Path f = tmp.resolve("x.safetensors");
        Map<String, HostTensor> bad = Map.of("__metadata__", HostTensor.ofFloats(new long[]{1}, new float[]{1}));
        assertThrows(IllegalArgumentException.class, () -> Safetensors.write(f, bad, null));
        assertFalse(Files.exists(f));
    }
}
