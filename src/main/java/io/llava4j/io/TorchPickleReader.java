package io.llava4j.io;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.Enumeration;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.ZipEntry;
import java.util.zip.ZipException;
import java.util.zip.ZipFile;

/**
 * Reads a PyTorch {@code torch.save} zip archive holding a dict of tensors (such as LLaVA's mm_projector.bin)
 * without executing any pickle code. The archive's {@code <name>/data.pkl} is interpreted by a tiny pickle VM that
 * knows only the opcodes torch.save emits for a (ordered) dict of tensors, and resolves only these globals:
 * collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter and the typed torch
 * storage classes (FloatStorage, HalfStorage, BFloat16Storage, DoubleStorage, LongStorage, IntStorage,
 * ShortStorage, CharStorage, ByteStorage, BoolStorage). Any other global or opcode is refused with an error that names
 * the file and the global/opcode. Storage bytes are read from {@code <name>/data/<key>}; tensors must be contiguous.
 * The legacy (pre-1.6, non-zip) torch.save format is not supported.
 */
public final class TorchPickleReader {

    private TorchPickleReader() {
    }

    /** True when the file is a zip archive with a {@code <name>/data.pkl} entry (the torch.save format). */
    public static boolean isTorchZip(Path file) {
        if (!Files.isRegularFile(file)) return false;
        try (InputStream in = Files.newInputStream(file)) {
            byte[] magic = in.readNBytes(4);
            if (magic.length != 4 || magic[0] != 'P' || magic[1] != 'K' || magic[2] != 3 || magic[3] != 4)
                return false;
        } catch (IOException e) {
            return false;
        }
        try (ZipFile zip = new ZipFile(file.toFile())) {
            return dataPklEntries(zip).size() == 1;
        } catch (IOException e) {
            return false;
        }
    }

    /**
     * Reads the tensors of a torch.save archive whose pickled object is a dict (or OrderedDict) of name → tensor,
     * in the dict's order. Tensor data are read-only memory maps of the archive's storage entries (torch.save stores
     * them uncompressed); a compressed entry is inflated into native memory. Nothing goes through the Java heap.
     *
     * @throws TensorFileException when the archive is malformed, holds anything other than a dict of contiguous
     *                             tensors, or its pickle uses a global or opcode outside the allowed set
     */
    public static LinkedHashMap<String, HostTensor> read(Path file) throws IOException {
        try {
            return readArchive(file);
        } catch (TensorFileException e) {
            throw e;
        } catch (java.nio.file.NoSuchFileException e) {
            throw new TensorFileException(file, "no such file", e);
        } catch (IOException | RuntimeException e) {
            // the zip libraries' own complaints about a corrupt archive (bad headers, extra fields, offsets)
            throw new TensorFileException(file, "corrupt zip archive: " + e, e);
        }
    }

    private static LinkedHashMap<String, HostTensor> readArchive(Path file) throws IOException {
        ZipFile zip;
        try {
            zip = new ZipFile(file.toFile());
        } catch (ZipException e) {
            throw new TensorFileException(file, "not a zip archive (only the zip format of torch.save, the default "
                    + "since PyTorch 1.6, is supported): " + e.getMessage(), e);
        }
        org.apache.commons.compress.archivers.zip.ZipFile data;
        try {
            data = org.apache.commons.compress.archivers.zip.ZipFile.builder().setPath(file).get();
        } catch (IOException e) {
            zip.close();
            throw new TensorFileException(file, "not a readable zip archive: " + e.getMessage(), e);
        }
        try (zip; data) {
            List<String> pkls = dataPklEntries(zip);
            if (pkls.size() != 1)
                throw new TensorFileException(file, pkls.isEmpty() ? "not a torch.save archive: no <name>/data.pkl entry"
                        : "not a torch.save archive: several data.pkl entries " + pkls);
            String prefix = pkls.get(0).substring(0, pkls.get(0).length() - "data.pkl".length());
            checkByteOrder(file, zip, prefix);

            byte[] pickle = readEntry(file, zip, zip.getEntry(prefix + "data.pkl"));
            Object root = new Unpickler(file, pickle).load();
            if (!(root instanceof PyDict dict))
                throw new TensorFileException(file, "the pickled object is a " + describe(root)
                        + ", expected a dict of tensors");

            LinkedHashMap<String, HostTensor> out = new LinkedHashMap<>();
            Map<String, ByteBuffer> storages = new HashMap<>();
            for (Map.Entry<Object, Object> e : dict.map.entrySet()) {
                if (!(e.getKey() instanceof String name))
                    throw new TensorFileException(file, "dict key " + e.getKey() + " is a " + describe(e.getKey())
                            + ", expected a string");
                if (!(e.getValue() instanceof TensorRef tensor))
                    throw new TensorFileException(file, "entry '" + name + "' is a " + describe(e.getValue())
                            + ", expected a tensor");
                out.put(name, materialize(file, data, prefix, name, tensor, storages));
            }
            return out;
        }
    }

