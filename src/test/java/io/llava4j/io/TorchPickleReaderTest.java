package io.llava4j.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.io.OutputStream;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Enumeration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;
import java.util.zip.ZipOutputStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * TorchPickleReader against fixtures made by src/test/resources/io/make_pickle_fixtures.py (real torch.save output,
 * expected values in expected.json) and against hand-made archives with disallowed pickle content.
 */
class TorchPickleReaderTest {

    /** The command the malicious fixture would run: {@code touch} of this file, in the working directory. */
    private static final Path MALICIOUS_MARKER = Path.of("llava4j_malicious_pickle_ran");

    @TempDir
    Path tmp;

    static Path fixture(String name) throws URISyntaxException {
        return Path.of(TorchPickleReaderTest.class.getResource("/io/" + name).toURI());
    }

    static String refusal(Path file) {
        return assertThrows(IOException.class, () -> TorchPickleReader.read(file)).getMessage();
    }

    @ParameterizedTest
    @ValueSource(strings = {"projector_f32.bin", "projector_f16.bin", "state_dict_bf16.bin", "views_and_params.bin"})
    void fixturesReadToTheExpectedValues(String name) throws Exception {
        JsonNode expected = new ObjectMapper().readTree(fixture("expected.json").toFile()).get(name);
        LinkedHashMap<String, HostTensor> tensors = TorchPickleReader.read(fixture(name));

        List<String> expectedNames = new ArrayList<>();
        expected.fieldNames().forEachRemaining(expectedNames::add);
        assertEquals(expectedNames, new ArrayList<>(tensors.keySet()), "names in dict order");
        for (String tensorName : expectedNames) {
            JsonNode e = expected.get(tensorName);
            HostTensor t = tensors.get(tensorName);
            assertEquals(e.get("dtype").asText(), t.dtype().safetensorsName, tensorName);
            long[] shape = new long[e.get("shape").size()];
            for (int i = 0; i < shape.length; i++) shape[i] = e.get("shape").get(i).asLong();
            assertArrayEquals(shape, t.shape(), tensorName);
            JsonNode values = e.get("values");
            if (t.dtype() == DType.I64 || t.dtype() == DType.I32) {
                long[] want = new long[values.size()];
                for (int i = 0; i < want.length; i++) want[i] = values.get(i).asLong();
                assertArrayEquals(want, t.toLongs(), tensorName);
            } else {
                float[] want = new float[values.size()];
                for (int i = 0; i < want.length; i++) want[i] = (float) values.get(i).asDouble();
                assertArrayEquals(want, t.toFloats(), tensorName); // exact: F16/BF16/F64 values are stored widened
            }
        }
    }

    @Test
    void projectorShapesAndViews() throws Exception {
        LinkedHashMap<String, HostTensor> p = TorchPickleReader.read(fixture("projector_f16.bin"));
        assertEquals(DType.F16, p.get("model.mm_projector.0.weight").dtype());
        assertArrayEquals(new long[]{4, 3}, p.get("model.mm_projector.0.weight").shape());

        LinkedHashMap<String, HostTensor> v = TorchPickleReader.read(fixture("views_and_params.bin"));
        assertArrayEquals(new float[]{1f, 1.5f, 2f, 2.5f, 3f, 3.5f}, v.get("offset_view").toFloats());
        assertArrayEquals(new float[]{4f, 4.5f, 5f, 5.5f}, v.get("shared_tail").toFloats());
        assertArrayEquals(new long[]{1, -2, 3, 1L << 40, 0, -(1L << 35)}, v.get("ids").toLongs());
        assertArrayEquals(new long[]{}, v.get("scalar").shape());
        assertArrayEquals(new long[]{0, 3}, v.get("empty").shape());
        assertArrayEquals(new float[]{0.5f, -1.5f}, v.get("param").toFloats());
    }

    @Test
    void readTensorsSurviveASafetensorsRoundTrip() throws Exception {
        LinkedHashMap<String, HostTensor> v = TorchPickleReader.read(fixture("views_and_params.bin"));
        Path out = tmp.resolve("converted.safetensors");
        Safetensors.write(out, v, Map.of("format", "pt"));
        Map<String, HostTensor> back = Safetensors.read(out).tensors();
        for (Map.Entry<String, HostTensor> e : v.entrySet())
            TensorAssertions.assertTensorEquals(e.getValue(), back.get(e.getKey()), e.getKey());
    }

    @Test
    void isTorchZip() throws Exception {
        assertTrue(TorchPickleReader.isTorchZip(fixture("projector_f32.bin")));
        assertTrue(TorchPickleReader.isTorchZip(fixture("malicious.bin")));
        assertFalse(TorchPickleReader.isTorchZip(SafetensorsTest.referenceModel()));
        assertFalse(TorchPickleReader.isTorchZip(tmp.resolve("absent.bin")));
        assertFalse(TorchPickleReader.isTorchZip(tmp));
    }

    // ------------------------------------------------------------------------------------------ refusals

    @Test
    void maliciousPickleIsRefusedAndNothingRuns() throws Exception {
        Files.deleteIfExists(MALICIOUS_MARKER);
        Path file = fixture("malicious.bin");
        String msg = refusal(file);
        assertTrue(msg.startsWith(file.toString()) && msg.contains("refusing global 'posix system'"), msg);
        assertFalse(Files.exists(MALICIOUS_MARKER), "the pickled os.system call must not run");
    }

