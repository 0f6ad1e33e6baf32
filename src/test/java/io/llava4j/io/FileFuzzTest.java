package io.llava4j.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.TestData;
import io.llava4j.config.ConfigException;
import io.llava4j.config.LlavaConfig;
import io.llava4j.data.DataException;
import io.llava4j.data.LlavaJson;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URISyntaxException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;
import java.util.zip.ZipOutputStream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Mutation fuzzing of every file format llava4j reads from users: safetensors, torch.save {@code .bin} (the zip and
 * its pickle), config.json and LLaVA's JSON / JSON Lines data. Each valid fixture is mutated (bit flips, truncation,
 * splices, deleted and inserted runs, lying lengths in the safetensors header and the zip headers, pickle opcode swaps,
 * JSON values swapped for other types), seeded so that a failure names the seed and case that reproduce it. Every case
 * must end in success or in the reader's own exception type with a message naming the file — never another exception,
 * a crash or a hang — and no buffer may be sized beyond what the file can hold ({@link ReadBounds#largest()}).
 * {@code -Dllava4j.fuzz.seed=N -Dllava4j.fuzz.scale=K} reproduce or widen a run.
 */
class FileFuzzTest {
    static final long SEED = Long.getLong("llava4j.fuzz.seed", 20261128L);
    static final int SCALE = Integer.getInteger("llava4j.fuzz.scale", 1);
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    /** Reads one file the way llava4j does; returns normally when the file is acceptable. */
    interface Reader {
        void read(Path file) throws Exception;
    }

    /** Makes one mutated copy of the original bytes; describes what it did in {@code log}. */
    interface Mutator {
        byte[] mutate(byte[] original, Random rnd, StringBuilder log) throws Exception;
    }

    /** How many cases ended in success and in a clean refusal. */
    record Tally(int accepted, int refused) {}

    // ------------------------------------------------------------------------------------------------ targets

    @Test
    void safetensors() throws Exception {
        Reader read = file -> {
            Map<String, HostTensor> tensors = Safetensors.read(file).tensors();
            for (HostTensor t : tensors.values()) touch(t.data()); // every mapped byte
            sameAsTheHeaderSays(file, tensors);
        };
        List<Path> sources = List.of(TestData.expected().resolve("stage1/mm_projector.safetensors"),
                TestData.tinyLlava().resolve("model.safetensors"));
        int[] cases = {1000, 150};
        for (int i = 0; i < sources.size(); i++) {
            Tally t = fuzz(sources.get(i), "model.safetensors", cases[i] * SCALE, read, TensorFileException.class, 1,
                    generic(), FileFuzzTest::lyingHeaderLength, FileFuzzTest::lyingHeaderNumber);
            assertTrue(t.refused() > cases[i] * SCALE / 2, "most mutations of a safetensors header are caught: " + t);
            assertTrue(t.accepted() > 0, "some mutations (in the data) leave a readable file: " + t);
        }
    }

    @Test
    void torchBin() throws Exception {
        Reader read = file -> {
            for (HostTensor t : TorchPickleReader.read(file).values()) touch(t.data());
        };
        List<Path> sources = List.of(resource("/io/projector_f32.bin"), resource("/io/views_and_params.bin"),
                resource("/io/state_dict_bf16.bin"), resource("/projector/mm_projector.bin"));
        for (Path src : sources) {
            assertTrue(allStored(src), src + ": torch.save stores its entries uncompressed");
            Tally t = fuzz(src, "pytorch_model.bin", 200 * SCALE, read, TensorFileException.class, 1,
                    generic(), FileFuzzTest::lyingZipField, FileFuzzTest::lyingZipField);
            assertTrue(t.refused() >= 200 * SCALE / 4, src + ": at least a quarter of the archive mutations are refused: " + t);
            // the pickle itself, repacked into a valid archive: only the opcodes and globals of a dict of tensors pass
            Tally p = fuzz(src, "pytorch_model.bin", 150 * SCALE, read, TensorFileException.class, 1,
                    pickleMutator(src));
            assertTrue(p.refused() >= 150 * SCALE / 4, src + ": at least a quarter of the pickle mutations are refused: " + p);
        }
    }

    @Test
    void configJson() throws Exception {
        Reader read = file -> LlavaConfig.load(file.getParent(), null, LlavaConfig.ProjectorSpec.LLAVA_DEFAULT);
        List<Path> sources = List.of(TestData.tinyLlava().resolve("config.json"),
                TestData.gqa().resolve("model/config.json"));
        for (Path src : sources) {
            assertTrue(Files.isRegularFile(src), src + ": fixture missing");
            Tally t = fuzz(src, "config.json", 600 * SCALE, read, ConfigException.class, Long.MAX_VALUE, generic(), FileFuzzTest::jsonValue,
                    FileFuzzTest::jsonValue, FileFuzzTest::jsonValue);
            assertTrue(t.refused() >= 600 * SCALE / 3, src + ": at least a third of the config mutations are refused: " + t);
        }
    }

    @Test
    void llavaData() throws Exception {
        Reader read = LlavaJson::read;
        Tally a = fuzz(TestData.tinyData().resolve("finetune.json"), "data.json", 600 * SCALE, read, DataException.class, Long.MAX_VALUE,
                generic(), FileFuzzTest::jsonValue, FileFuzzTest::jsonValue);
        assertTrue(a.refused() >= 600 * SCALE / 3, "finetune.json: at least a third of the mutations are refused: " + a);
        Tally b = fuzz(TestData.tinyData().resolve("pretrain.json"), "data.json", 300 * SCALE, read, DataException.class, Long.MAX_VALUE,
                generic(), FileFuzzTest::jsonValue);
        assertTrue(b.refused() >= 300 * SCALE / 3, "pretrain.json: at least a third of the mutations are refused: " + b);
        // the same records as JSON Lines
        ArrayNode records = (ArrayNode) JSON.readTree(TestData.tinyData().resolve("finetune.json").toFile());
        StringBuilder lines = new StringBuilder();
        for (JsonNode r : records) lines.append(JSON.writeValueAsString(r)).append('\n');
        Path jsonl = tmp.resolve("source.jsonl");
        Files.writeString(jsonl, lines);
        Tally c = fuzz(jsonl, "data.jsonl", 600 * SCALE, read, DataException.class, Long.MAX_VALUE, generic(), FileFuzzTest::jsonValue);
        assertTrue(c.refused() >= 600 * SCALE / 3, "data.jsonl: at least a third of the mutations are refused: " + c);
    }

    // ------------------------------------------------------------------------------------------------ the loop

    /**
     * Runs {@code cases} mutations of {@code source}, each written to a fresh {@code name} and read; checks the outcome.
     *
     * @param allocationFactor the largest buffer a reader may size, as a multiple of the mutated file's length
     */
    private Tally fuzz(Path source, String name, int cases, Reader reader, Class<? extends Exception> error,
                       long allocationFactor, Mutator... mutators) throws Exception {
        byte[] original = Files.readAllBytes(source);
        Path dir = tmp.resolve("case");
        Files.createDirectories(dir);
        Path file = dir.resolve(name);
        Files.write(file, original);
        reader.read(file); // the unmutated fixture is valid
        int accepted = 0, refused = 0;
        long seed = SEED ^ source.getFileName().toString().hashCode() ^ name.hashCode();
        for (int c = 0; c < cases; c++) {
            Random rnd = new Random(seed + c);
            StringBuilder log = new StringBuilder();
            byte[] mutated = mutators[rnd.nextInt(mutators.length)].mutate(original, rnd, log);
            Files.write(file, mutated);
            String where = source + " case " + c + " (seed " + (seed + c) + "): " + log;
            ReadBounds.reset();
            try {
                reader.read(file);
                accepted++;
            } catch (Exception e) {
                if (!error.isInstance(e))
                    fail(where + ": threw " + e.getClass().getName() + " instead of " + error.getSimpleName() + "\n" + trace(e));
                String msg = e.getMessage();
                if (msg == null || !msg.contains(file.toString()))
                    fail(where + ": the message does not name " + file + ": " + msg);
                refused++;
            } catch (StackOverflowError | OutOfMemoryError e) {
                fail(where + ": " + e + "\n" + trace(e));
            } catch (AssertionError e) { // an accepted file whose content is wrong
                fail(where + ": accepted, but " + e.getMessage(), e);
            }
            long largest = ReadBounds.largest()[0];
            long limit = allocationFactor == Long.MAX_VALUE ? Long.MAX_VALUE : mutated.length * allocationFactor;
            if (largest > limit)
                fail(where + ": sized a buffer of " + largest + " bytes from a file of " + mutated.length);
        }
        assertEquals(cases, accepted + refused);
        return new Tally(accepted, refused);
    }

    // ------------------------------------------------------------------------------------------------ mutators

    /** Format-blind mutations: bit flips, truncation, splices, deleted / inserted / overwritten runs. */
    static Mutator generic() {
        return (b, rnd, log) -> switch (rnd.nextInt(6)) {
            case 0 -> {
                byte[] out = b.clone();
                int flips = 1 + rnd.nextInt(8);
                log.append("flip ").append(flips).append(" bits at");
                for (int i = 0; i < flips; i++) {
                    int pos = rnd.nextInt(out.length);
                    out[pos] ^= (byte) (1 << rnd.nextInt(8));
                    log.append(' ').append(pos);
                }
                yield out;
            }
            case 1 -> {
                int len = rnd.nextInt(b.length);
                log.append("truncate to ").append(len);
                yield java.util.Arrays.copyOf(b, len);
            }
            case 2 -> { // splice: a run of the file copied over another place
                int len = 1 + rnd.nextInt(Math.min(64, b.length));
                int from = rnd.nextInt(b.length - len + 1), to = rnd.nextInt(b.length - len + 1);
                log.append("splice ").append(len).append(" bytes from ").append(from).append(" to ").append(to);
                byte[] out = b.clone();
                System.arraycopy(b, from, out, to, len);
                yield out;
            }
            case 3 -> { // delete a run
                int len = 1 + rnd.nextInt(Math.min(64, b.length));
                int at = rnd.nextInt(b.length - len + 1);
                log.append("delete ").append(len).append(" bytes at ").append(at);
                ByteArrayOutputStream o = new ByteArrayOutputStream();
                o.write(b, 0, at);
                o.write(b, at + len, b.length - at - len);
                yield o.toByteArray();
            }
            case 4 -> { // insert a run of the file elsewhere
                int len = 1 + rnd.nextInt(Math.min(64, b.length));
                int from = rnd.nextInt(b.length - len + 1), at = rnd.nextInt(b.length + 1);
                log.append("insert ").append(len).append(" bytes from ").append(from).append(" at ").append(at);
                ByteArrayOutputStream o = new ByteArrayOutputStream();
                o.write(b, 0, at);
                o.write(b, from, len);
                o.write(b, at, b.length - at);
                yield o.toByteArray();
            }
            default -> { // random bytes over a run
                int len = 1 + rnd.nextInt(16);
                int at = rnd.nextInt(Math.max(1, b.length - len));
                log.append("random ").append(len).append(" bytes at ").append(at);
                byte[] out = b.clone();
                for (int i = at; i < Math.min(out.length, at + len); i++) out[i] = (byte) rnd.nextInt(256);
                yield out;
            }
        };
    }

    /** Lengths a liar would choose, around {@code honest}. */
    static long lie(long honest, long fileSize, Random rnd) {
        long[] choices = {0, 1, honest - 1, honest + 1, honest - 8, honest + 8, honest * 2, fileSize, fileSize + 1,
                Integer.MAX_VALUE, Integer.MAX_VALUE + 1L, 0xFFFFFFFFL, Long.MAX_VALUE, -1, Long.MIN_VALUE,
                100_000_000L, rnd.nextLong(), rnd.nextInt(Math.max(1, (int) Math.min(Integer.MAX_VALUE, fileSize * 2)))};
        return choices[rnd.nextInt(choices.length)];
    }

    /** The 8-byte header length says something else. */
    static byte[] lyingHeaderLength(byte[] b, Random rnd, StringBuilder log) {
        ByteBuffer buf = ByteBuffer.wrap(b.clone()).order(ByteOrder.LITTLE_ENDIAN);
        long v = lie(buf.getLong(0), b.length, rnd);
        log.append("header length ").append(buf.getLong(0)).append(" -> ").append(v);
        buf.putLong(0, v);
        return buf.array();
    }

    /** One number in the JSON header (a shape or an offset) says something else; the header length is kept right. */
    static byte[] lyingHeaderNumber(byte[] b, Random rnd, StringBuilder log) {
        long n = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        String header = new String(b, 8, (int) n, StandardCharsets.UTF_8);
        List<int[]> numbers = new ArrayList<>();
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("-?\\d+").matcher(header);
        while (m.find()) numbers.add(new int[]{m.start(), m.end()});
        int[] at = numbers.get(rnd.nextInt(numbers.size()));
        long honest = Long.parseLong(header.substring(at[0], at[1]));
        String liar = rnd.nextInt(8) == 0 ? "99999999999999999999999" : Long.toString(lie(honest, b.length, rnd));
        log.append("header number ").append(honest).append(" at ").append(at[0]).append(" -> ").append(liar);
        String edited = header.substring(0, at[0]) + liar + header.substring(at[1]);
        byte[] json = edited.getBytes(StandardCharsets.UTF_8);
        ByteBuffer out = ByteBuffer.allocate(8 + json.length + (b.length - 8 - (int) n)).order(ByteOrder.LITTLE_ENDIAN);
        out.putLong(json.length).put(json).put(b, 8 + (int) n, b.length - 8 - (int) n);
        return out.array();
    }

    /**
     * A length, offset, count or method field of a zip local header, central directory entry or end record says
     * something else.
     */
    static byte[] lyingZipField(byte[] b, Random rnd, StringBuilder log) {
        List<int[]> fields = new ArrayList<>(); // {offset, width}
        for (int i = 0; i + 4 <= b.length; i++) {
            if (b[i] != 'P' || b[i + 1] != 'K') continue;
            int[] rel;
            int[] widths;
            if (b[i + 2] == 3 && b[i + 3] == 4) { // local file header: method, crc, sizes, name and extra lengths
                rel = new int[]{8, 14, 18, 22, 26, 28};
                widths = new int[]{2, 4, 4, 4, 2, 2};
            } else if (b[i + 2] == 1 && b[i + 3] == 2) { // central directory: method, sizes, lengths, local offset
                rel = new int[]{10, 20, 24, 28, 30, 32, 42};
                widths = new int[]{2, 4, 4, 2, 2, 2, 4};
            } else if (b[i + 2] == 5 && b[i + 3] == 6) { // end of central directory: counts, size, offset
                rel = new int[]{8, 10, 12, 16, 20};
                widths = new int[]{2, 2, 4, 4, 2};
            } else if (b[i + 2] == 6 && b[i + 3] == 6) { // zip64 end record: counts, size, offset
                rel = new int[]{24, 32, 40, 48};
                widths = new int[]{8, 8, 8, 8};
            } else if (b[i + 2] == 6 && b[i + 3] == 7) { // zip64 locator: offset of the zip64 end record
                rel = new int[]{8};
                widths = new int[]{8};
            } else continue;
            for (int k = 0; k < rel.length; k++)
                if (i + rel[k] + widths[k] <= b.length) fields.add(new int[]{i + rel[k], widths[k]});
        }
        byte[] out = b.clone();
        if (fields.isEmpty()) return out;
        int[] f = fields.get(rnd.nextInt(fields.size()));
        ByteBuffer buf = ByteBuffer.wrap(out).order(ByteOrder.LITTLE_ENDIAN);
        long honest = f[1] == 2 ? buf.getShort(f[0]) & 0xffff : f[1] == 4 ? buf.getInt(f[0]) & 0xffffffffL : buf.getLong(f[0]);
        long v = rnd.nextInt(6) == 0 ? 8 /* deflated */ : lie(honest, b.length, rnd);
        log.append("zip field at ").append(f[0]).append(" (").append(f[1]).append(" bytes) ").append(honest).append(" -> ").append(v);
        if (f[1] == 2) buf.putShort(f[0], (short) v);
        else if (f[1] == 4) buf.putInt(f[0], (int) v);
        else buf.putLong(f[0], v);
        return out;
    }

    /** Mutates the archive's data.pkl (generic mutations and opcode swaps), then repacks a well-formed zip around it. */
    static Mutator pickleMutator(Path archive) throws IOException {
        Map<String, byte[]> entries = new java.util.LinkedHashMap<>();
        try (ZipFile zip = new ZipFile(archive.toFile())) {
            for (var en = zip.entries(); en.hasMoreElements(); ) {
                ZipEntry e = en.nextElement();
                entries.put(e.getName(), zip.getInputStream(e).readAllBytes());
            }
        }
        String pklName = entries.keySet().stream().filter(n -> n.endsWith("/data.pkl")).findFirst().orElseThrow();
        Mutator generic = generic();
        // every byte value a pickle opcode can have, allowed or not (protocol 0-5)
        byte[] opcodes = "(.012FIJKLMNPQRSTUVXabcdeghijlopqrstu}])".getBytes(StandardCharsets.US_ASCII);
        return (b, rnd, log) -> {
            byte[] pkl = entries.get(pklName);
            byte[] bad;
            if (rnd.nextBoolean()) {
                bad = generic.mutate(pkl, rnd, log.append("data.pkl: "));
            } else {
                bad = pkl.clone();
                int at = rnd.nextInt(bad.length);
                byte op = rnd.nextBoolean() ? opcodes[rnd.nextInt(opcodes.length)] : (byte) (0x80 + rnd.nextInt(0x19));
                log.append("data.pkl: byte ").append(at).append(" -> opcode 0x").append(Integer.toHexString(op & 0xff));
                bad[at] = op;
            }
            ByteArrayOutputStream o = new ByteArrayOutputStream();
            try (ZipOutputStream zip = new ZipOutputStream(o)) {
                for (Map.Entry<String, byte[]> e : entries.entrySet()) {
                    byte[] content = e.getKey().equals(pklName) ? bad : e.getValue();
                    ZipEntry z = new ZipEntry(e.getKey());
                    z.setMethod(ZipEntry.STORED);
                    z.setSize(content.length);
                    CRC32 crc = new CRC32();
                    crc.update(content);
                    z.setCrc(crc.getValue());
                    zip.putNextEntry(z);
                    zip.write(content);
                    zip.closeEntry();
                }
            }
            return o.toByteArray();
        };
    }

    /** One JSON value swapped for a value of another type, an extreme number, a deep nest, or removed. */
    static byte[] jsonValue(byte[] b, Random rnd, StringBuilder log) throws IOException {
        String text = new String(b, StandardCharsets.UTF_8);
        boolean lines = text.startsWith("{") && text.contains("\n{"); // JSON Lines: one record per line
        JsonNode root;
        if (lines) {
            ArrayNode all = JSON.createArrayNode();
            for (String line : text.split("\n")) if (!line.isBlank()) all.add(JSON.readTree(line));
            root = all;
        } else root = JSON.readTree(b);
        List<JsonNode> containers = new ArrayList<>();
        collect(root, containers);
        JsonNode parent = containers.get(rnd.nextInt(containers.size()));
        JsonNodeFactory f = JsonNodeFactory.instance;
        JsonNode[] replacements = {f.nullNode(), f.textNode("four"), f.textNode(""), f.numberNode(0), f.numberNode(-1),
                f.numberNode(Integer.MAX_VALUE), f.numberNode(Long.MAX_VALUE), f.numberNode(1e308), f.numberNode(-2.5),
                f.numberNode(new java.math.BigInteger("123456789012345678901234567890")), f.booleanNode(true),
                f.arrayNode(), f.objectNode(), f.textNode("<image>\n<image>"), f.textNode("../../etc/passwd"),
                f.textNode(DEEP), f.textNode("x".repeat(10_000))};
        JsonNode value = replacements[rnd.nextInt(replacements.length)];
        boolean remove = rnd.nextInt(5) == 0;
        if (parent instanceof ObjectNode o) {
            List<String> names = new ArrayList<>();
            o.fieldNames().forEachRemaining(names::add);
            if (names.isEmpty()) {
                o.set("unexpected", value);
                log.append("add field");
            } else {
                String key = names.get(rnd.nextInt(names.size()));
                log.append(remove ? "remove " : "set ").append(key).append(remove ? "" : " to " + abbreviate(value));
                if (remove) o.remove(key);
                else o.set(key, value);
            }
        } else {
            ArrayNode a = (ArrayNode) parent;
            if (a.isEmpty()) {
                a.add(value);
                log.append("add element");
            } else {
                int i = rnd.nextInt(a.size());
                log.append(remove ? "remove element " : "set element ").append(i).append(remove ? "" : " to " + abbreviate(value));
                if (remove) a.remove(i);
                else a.set(i, value);
            }
        }
        String out;
        if (!lines) out = JSON.writeValueAsString(root);
        else {
            StringBuilder sb = new StringBuilder();
            for (JsonNode r : root) sb.append(JSON.writeValueAsString(r)).append('\n');
            out = sb.toString();
        }
        // nesting deeper than Jackson writes (or reads: it refuses beyond 1000 levels)
        return out.replace("\"" + DEEP + "\"", "[".repeat(5000) + "]".repeat(5000)).getBytes(StandardCharsets.UTF_8);
    }

    private static String abbreviate(JsonNode v) {
        String s = v.toString();
        return s.length() > 40 ? s.substring(0, 40) + "…" : s;
    }

    private static void collect(JsonNode n, List<JsonNode> out) {
        if (n.isContainerNode()) out.add(n);
        for (Iterator<JsonNode> it = n.elements(); it.hasNext(); ) collect(it.next(), out);
    }

    private static final String DEEP = "__nested 5000 deep__";

    // ------------------------------------------------------------------------------------------------ utilities

    private static long touch(ByteBuffer data) {
        byte[] all = new byte[data.remaining()];
        data.duplicate().get(all);
        long sum = 0;
        for (byte x : all) sum += x;
        return sum;
    }

    /**
     * A safetensors file the reader accepted holds what its header says, read here independently of the reader: the
     * same tensor names, dtypes and shapes, and each tensor's bytes are the file's bytes at its data_offsets.
     */
    private static void sameAsTheHeaderSays(Path file, Map<String, HostTensor> read) throws IOException {
        byte[] b = Files.readAllBytes(file);
        int n = (int) ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        JsonNode header = JSON.readTree(new String(b, 8, n, StandardCharsets.UTF_8));
        java.util.Set<String> names = new java.util.TreeSet<>();
        header.fieldNames().forEachRemaining(names::add);
        names.remove("__metadata__");
        assertEquals(names, new java.util.TreeSet<>(read.keySet()), file + ": tensor names");
        for (String name : names) {
            JsonNode h = header.get(name);
            HostTensor t = read.get(name);
            assertEquals(DType.ofSafetensors(h.get("dtype").asText()), t.dtype(), name + ": dtype");
            long[] shape = new long[h.get("shape").size()];
            for (int i = 0; i < shape.length; i++) shape[i] = h.get("shape").get(i).asLong();
            org.junit.jupiter.api.Assertions.assertArrayEquals(shape, t.shape(), name + ": shape");
            int begin = 8 + n + h.get("data_offsets").get(0).asInt(), end = 8 + n + h.get("data_offsets").get(1).asInt();
            byte[] got = new byte[t.data().remaining()];
            t.data().duplicate().get(got);
            org.junit.jupiter.api.Assertions.assertArrayEquals(java.util.Arrays.copyOfRange(b, begin, end), got,
                    name + ": the bytes at its data_offsets");
        }
    }

    private static boolean allStored(Path zipFile) throws IOException {
        try (ZipFile zip = new ZipFile(zipFile.toFile())) {
            return zip.stream().allMatch(e -> e.getMethod() == ZipEntry.STORED);
        }
    }

    private static Path resource(String name) throws URISyntaxException {
        java.net.URL url = FileFuzzTest.class.getResource(name);
        if (url == null) fail("test fixture " + name + " is missing from src/test/resources");
        return Path.of(url.toURI());
    }

    private static String trace(Throwable e) {
        StringWriter w = new StringWriter();
        e.printStackTrace(new PrintWriter(w));
        return w.toString();
    }
}