    // ------------------------------------------------------------------------------------------------ archive

    private static List<String> dataPklEntries(ZipFile zip) {
        List<String> out = new ArrayList<>();
        for (Enumeration<? extends ZipEntry> en = zip.entries(); en.hasMoreElements(); ) {
            String name = en.nextElement().getName();
            int slash = name.indexOf('/');
            if (slash > 0 && name.substring(slash + 1).equals("data.pkl")) out.add(name);
        }
        return out;
    }

    private static void checkByteOrder(Path file, ZipFile zip, String prefix) throws IOException {
        ZipEntry entry = zip.getEntry(prefix + "byteorder");
        if (entry == null) return; // archives before PyTorch 2.1 have no byteorder record and are little-endian
        String order = new String(readEntry(file, zip, entry), StandardCharsets.US_ASCII).trim();
        if (!order.equals("little"))
            throw new TensorFileException(file, "byteorder '" + order + "' is not supported (only little-endian)");
    }

    private static byte[] readEntry(Path file, ZipFile zip, ZipEntry entry) throws IOException {
        long size = entry.getSize();
        int length = ReadBounds.check(file, "zip entry '" + entry.getName() + "'", size, entryBound(file, entry.getMethod(),
                entry.getCompressedSize()));
        byte[] bytes = new byte[length];
        try (InputStream in = zip.getInputStream(entry)) {
            int n = in.readNBytes(bytes, 0, length);
            if (n != length)
                throw new TensorFileException(file, "zip entry '" + entry.getName() + "' is truncated: read "
                        + n + " of " + size + " bytes");
            if (in.read() >= 0)
                throw new TensorFileException(file, "zip entry '" + entry.getName() + "' holds more than its declared "
                        + size + " bytes");
            return bytes;
        } catch (ZipException e) {
            throw new TensorFileException(file, "zip entry '" + entry.getName() + "' is corrupt: " + e.getMessage(), e);
        }
    }

    /**
     * The most bytes a zip entry can hold, from what is actually in the file: a stored entry no more than the file,
     * a deflated one no more than deflate's largest expansion of its compressed bytes (themselves within the file).
     */
    private static long entryBound(Path file, int method, long compressedSize) throws IOException {
        long fileSize = Files.size(file);
        if (method == ZipEntry.STORED) return fileSize;
        if (compressedSize < 0 || compressedSize > fileSize)
            throw new TensorFileException(file, "a zip entry's compressed size " + compressedSize
                    + " exceeds the file's " + fileSize + " bytes (truncated or corrupt)");
        return Math.min(compressedSize * ReadBounds.DEFLATE_MAX_RATIO, Integer.MAX_VALUE - 8);
    }