    @Test
    void pickledModuleIsRefused() throws Exception {
        String msg = refusal(fixture("whole_module.bin"));
        assertTrue(msg.contains("whole_module.bin") && msg.contains("'torch.nn.modules.linear Linear'"), msg);
    }

    @Test
    void nonContiguousTensorIsRefused() throws Exception {
        String msg = refusal(fixture("noncontiguous.bin"));
        assertTrue(msg.contains("noncontiguous.bin") && msg.contains("tensor 'transposed'")
                && msg.contains("not contiguous") && msg.contains("stride [1, 4]"), msg);
    }

    @Test
    void disallowedOpcodesAndGlobalsAreRefused() throws IOException {
        // GLOBAL builtins.eval
        Path f = archive("eval.bin", bytes("\u0080\u0002cbuiltins\neval\nX\u0004\u0000\u0000\u0000-1+2\u0085R."));
        String msg = refusal(f);
        assertTrue(msg.contains("eval.bin") && msg.contains("refusing global 'builtins eval'"), msg);

        // INST (protocol 0 object creation) is refused as an opcode, before its module is looked at
        f = archive("inst.bin", bytes("(ios\nsystem\nX\u0002\u0000\u0000\u0000ls."));
        msg = refusal(f);
        assertTrue(msg.contains("inst.bin") && msg.contains("opcode INST (0x69)"), msg);

        // NEWOBJ
        f = archive("newobj.bin", bytes("\u0080\u0002ccollections\nOrderedDict\n)\u0081."));
        msg = refusal(f);
        assertTrue(msg.contains("opcode NEWOBJ (0x81)"), msg);

        // BINFLOAT inside an otherwise fine dict
        f = archive("float.bin", bytes("\u0080\u0002}(X\u0001\u0000\u0000\u0000aG\u003f\u00f0\u0000\u0000\u0000\u0000\u0000\u0000u."));
        msg = refusal(f);
        assertTrue(msg.contains("opcode BINFLOAT (0x47)"), msg);

        // STACK_GLOBAL goes through the same allow-list
        f = archive("stack.bin", bytes("\u0080\u0004\u008c\u0005posix\u008c\u0006system\u0093."));
        msg = refusal(f);
        assertTrue(msg.contains("refusing global 'posix system'"), msg);
    }

    @Test
    void malformedArchivesAreRefused() throws Exception {
        // not a dict
        String msg = refusal(archive("list.bin", bytes("\u0080\u0002].")));
        assertTrue(msg.contains("list.bin") && msg.contains("list, expected a dict of tensors"), msg);

        // dict value that is not a tensor
        msg = refusal(archive("str.bin", bytes("\u0080\u0002}X\u0001\u0000\u0000\u0000kX\u0001\u0000\u0000\u0000vs.")));
        assertTrue(msg.contains("entry 'k' is a str"), msg);

        // truncated pickle
        byte[] pkl = entry(fixture("projector_f32.bin"), "projector_f32/data.pkl");
        Path cut = copyArchive(fixture("projector_f32.bin"), tmp.resolve("cut.bin"),
                name -> name.endsWith("data.pkl") ? java.util.Arrays.copyOf(pkl, pkl.length / 2) : null);
        msg = refusal(cut);
        assertTrue(msg.contains("cut.bin") && msg.contains("truncated pickle"), msg);

        // missing storage record
        Path missing = copyArchive(fixture("projector_f32.bin"), tmp.resolve("missing.bin"),
                name -> name.endsWith("data/1") ? new byte[0] : null);
        msg = refusal(missing);
        assertTrue(msg.contains("missing.bin") && msg.contains("tensor 'model.mm_projector.0.bias'")
                && msg.contains("storage '1'"), msg);

        // not a zip at all
        Path notZip = SafetensorsTest.referenceModel();
        msg = refusal(notZip);
        assertTrue(msg.contains(notZip.toString()) && msg.contains("not a zip archive"), msg);
    }

    // ------------------------------------------------------------------------------------------ utilities

    private static byte[] bytes(String latin1) {
        return latin1.getBytes(StandardCharsets.ISO_8859_1);
    }

    /** A zip with just archive/data.pkl. */
    private Path archive(String name, byte[] pickle) throws IOException {
        Path file = tmp.resolve(name);
        try (ZipOutputStream zip = new ZipOutputStream(Files.newOutputStream(file))) {
            zip.putNextEntry(new ZipEntry("archive/data.pkl"));
            zip.write(pickle);
            zip.closeEntry();
        }
        return file;
    }

    private static byte[] entry(Path zipFile, String name) throws IOException {
        try (ZipFile zip = new ZipFile(zipFile.toFile())) {
            return zip.getInputStream(zip.getEntry(name)).readAllBytes();
        }
    }

    /**
     * Copies a zip; replace maps an entry name to new content (null: keep it, empty array: drop the entry).
     */
    private static Path copyArchive(Path from, Path to, Function<String, byte[]> replace) throws IOException {
        try (ZipFile in = new ZipFile(from.toFile());
             OutputStream os = Files.newOutputStream(to);
             ZipOutputStream out = new ZipOutputStream(os)) {
            for (Enumeration<? extends ZipEntry> en = in.entries(); en.hasMoreElements(); ) {
                ZipEntry e = en.nextElement();
                byte[] content = replace.apply(e.getName());
                if (content != null && content.length == 0) continue;
                if (content == null) content = in.getInputStream(e).readAllBytes();
                out.putNextEntry(new ZipEntry(e.getName()));
                out.write(content);
                out.closeEntry();
            }
        }
        return to;
    }

}
