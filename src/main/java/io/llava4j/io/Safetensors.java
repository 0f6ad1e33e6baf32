package io.llava4j.io;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Reader and writer for the safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian
 * header length N, N bytes of JSON header {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets"}},
 * then the data section. Reading validates the whole header against the file size and memory-maps each tensor
 * read-only; writing is atomic (temp file, fsync, rename). Also reads and writes Hugging Face sharded checkpoints
 * (model.safetensors.index.json with a weight_map, plus model-0000k-of-0000N.safetensors shards).
 */
public final class Safetensors {

    /** File name of a single-file checkpoint. */
    public static final String SINGLE_FILE = "model.safetensors";
    /** File name of the shard index of a sharded checkpoint. */
    public static final String INDEX_FILE = "model.safetensors.index.json";
    /** Largest accepted JSON header, as in the reference implementation. */
    public static final long MAX_HEADER_BYTES = 100_000_000L;

    private static final String METADATA_KEY = "__metadata__";
    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    private Safetensors() {
    }

    /** The contents of one safetensors file: tensors in header order and the optional string metadata. */
    public record SafetensorsFile(LinkedHashMap<String, HostTensor> tensors, Map<String, String> metadata) {
    }

    /** One header entry, validated against the data section. */
    private record Entry(String name, DType dtype, long[] shape, long begin, long end) {
    }

    // ------------------------------------------------------------------------------------------------ reading

    /**
     * Reads a safetensors file. Tensor data are read-only slices of a memory map of the file (one map per tensor,
     * so files larger than 2 GiB work as long as each tensor is below 2 GiB).
     *
     * @throws TensorFileException when the file is truncated or its header is malformed (message names the file
     *                             and the tensor at fault)
     */
    public static SafetensorsFile read(Path file) throws IOException {
        if (Files.isDirectory(file))
            throw new TensorFileException(file, "is a folder, not a safetensors file (use readModel for a folder)");
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < 8)
                throw new TensorFileException(file, "truncated: the file is " + size
                        + " bytes, shorter than the 8-byte header length");
            long headerLen = readFully(file, ch, 0, 8).getLong(0);
            if (headerLen < 0 || headerLen > MAX_HEADER_BYTES)
                throw new TensorFileException(file, "header length " + Long.toUnsignedString(headerLen)
                        + " is not plausible (at most " + MAX_HEADER_BYTES + " bytes); not a safetensors file?");
            if (8 + headerLen > size)
                throw new TensorFileException(file, "truncated: the header length says " + headerLen
                        + " bytes of JSON but only " + (size - 8) + " bytes follow it");
            int headerBytesLen = ReadBounds.check(file, "JSON header", headerLen, size - 8);
            ByteBuffer headerBuf = readFully(file, ch, 8, headerBytesLen);
            byte[] headerBytes = new byte[headerBytesLen];
            headerBuf.get(headerBytes);

            JsonNode root;
            try {
                root = JSON.readTree(headerBytes);
            } catch (JsonProcessingException e) {
                throw new TensorFileException(file, "header is not valid JSON: " + e.getOriginalMessage(), e);
            }
            if (root == null || !root.isObject())
                throw new TensorFileException(file, "header is not a JSON object");

            long dataStart = 8 + headerLen;
            long dataSize = size - dataStart;
            Map<String, String> metadata = Map.of();
            List<Entry> entries = new ArrayList<>();
            for (Map.Entry<String, JsonNode> field : root.properties()) {
                if (field.getKey().equals(METADATA_KEY)) metadata = parseMetadata(file, field.getValue());
                else entries.add(parseEntry(file, field.getKey(), field.getValue(), dataSize));
            }
            checkLayout(file, entries, dataSize);

            LinkedHashMap<String, HostTensor> tensors = new LinkedHashMap<>();
            for (Entry e : entries) {
                long nbytes = e.end - e.begin;
                ByteBuffer data = nbytes == 0 ? ByteBuffer.allocate(0)
                        : ch.map(FileChannel.MapMode.READ_ONLY, dataStart + e.begin, nbytes);
                tensors.put(e.name, new HostTensor(e.dtype, e.shape, data));
            }
            return new SafetensorsFile(tensors, metadata);
        }
    }

    private static Map<String, String> parseMetadata(Path file, JsonNode node) throws TensorFileException {
        if (!node.isObject())
            throw new TensorFileException(file, "'" + METADATA_KEY + "' is not a JSON object");
        Map<String, String> out = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> f : node.properties()) {
            if (!f.getValue().isTextual())
                throw new TensorFileException(file, "'" + METADATA_KEY + "' key '" + f.getKey()
                        + "': value is not a string: " + f.getValue());
            out.put(f.getKey(), f.getValue().textValue());
        }
        return Collections.unmodifiableMap(out);
    }

    private static Entry parseEntry(Path file, String name, JsonNode node, long dataSize) throws TensorFileException {
        String where = "tensor '" + name + "': ";
        if (!node.isObject()) throw new TensorFileException(file, where + "header entry is not a JSON object");

        JsonNode dtypeNode = node.get("dtype");
        if (dtypeNode == null || !dtypeNode.isTextual())
            throw new TensorFileException(file, where + "missing or non-string 'dtype'");
        DType dtype = DType.ofSafetensors(dtypeNode.textValue());
        if (dtype == null)
            throw new TensorFileException(file, where + "unknown dtype '" + dtypeNode.textValue() + "' (supported: "
                    + Arrays.stream(DType.values()).map(d -> d.safetensorsName).toList() + ")");

        long[] shape = longArray(file, where, node.get("shape"), "shape", -1);
        long[] offsets = longArray(file, where, node.get("data_offsets"), "data_offsets", 2);
        long begin = offsets[0], end = offsets[1];
        String offsetsText = "data_offsets [" + begin + ", " + end + "]";
        if (begin > end)
            throw new TensorFileException(file, where + offsetsText + " are not in order (begin > end)");

        long numel = 1;
        long nbytes;
        try {
            for (long d : shape) numel = Math.multiplyExact(numel, d);
            nbytes = Math.multiplyExact(numel, (long) dtype.bytes);
        } catch (ArithmeticException overflow) {
            throw new TensorFileException(file, where + "shape " + Arrays.toString(shape) + " is too large");
        }
        if (end - begin != nbytes)
            throw new TensorFileException(file, where + offsetsText + " span " + (end - begin) + " bytes but shape "
                    + Arrays.toString(shape) + " of " + dtype + " needs " + nbytes + " bytes");
        if (end > dataSize)
            throw new TensorFileException(file, where + offsetsText + " exceed the data section of " + dataSize
                    + " bytes (file truncated or header corrupt)");
        ReadBounds.check(file, where.substring(0, where.length() - 2), nbytes, dataSize); // mapped, not copied; still bounded
        return new Entry(name, dtype, shape, begin, end);
    }

    /** A JSON array of non-negative integers; expectedLength -1 for any length. */
    private static long[] longArray(Path file, String where, JsonNode node, String key, int expectedLength)
            throws TensorFileException {
        if (node == null || !node.isArray())
            throw new TensorFileException(file, where + "missing or non-array '" + key + "'");
        if (expectedLength >= 0 && node.size() != expectedLength)
            throw new TensorFileException(file, where + "'" + key + "' " + node + " must have " + expectedLength
                    + " elements");
        long[] out = new long[node.size()];
        for (int i = 0; i < out.length; i++) {
            JsonNode v = node.get(i);
            if (!v.isIntegralNumber() || !v.canConvertToLong() || v.longValue() < 0)
                throw new TensorFileException(file, where + "'" + key + "' " + node
                        + " must hold non-negative integers");
            out[i] = v.longValue();
        }
        return out;
    }

    /** The tensors must tile the data section exactly: no gap, no overlap, nothing left over. */
    private static void checkLayout(Path file, List<Entry> entries, long dataSize) throws TensorFileException {
        List<Entry> byOffset = new ArrayList<>(entries);
        byOffset.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
        long expected = 0;
        Entry previous = null;
        for (Entry e : byOffset) {
            String where = "tensor '" + e.name + "': data_offsets [" + e.begin + ", " + e.end + "]";
            if (e.begin < expected)
                throw new TensorFileException(file, where + " overlap tensor '" + previous.name + "' (data_offsets ["
                        + previous.begin + ", " + previous.end + "])");
            if (e.begin > expected)
                throw new TensorFileException(file, where + " leave a gap of " + (e.begin - expected) + " bytes "
                        + (previous == null ? "at the start of the data section"
                        : "after tensor '" + previous.name + "' (which ends at " + expected + ")"));
            expected = e.end;
            previous = e;
        }
        if (expected != dataSize)
            throw new TensorFileException(file, "the data section is " + dataSize + " bytes but the tensors cover "
                    + expected + " bytes (trailing bytes: corrupt header?)");
    }

    private static ByteBuffer readFully(Path file, FileChannel ch, long position, int length) throws IOException {
        ByteBuffer buf = ByteBuffer.allocate(length).order(ByteOrder.LITTLE_ENDIAN);
        while (buf.hasRemaining()) {
            int n = ch.read(buf, position + buf.position());
            if (n < 0) throw new TensorFileException(file, "truncated: unexpected end of file at byte "
                    + (position + buf.position()));
        }
        return buf.flip();
    }

    /**
     * Reads a checkpoint folder: the shards listed in {@value #INDEX_FILE} when it exists (in weight_map order,
     * each shard read once), otherwise {@value #SINGLE_FILE} (in header order).
     *
     * @throws TensorFileException when neither file exists, a shard is missing, a listed tensor is not in its
     *                             shard, or a shard holds a tensor the index does not map to it
     */
    public static Map<String, HostTensor> readModel(Path folder) throws IOException {
        Path index = folder.resolve(INDEX_FILE);
        if (Files.isRegularFile(index)) return readSharded(index, f -> read(f).tensors());
        Path single = folder.resolve(SINGLE_FILE);
        if (Files.isRegularFile(single)) return read(single).tensors();
        // torch.save checkpoints (original LLaVA and CLIP repos ship these), read without executing pickle code
        Path binIndex = folder.resolve(BIN_INDEX_FILE);
        if (Files.isRegularFile(binIndex)) return readSharded(binIndex, TorchPickleReader::read);
        Path bin = folder.resolve(BIN_FILE);
        if (Files.isRegularFile(bin)) return TorchPickleReader.read(bin);
        String looked = INDEX_FILE + ", " + SINGLE_FILE + ", " + BIN_INDEX_FILE + " or " + BIN_FILE;
        if (!Files.isDirectory(folder))
            throw new TensorFileException(folder, "no such folder (looked for " + looked + " in it)");
        throw new TensorFileException(folder, "found none of " + looked + " in this folder");
    }

    public static final String BIN_FILE = "pytorch_model.bin";
    public static final String BIN_INDEX_FILE = "pytorch_model.bin.index.json";

    private interface ShardReader {
        LinkedHashMap<String, HostTensor> read(Path shard) throws IOException;
    }

    private static LinkedHashMap<String, HostTensor> readSharded(Path index, ShardReader reader) throws IOException {
        Path folder = index.toAbsolutePath().getParent().normalize();
        JsonNode root;
        try {
            root = JSON.readTree(index.toFile());
        } catch (JsonProcessingException e) {
            throw new TensorFileException(index, "not valid JSON: " + e.getOriginalMessage(), e);
        }
        JsonNode weightMap = root == null ? null : root.get("weight_map");
        if (weightMap == null || !weightMap.isObject())
            throw new TensorFileException(index, "missing or non-object 'weight_map'");
        if (weightMap.isEmpty()) throw new TensorFileException(index, "'weight_map' is empty");

        LinkedHashMap<String, String> shardOf = new LinkedHashMap<>();
        LinkedHashMap<String, List<String>> namesByShard = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> f : weightMap.properties()) {
            if (!f.getValue().isTextual())
                throw new TensorFileException(index, "weight_map: tensor '" + f.getKey()
                        + "': shard name is not a string: " + f.getValue());
            String shard = f.getValue().textValue();
            shardOf.put(f.getKey(), shard);
            namesByShard.computeIfAbsent(shard, s -> new ArrayList<>()).add(f.getKey());
        }

        Map<String, LinkedHashMap<String, HostTensor>> loaded = new LinkedHashMap<>();
        for (Map.Entry<String, List<String>> e : namesByShard.entrySet()) {
            String shard = e.getKey();
            String firstName = e.getValue().get(0);
            Path shardPath = folder.resolve(shard).normalize();
            if (shard.isEmpty() || !shardPath.startsWith(folder) || shardPath.equals(folder))
                throw new TensorFileException(index, "weight_map: tensor '" + firstName + "': shard '" + shard
                        + "' is not a file in " + folder);
            if (!Files.isRegularFile(shardPath))
                throw new TensorFileException(index, "weight_map: tensor '" + firstName + "' maps to shard '" + shard
                        + "', which does not exist");
            LinkedHashMap<String, HostTensor> tensors = reader.read(shardPath);
            for (String name : e.getValue())
                if (!tensors.containsKey(name))
                    throw new TensorFileException(index, "weight_map: tensor '" + name + "' maps to shard '" + shard
                            + "', which does not contain it");
            for (String name : tensors.keySet()) {
                String listed = shardOf.get(name);
                if (listed == null)
                    throw new TensorFileException(shardPath, "holds tensor '" + name + "', which " + index.getFileName()
                            + " does not list");
                if (!listed.equals(shard))
                    throw new TensorFileException(shardPath, "holds tensor '" + name + "', which " + index.getFileName()
                            + " maps to shard '" + listed + "'");
            }
            loaded.put(shard, tensors);
        }

        LinkedHashMap<String, HostTensor> out = new LinkedHashMap<>();
        for (Map.Entry<String, String> e : shardOf.entrySet())
            out.put(e.getKey(), loaded.get(e.getValue()).get(e.getKey()));
        return out;
    }

    // ------------------------------------------------------------------------------------------------ writing

    /**
     * Writes a safetensors file atomically: header keys sorted (metadata first, then tensor names), the header
     * padded with spaces to a multiple of 8 bytes, tensor data in the same sorted order.
     *
     * @param metadata string metadata stored under "__metadata__" (null or empty for none)
     */
    public static void write(Path file, Map<String, HostTensor> tensors, Map<String, String> metadata)
            throws IOException {
        TreeMap<String, HostTensor> sorted = new TreeMap<>();
        for (Map.Entry<String, HostTensor> e : tensors.entrySet()) {
            if (e.getKey() == null || e.getKey().isEmpty() || e.getKey().equals(METADATA_KEY))
                throw new IllegalArgumentException(file + ": invalid tensor name '" + e.getKey() + "'");
            if (e.getValue() == null)
                throw new IllegalArgumentException(file + ": tensor '" + e.getKey() + "' is null");
            sorted.put(e.getKey(), e.getValue());
        }

        ObjectNode header = JSON.createObjectNode();
        if (metadata != null && !metadata.isEmpty()) {
            ObjectNode meta = header.putObject(METADATA_KEY);
            for (Map.Entry<String, String> e : new TreeMap<>(metadata).entrySet()) {
                if (e.getValue() == null)
                    throw new IllegalArgumentException(file + ": metadata key '" + e.getKey() + "' has a null value");
                meta.put(e.getKey(), e.getValue());
            }
        }
        long offset = 0;
        for (Map.Entry<String, HostTensor> e : sorted.entrySet()) {
            HostTensor t = e.getValue();
            ObjectNode entry = header.putObject(e.getKey());
            entry.put("dtype", t.dtype().safetensorsName);
            ArrayNode shape = entry.putArray("shape");
            for (long d : t.shape()) shape.add(d);
            ArrayNode offsets = entry.putArray("data_offsets");
            offsets.add(offset);
            offset += t.data().remaining();
            offsets.add(offset);
        }

        byte[] json = JSON.writeValueAsBytes(header);
        int padded = (json.length + 7) / 8 * 8;
        ByteBuffer head = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
        head.putLong(padded).put(json);
        while (head.hasRemaining()) head.put((byte) ' ');
        head.flip();

        writeAtomically(file, ch -> {
            writeFully(ch, head);
            for (HostTensor t : sorted.values()) writeFully(ch, t.data().duplicate());
        });
    }

    /**
     * Writes a sharded checkpoint into folder: {@code <baseName>-0000k-of-0000N.safetensors} shards (tensors taken in
     * the map's order, a new shard started when the next tensor would push the current one over maxShardBytes; a
     * single larger tensor gets a shard of its own) and {@code <baseName>.safetensors.index.json} holding
     * {"metadata": {"total_size": bytes}, "weight_map": {name: shard}}. With baseName "model" the result is what
     * {@link #readModel} reads. Always writes an index, even for a single shard.
     *
     * @param metadata string metadata stored in each shard's header (null or empty for none)
     */
    public static void writeSharded(Path folder, String baseName, Map<String, HostTensor> tensors, long maxShardBytes,
                                    Map<String, String> metadata) throws IOException {
        if (maxShardBytes <= 0)
            throw new IllegalArgumentException(folder + ": maxShardBytes must be positive, got " + maxShardBytes);
        if (tensors.isEmpty()) throw new IllegalArgumentException(folder + ": no tensors to write");
        if (baseName == null || baseName.isEmpty() || baseName.contains("/") || baseName.contains("\\"))
            throw new IllegalArgumentException(folder + ": invalid base name '" + baseName + "'");

        List<LinkedHashMap<String, HostTensor>> shards = new ArrayList<>();
        LinkedHashMap<String, HostTensor> current = new LinkedHashMap<>();
        long currentBytes = 0, totalBytes = 0;
        for (Map.Entry<String, HostTensor> e : tensors.entrySet()) {
            if (e.getValue() == null)
                throw new IllegalArgumentException(folder + ": tensor '" + e.getKey() + "' is null");
            long bytes = e.getValue().data().remaining();
            if (!current.isEmpty() && currentBytes + bytes > maxShardBytes) {
                shards.add(current);
                current = new LinkedHashMap<>();
                currentBytes = 0;
            }
            current.put(e.getKey(), e.getValue());
            currentBytes += bytes;
            totalBytes += bytes;
        }
        shards.add(current);

        Files.createDirectories(folder);
        TreeMap<String, String> weightMap = new TreeMap<>();
        for (int i = 0; i < shards.size(); i++) {
            String shardName = String.format("%s-%05d-of-%05d.safetensors", baseName, i + 1, shards.size());
            write(folder.resolve(shardName), shards.get(i), metadata);
            for (String name : shards.get(i).keySet()) weightMap.put(name, shardName);
        }

        ObjectNode index = JSON.createObjectNode();
        index.putObject("metadata").put("total_size", totalBytes);
        ObjectNode wm = index.putObject("weight_map");
        weightMap.forEach(wm::put);
        byte[] json = (JSON.writer().with(SerializationFeature.INDENT_OUTPUT).writeValueAsString(index) + "\n")
                .getBytes(StandardCharsets.UTF_8);
        writeAtomically(folder.resolve(baseName + ".safetensors.index.json"),
                ch -> writeFully(ch, ByteBuffer.wrap(json)));
    }

    /** Writes the body of a file. */
    interface ChannelWriter {
        void writeTo(FileChannel channel) throws IOException;
    }

    /**
     * Writes a file atomically: into a new temp file in the same folder, fsync, then rename over the target, so
     * readers (and memory maps of the old file) never see a half-written file. The temp file is removed on failure.
     */
    static void writeAtomically(Path file, ChannelWriter body) throws IOException {
        Path target = file.toAbsolutePath();
        Path dir = target.getParent();
        Path tmp = dir.resolve("." + target.getFileName() + "."
                + Long.toHexString(ThreadLocalRandom.current().nextLong()) + ".tmp");
        boolean moved = false;
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
                body.writeTo(ch);
                ch.force(true);
            }
            Fsync.move(tmp, target);
            moved = true;
        } finally {
            if (!moved) Files.deleteIfExists(tmp);
        }
    }

    static void writeFully(FileChannel ch, ByteBuffer buf) throws IOException {
        while (buf.hasRemaining()) ch.write(buf);
    }
}