    /**
     * A storage entry's bytes: a read-only memory map of the archive where the entry is stored (torch.save's way, so
     * the data cost no heap and only clean, evictable page cache), otherwise inflated into a direct (native) buffer.
     */
    private static ByteBuffer entryData(Path file, org.apache.commons.compress.archivers.zip.ZipFile zip,
                                        org.apache.commons.compress.archivers.zip.ZipArchiveEntry entry) throws IOException {
        long size = entry.getSize();
        if (size < 0)
            throw new TensorFileException(file, "zip entry '" + entry.getName() + "': unknown size");
        int length = ReadBounds.check(file, "zip entry '" + entry.getName() + "'", size,
                entryBound(file, entry.getMethod(), entry.getCompressedSize()));
        if (size == 0) return ByteBuffer.allocate(0);
        if (entry.getMethod() == java.util.zip.ZipEntry.STORED) {
            long offset = entry.getDataOffset();
            try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(file, java.nio.file.StandardOpenOption.READ)) {
                if (offset < 0 || offset + size > ch.size())
                    throw new TensorFileException(file, "zip entry '" + entry.getName() + "' is truncated: " + size
                            + " bytes at offset " + offset + " exceed the file's " + ch.size() + " bytes");
                return ch.map(java.nio.channels.FileChannel.MapMode.READ_ONLY, offset, size);
            }
        }
        ByteBuffer out = ByteBuffer.allocateDirect(length);
        try (InputStream in = zip.getInputStream(entry)) {
            byte[] chunk = new byte[1 << 16];
            int n;
            while ((n = in.read(chunk)) > 0) {
                if (n > out.remaining())
                    throw new TensorFileException(file, "zip entry '" + entry.getName() + "' holds more than its declared " + size + " bytes");
                out.put(chunk, 0, n);
            }
        } catch (ZipException e) {
            throw new TensorFileException(file, "zip entry '" + entry.getName() + "' is corrupt: " + e.getMessage(), e);
        }
        if (out.hasRemaining())
            throw new TensorFileException(file, "zip entry '" + entry.getName() + "' is truncated: read "
                    + out.position() + " of " + size + " bytes");
        return out.flip();
    }

    /** Turns a rebuilt tensor reference into a HostTensor over its (cached) storage bytes. */
    private static HostTensor materialize(Path file, org.apache.commons.compress.archivers.zip.ZipFile zip, String prefix, String name, TensorRef t,
                                          Map<String, ByteBuffer> storages) throws IOException {
        String where = "tensor '" + name + "': ";
        StorageRef s = t.storage;
        long[] size = t.size, stride = t.stride;
        if (size.length != stride.length)
            throw new TensorFileException(file, where + "size " + Arrays.toString(size) + " and stride "
                    + Arrays.toString(stride) + " have different ranks");
        long numel = 1;
        try {
            for (long d : size) {
                if (d < 0) throw new TensorFileException(file, where + "negative size " + Arrays.toString(size));
                numel = Math.multiplyExact(numel, d);
            }
        } catch (ArithmeticException overflow) {
            throw new TensorFileException(file, where + "size " + Arrays.toString(size) + " is too large");
        }
        if (numel > 0) {
            long expected = 1;
            for (int i = size.length - 1; i >= 0; i--) {
                if (size[i] != 1 && stride[i] != expected)
                    throw new TensorFileException(file, where + "not contiguous (size " + Arrays.toString(size)
                            + ", stride " + Arrays.toString(stride) + "); save it with .contiguous()");
                expected *= size[i];
            }
        }
        if (t.offset < 0 || (numel > 0 && t.offset > s.numel - numel))
            throw new TensorFileException(file, where + "storage offset " + t.offset + " + " + numel
                    + " elements exceed storage '" + s.key + "' of " + s.numel + " elements");

        ByteBuffer storage = storages.get(s.key);
        if (storage == null) {
            var entry = zip.getEntry(prefix + "data/" + s.key);
            if (entry == null)
                throw new TensorFileException(file, where + "storage '" + s.key + "' is missing (no zip entry '"
                        + prefix + "data/" + s.key + "')");
            storage = entryData(file, zip, entry).order(ByteOrder.LITTLE_ENDIAN);
            storages.put(s.key, storage);
        }
        long storageBytes;
        try {
            storageBytes = Math.multiplyExact(s.numel, (long) s.dtype.bytes);
        } catch (ArithmeticException overflow) {
            storageBytes = -1;
        }
        if (storage.capacity() != storageBytes)
            throw new TensorFileException(file, where + "storage '" + s.key + "' has " + storage.capacity()
                    + " bytes but " + s.numel + " elements of " + s.dtype + " need " + storageBytes);
        int from = Math.toIntExact(t.offset * s.dtype.bytes);
        int length = Math.toIntExact(numel * s.dtype.bytes);
        ByteBuffer slice = storage.duplicate().position(from).limit(from + length).slice();
        return new HostTensor(s.dtype, size.clone(), slice);
    }

    // ------------------------------------------------------------------------------------------------ pickle VM

    /** A resolved, allowed global (module and name as in the pickle). */
    private record Global(String module, String name) {
        @Override
        public String toString() {
            return module + "." + name;
        }
    }

    /** A Python tuple. */
    private record Tuple(List<Object> items) {
    }

    /** A Python list. */
    private record PyList(List<Object> items) {
    }

    /** A Python dict or OrderedDict (both keep insertion order). */
    private static final class PyDict {
        final LinkedHashMap<Object, Object> map = new LinkedHashMap<>();
    }

    /** A storage named by a persistent id: ('storage', storage type, key, location, numel). */
    private record StorageRef(DType dtype, String key, String location, long numel) {
    }

    /** A tensor rebuilt by _rebuild_tensor_v2: a view of a storage. */
    private record TensorRef(StorageRef storage, long offset, long[] size, long[] stride) {
    }

    private static final Global ORDERED_DICT = new Global("collections", "OrderedDict");
    private static final Global REBUILD_TENSOR_V2 = new Global("torch._utils", "_rebuild_tensor_v2");
    private static final Global REBUILD_PARAMETER = new Global("torch._utils", "_rebuild_parameter");
    private static final Map<Global, DType> STORAGE_TYPES = Map.of(
            new Global("torch", "FloatStorage"), DType.F32,
            new Global("torch", "HalfStorage"), DType.F16,
            new Global("torch", "BFloat16Storage"), DType.BF16,
            new Global("torch", "DoubleStorage"), DType.F64,
            new Global("torch", "LongStorage"), DType.I64,
            new Global("torch", "IntStorage"), DType.I32,
            new Global("torch", "ShortStorage"), DType.I16,
            new Global("torch", "CharStorage"), DType.I8,
            new Global("torch", "ByteStorage"), DType.U8,
            new Global("torch", "BoolStorage"), DType.BOOL);

    /** Names of all standard pickle opcodes, for error messages. */
    private static final Map<Integer, String> OPCODE_NAMES = new HashMap<>();

    static {
        String[] names = {
                "(MARK", ".STOP", "0POP", "1POP_MARK", "2DUP", "FFLOAT", "IINT", "JBININT", "KBININT1", "LLONG",
                "MBININT2", "NNONE", "PPERSID", "QBINPERSID", "RREDUCE", "SSTRING", "TBINSTRING", "USHORT_BINSTRING",
                "VUNICODE", "XBINUNICODE", "aAPPEND", "bBUILD", "cGLOBAL", "dDICT", "}EMPTY_DICT", "eAPPENDS", "gGET",
                "hBINGET", "iINST", "jLONG_BINGET", "lLIST", "]EMPTY_LIST", "oOBJ", "pPUT", "qBINPUT", "rLONG_BINPUT",
                "sSETITEM", "tTUPLE", ")EMPTY_TUPLE", "uSETITEMS", "GBINFLOAT", "BBINBYTES", "CSHORT_BINBYTES"};
        for (String n : names) OPCODE_NAMES.put((int) n.charAt(0), n.substring(1));
        String[] protocol2Plus = {"PROTO", "NEWOBJ", "EXT1", "EXT2", "EXT4", "TUPLE1", "TUPLE2", "TUPLE3", "NEWTRUE",
                "NEWFALSE", "LONG1", "LONG4", "SHORT_BINUNICODE", "BINUNICODE8", "BINBYTES8", "EMPTY_SET", "ADDITEMS",
                "FROZENSET", "NEWOBJ_EX", "STACK_GLOBAL", "MEMOIZE", "FRAME", "BYTEARRAY8", "NEXT_BUFFER",
                "READONLY_BUFFER"};
        for (int i = 0; i < protocol2Plus.length; i++) OPCODE_NAMES.put(0x80 + i, protocol2Plus[i]);
    }

    private static String describe(Object o) {
        if (o == null) return "None";
        if (o instanceof String) return "str";
        if (o instanceof Long) return "int";
        if (o instanceof Boolean) return "bool";
        if (o instanceof Tuple) return "tuple";
        if (o instanceof PyList) return "list";
        if (o instanceof PyDict) return "dict";
        if (o instanceof Global g) return "global " + g;
        if (o instanceof StorageRef) return "storage";
        if (o instanceof TensorRef) return "tensor";
        return o.getClass().getSimpleName();
    }

    /** The pickle interpreter: a stack, a mark stack and a memo, over the bytes of data.pkl. */
    private static final class Unpickler {
        private final Path file;
        private final byte[] in;
        private int pos;
        private int opcodeStart;
        private final List<Object> stack = new ArrayList<>();
        private final Deque<Integer> marks = new ArrayDeque<>();
        private final Map<Long, Object> memo = new HashMap<>();

        Unpickler(Path file, byte[] in) {
            this.file = file;
            this.in = in;
        }

        private TensorFileException error(String message) {
            return new TensorFileException(file, "data.pkl at byte " + opcodeStart + ": " + message);
        }

        Object load() throws TensorFileException {
            while (true) {
                opcodeStart = pos;
                int op = u8();
                switch (op) {
                    case 0x80 -> { // PROTO
                        int proto = u8();
                        if (proto < 2 || proto > 5) throw error("unsupported pickle protocol " + proto);
                    }
                    case 0x95 -> bytes(8); // FRAME: framing hint of protocol 4+, no effect on the result
                    case '.' -> { // STOP
                        return pop();
                    }
                    case '(' -> marks.push(stack.size());
                    case '}' -> push(new PyDict());
                    case ']' -> push(new PyList(new ArrayList<>()));
                    case ')' -> push(new Tuple(List.of()));
                    case 't' -> push(new Tuple(popMark()));
                    case 0x85 -> push(new Tuple(popN(1)));
                    case 0x86 -> push(new Tuple(popN(2)));
                    case 0x87 -> push(new Tuple(popN(3)));
                    case 'X' -> push(utf8(u32()));
                    case 0x8c -> push(utf8(u8()));
                    case 'q' -> memo.put((long) u8(), peek());
                    case 'r' -> memo.put(u32(), peek());
                    case 0x94 -> memo.put((long) memo.size(), peek()); // MEMOIZE
                    case 'h' -> push(memoGet(u8()));
                    case 'j' -> push(memoGet(u32()));
                    case 'c' -> push(global(line(), line()));
                    case 0x93 -> { // STACK_GLOBAL
                        Object name = pop(), module = pop();
                        if (!(module instanceof String m) || !(name instanceof String n))
                            throw error("STACK_GLOBAL needs two strings, got " + describe(module) + " and "
                                    + describe(name));
                        push(global(m, n));
                    }
                    case 'Q' -> push(persistentLoad(pop()));
                    case 'J' -> push(littleEndian(4, true));
                    case 'K' -> push((long) u8());
                    case 'M' -> push(littleEndian(2, false));
                    case 0x8a -> push(long1());
                    case 0x88 -> push(Boolean.TRUE);
                    case 0x89 -> push(Boolean.FALSE);
                    case 'N' -> push(null);
                    case 'R' -> {
                        Object args = pop(), callable = pop();
                        push(reduce(callable, args));
                    }
                    case 's' -> {
                        Object value = pop(), key = pop();
                        dictTarget().map.put(key, value);
                    }
                    case 'u' -> {
                        List<Object> items = popMark();
                        if (items.size() % 2 != 0) throw error("SETITEMS with an odd number of items");
                        PyDict dict = dictTarget();
                        for (int i = 0; i < items.size(); i += 2) dict.map.put(items.get(i), items.get(i + 1));
                    }
                    case 'a' -> {
                        Object value = pop();
                        listTarget().items.add(value);
                    }
                    case 'e' -> {
                        List<Object> items = popMark();
                        listTarget().items.addAll(items);
                    }
                    case 'b' -> build(pop(), peek());
                    default -> {
                        String name = OPCODE_NAMES.get(op);
                        throw error("pickle opcode " + (name != null ? name + " " : "") + String.format("(0x%02x)", op)
                                + " is not allowed in a torch.save dict of tensors");
                    }
                }
            }
        }

        // --- stack

        private void push(Object o) {
            stack.add(o);
        }

        private Object pop() throws TensorFileException {
            int floor = marks.isEmpty() ? 0 : marks.peek();
            if (stack.size() <= floor) throw error("pickle stack underflow");
            return stack.remove(stack.size() - 1);
        }

        private Object peek() throws TensorFileException {
            int floor = marks.isEmpty() ? 0 : marks.peek();
            if (stack.size() <= floor) throw error("pickle stack underflow");
            return stack.get(stack.size() - 1);
        }

        private List<Object> popN(int n) throws TensorFileException {
            Object[] items = new Object[n];
            for (int i = n - 1; i >= 0; i--) items[i] = pop();
            return Arrays.asList(items);
        }

        private List<Object> popMark() throws TensorFileException {
            if (marks.isEmpty()) throw error("no MARK on the pickle stack");
            int mark = marks.pop();
            List<Object> top = stack.subList(mark, stack.size());
            List<Object> items = new ArrayList<>(top);
            top.clear();
            return items;
        }

        private Object memoGet(long index) throws TensorFileException {
            if (!memo.containsKey(index)) throw error("memo entry " + index + " is not defined");
            return memo.get(index);
        }

        private PyDict dictTarget() throws TensorFileException {
            Object target = peek();
            if (!(target instanceof PyDict dict)) throw error("setting items on a " + describe(target));
            return dict;
        }

        private PyList listTarget() throws TensorFileException {
            Object target = peek();
            if (!(target instanceof PyList list)) throw error("appending to a " + describe(target));
            return list;
        }

        // --- operand decoding

        private byte[] bytes(long n) throws TensorFileException {
            if (n < 0 || n > in.length - pos)
                throw error("truncated pickle: needs " + n + " more bytes, " + (in.length - pos) + " left");
            byte[] out = Arrays.copyOfRange(in, pos, pos + (int) n);
            pos += (int) n;
            return out;
        }

        private int u8() throws TensorFileException {
            if (pos >= in.length) throw error("truncated pickle: no STOP opcode");
            return in[pos++] & 0xff;
        }

        private long u32() throws TensorFileException {
            return littleEndian(4, false);
        }

        private long littleEndian(int n, boolean signed) throws TensorFileException {
            byte[] b = bytes(n);
            long v = 0;
            for (int i = n - 1; i >= 0; i--) v = (v << 8) | (b[i] & 0xff);
            if (signed && n < 8 && (b[n - 1] & 0x80) != 0) v -= 1L << (8 * n);
            return v;
        }

        private long long1() throws TensorFileException {
            int n = u8();
            if (n > 8) throw error("LONG1 integer of " + n + " bytes is too large");
            return n == 0 ? 0L : littleEndian(n, true);
        }

        private String utf8(long n) throws TensorFileException {
            return new String(bytes(n), StandardCharsets.UTF_8);
        }

        private String line() throws TensorFileException {
            int start = pos;
            while (pos < in.length && in[pos] != '\n') pos++;
            if (pos >= in.length) throw error("truncated pickle: unterminated GLOBAL operand");
            String s = new String(in, start, pos - start, StandardCharsets.UTF_8);
            pos++;
            return s;
        }

        // --- the only objects this VM can make

        private Global global(String module, String name) throws TensorFileException {
            Global g = new Global(module, name);
            if (g.equals(ORDERED_DICT) || g.equals(REBUILD_TENSOR_V2) || g.equals(REBUILD_PARAMETER)
                    || STORAGE_TYPES.containsKey(g))
                return g;
            throw error("refusing global '" + module + " " + name + "': only collections.OrderedDict, "
                    + "torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter and torch storage types "
                    + "are allowed (the file holds more than a dict of tensors, or is malicious)");
        }

        private StorageRef persistentLoad(Object pid) throws TensorFileException {
            if (!(pid instanceof Tuple t) || t.items.size() != 5 || !"storage".equals(t.items.get(0)))
                throw error("persistent id must be ('storage', type, key, location, numel), got " + describe(pid));
            List<Object> p = t.items;
            if (!(p.get(1) instanceof Global type) || !STORAGE_TYPES.containsKey(type))
                throw error("persistent id: " + describe(p.get(1)) + " is not a torch storage type");
            if (!(p.get(2) instanceof String key) || !(p.get(3) instanceof String location)
                    || !(p.get(4) instanceof Long numel) || numel < 0)
                throw error("persistent id: expected (str key, str location, int numel), got ("
                        + describe(p.get(2)) + ", " + describe(p.get(3)) + ", " + describe(p.get(4)) + ")");
            return new StorageRef(STORAGE_TYPES.get(type), key, location, numel);
        }

        private Object reduce(Object callable, Object argsObj) throws TensorFileException {
            if (!(callable instanceof Global g)) throw error("REDUCE on a " + describe(callable) + " is not allowed");
            if (!(argsObj instanceof Tuple argsTuple))
                throw error("REDUCE arguments of " + g + " must be a tuple, got " + describe(argsObj));
            List<Object> args = argsTuple.items;
            if (g.equals(ORDERED_DICT)) {
                if (!args.isEmpty()) throw error("collections.OrderedDict called with arguments");
                return new PyDict();
            }
            if (g.equals(REBUILD_TENSOR_V2)) {
                // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
                if (args.size() != 6 && args.size() != 7)
                    throw error("_rebuild_tensor_v2 expects 6 or 7 arguments, got " + args.size());
                if (!(args.get(0) instanceof StorageRef storage))
                    throw error("_rebuild_tensor_v2: argument 0 is a " + describe(args.get(0)) + ", not a storage");
                if (!(args.get(1) instanceof Long offset))
                    throw error("_rebuild_tensor_v2: storage offset is a " + describe(args.get(1)));
                long[] size = longs(args.get(2), "size");
                long[] stride = longs(args.get(3), "stride");
                if (!(args.get(4) instanceof Boolean))
                    throw error("_rebuild_tensor_v2: requires_grad is a " + describe(args.get(4)));
                emptyDict(args.get(5), "_rebuild_tensor_v2: backward hooks");
                if (args.size() == 7) emptyDict(args.get(6), "_rebuild_tensor_v2: tensor metadata");
                return new TensorRef(storage, offset, size, stride);
            }
            if (g.equals(REBUILD_PARAMETER)) {
                // (data, requires_grad, backward_hooks)
                if (args.size() != 3 || !(args.get(0) instanceof TensorRef tensor) || !(args.get(1) instanceof Boolean))
                    throw error("_rebuild_parameter expects (tensor, bool, hooks)");
                emptyDict(args.get(2), "_rebuild_parameter: backward hooks");
                return tensor;
            }
            throw error("calling " + g + " is not allowed");
        }

        private long[] longs(Object o, String what) throws TensorFileException {
            if (!(o instanceof Tuple t)) throw error("_rebuild_tensor_v2: " + what + " is a " + describe(o));
            long[] out = new long[t.items.size()];
            for (int i = 0; i < out.length; i++) {
                if (!(t.items.get(i) instanceof Long v))
                    throw error("_rebuild_tensor_v2: " + what + " holds a " + describe(t.items.get(i)));
                out[i] = v;
            }
            return out;
        }

        private void emptyDict(Object o, String what) throws TensorFileException {
            if (!(o instanceof PyDict d) || !d.map.isEmpty())
                throw error(what + " must be an empty dict, got " + (o instanceof PyDict ? "a non-empty dict"
                        : describe(o)));
        }

        /**
         * BUILD is allowed only on a dict, with state None or a dict of attributes (a state_dict's OrderedDict
         * carries its '_metadata' version info this way); the attributes are not needed and are dropped.
         */
        private void build(Object state, Object target) throws TensorFileException {
            if (!(target instanceof PyDict)) throw error("BUILD on a " + describe(target) + " is not allowed");
            if (state == null) return;
            if (!(state instanceof PyDict attributes))
                throw error("BUILD state must be None or a dict, got " + describe(state));
            for (Object key : attributes.map.keySet())
                if (!(key instanceof String)) throw error("BUILD attribute name is a " + describe(key));
        }
    }
}
