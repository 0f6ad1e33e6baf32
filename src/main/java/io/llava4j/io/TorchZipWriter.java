package io.llava4j.io;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32;

/**
 * Writes a dict of tensors in torch.save's zip format, as LLaVA's {@code torch.save(weights, "mm_projector.bin")} does:
 * {@code archive/data.pkl} (a protocol-2 pickle of {@code {name: torch._utils._rebuild_tensor_v2(...)}} using only what
 * {@code torch.load(..., weights_only=True)} allows), {@code archive/byteorder}, {@code archive/version} and one stored
 * (uncompressed) {@code archive/data/<k>} entry per tensor. Zip64 records are used when the archive passes 4 GiB.
 * The file is written atomically.
 */
public final class TorchZipWriter {
    private static final Map<DType, String> STORAGE = Map.of(DType.F32, "FloatStorage", DType.F16, "HalfStorage",
            DType.BF16, "BFloat16Storage", DType.F64, "DoubleStorage", DType.I64, "LongStorage", DType.I32, "IntStorage",
            DType.I16, "ShortStorage", DType.I8, "CharStorage", DType.U8, "ByteStorage", DType.BOOL, "BoolStorage");

    private TorchZipWriter() {}

    /** A tensor's data as written: its bytes, or (for real-size tests) a hole of zeros that costs no disk. */
    public interface Payload {
        long size();

        long crc32();

        /** Writes the data at the channel's position (or advances the position over a hole). */
        void writeTo(FileChannel ch) throws IOException;
    }

    public static void write(Path file, Map<String, HostTensor> tensors) throws IOException {
        Map<String, Tensor> t = new LinkedHashMap<>();
        tensors.forEach((n, h) -> t.put(n, new Tensor(h.dtype(), h.shape(), bytes(h))));
        writeTensors(file, t);
    }

    /** A tensor description and its payload. */
    public record Tensor(DType dtype, long[] shape, Payload data) {}

    public static void writeTensors(Path file, Map<String, Tensor> tensors) throws IOException {
        String dir = "archive/";
        List<Entry> entries = new ArrayList<>();
        entries.add(new Entry(dir + "data.pkl", bytes(pickle(tensors))));
        entries.add(new Entry(dir + "byteorder", bytes("little".getBytes(StandardCharsets.US_ASCII))));
        int k = 0;
        for (Tensor t : tensors.values()) entries.add(new Entry(dir + "data/" + k++, t.data()));
        entries.add(new Entry(dir + "version", bytes("3\n".getBytes(StandardCharsets.US_ASCII))));
        long total = 0;
        for (Entry e : entries) total += e.data.size() + 200;
        boolean zip64 = total > 0xFFFF_FFF0L - 100_000;
        Safetensors.writeAtomically(file, ch -> writeZip(ch, entries, zip64));
    }

    private record Entry(String name, Payload data) {}

    // --------------------------------------------------------------------------------------------------- pickle

    private static byte[] pickle(Map<String, Tensor> tensors) {
        ByteArrayOutputStream p = new ByteArrayOutputStream();
        p.write(0x80);
        p.write(2); // PROTO 2
        p.write('}'); // EMPTY_DICT
        p.write('('); // MARK
        int k = 0;
        for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
            Tensor t = e.getValue();
            String storage = STORAGE.get(t.dtype());
            if (storage == null) throw new IllegalArgumentException("tensor " + e.getKey() + ": dtype " + t.dtype());
            long numel = HostTensor.numel(t.shape());
            unicode(p, e.getKey());
            global(p, "torch._utils", "_rebuild_tensor_v2");
            p.write('('); // the arguments
            p.write('('); // persistent id: ('storage', torch.XStorage, key, 'cpu', numel)
            unicode(p, "storage");
            global(p, "torch", storage);
            unicode(p, Integer.toString(k++));
            unicode(p, "cpu");
            integer(p, numel);
            p.write('t');
            p.write('Q'); // BINPERSID
            integer(p, 0); // storage offset
            p.write('(');
            for (long d : t.shape()) integer(p, d);
            p.write('t'); // size
            p.write('(');
            long stride = 1;
            long[] strides = new long[t.shape().length];
            for (int i = strides.length - 1; i >= 0; i--) {
                strides[i] = stride;
                stride *= t.shape()[i];
            }
            for (long s : strides) integer(p, s);
            p.write('t'); // stride
            p.write(0x89); // requires_grad False
            global(p, "collections", "OrderedDict");
            p.write(')');
            p.write('R'); // backward hooks: OrderedDict()
            p.write('t');
            p.write('R'); // _rebuild_tensor_v2(*args)
        }
        p.write('u'); // SETITEMS
        p.write('.'); // STOP
        return p.toByteArray();
    }

    private static void unicode(ByteArrayOutputStream p, String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        p.write('X');
        p.writeBytes(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(b.length).array());
        p.writeBytes(b);
    }

    private static void global(ByteArrayOutputStream p, String module, String name) {
        p.write('c');
        p.writeBytes((module + "\n" + name + "\n").getBytes(StandardCharsets.US_ASCII));
    }

    private static void integer(ByteArrayOutputStream p, long v) {
        if (v >= 0 && v < 256) {
            p.write('K');
            p.write((int) v);
        } else if (v >= Integer.MIN_VALUE && v <= Integer.MAX_VALUE) {
            p.write('J');
            p.writeBytes(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt((int) v).array());
        } else {
            p.write(0x8a); // LONG1, 8 bytes little-endian two's complement
            p.write(8);
            p.writeBytes(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(v).array());
        }
    }

    // --------------------------------------------------------------------------------------------------- zip

    private static Payload bytes(byte[] b) {
        return bytes(new HostTensor(DType.U8, new long[]{b.length}, ByteBuffer.wrap(b)));
    }

    private static Payload bytes(HostTensor h) {
        ByteBuffer data = h.data().duplicate();
        return new Payload() {
            public long size() {
                return data.remaining();
            }

            public long crc32() {
                CRC32 c = new CRC32();
                c.update(data.duplicate());
                return c.getValue();
            }

            public void writeTo(FileChannel ch) throws IOException {
                Safetensors.writeFully(ch, data.duplicate());
            }
        };
    }

    private static void writeZip(FileChannel ch, List<Entry> entries, boolean zip64) throws IOException {
        ByteBuffer cd = ByteBuffer.allocate(entries.size() * 200 + 64 * 1024).order(ByteOrder.LITTLE_ENDIAN);
        for (Entry e : entries) {
            long offset = ch.position(), size = e.data.size(), crc = e.data.crc32();
            byte[] name = e.name.getBytes(StandardCharsets.UTF_8);
            ByteBuffer lh = ByteBuffer.allocate(30 + name.length + (zip64 ? 20 : 0)).order(ByteOrder.LITTLE_ENDIAN);
            lh.putInt(0x04034b50).putShort((short) (zip64 ? 45 : 20)).putShort((short) 0).putShort((short) 0)
                    .putShort((short) 0).putShort((short) 0x21).putInt((int) crc)
                    .putInt(zip64 ? -1 : (int) size).putInt(zip64 ? -1 : (int) size)
                    .putShort((short) name.length).putShort((short) (zip64 ? 20 : 0)).put(name);
            if (zip64) lh.putShort((short) 1).putShort((short) 16).putLong(size).putLong(size);
            Safetensors.writeFully(ch, lh.flip());
            e.data.writeTo(ch);
            cd.putInt(0x02014b50).putShort((short) (zip64 ? 45 : 20)).putShort((short) (zip64 ? 45 : 20)).putShort((short) 0)
                    .putShort((short) 0).putShort((short) 0).putShort((short) 0x21).putInt((int) crc)
                    .putInt(zip64 ? -1 : (int) size).putInt(zip64 ? -1 : (int) size).putShort((short) name.length)
                    .putShort((short) (zip64 ? 28 : 0)).putShort((short) 0).putShort((short) 0).putShort((short) 0)
                    .putInt(0).putInt(zip64 ? -1 : (int) offset).put(name);
            if (zip64) cd.putShort((short) 1).putShort((short) 24).putLong(size).putLong(size).putLong(offset);
        }
        long cdOffset = ch.position(), cdSize = cd.position();
        Safetensors.writeFully(ch, cd.flip());
        ByteBuffer end = ByteBuffer.allocate(22 + (zip64 ? 56 + 20 : 0)).order(ByteOrder.LITTLE_ENDIAN);
        if (zip64) {
            long eocd64 = ch.position();
            end.putInt(0x06064b50).putLong(44).putShort((short) 45).putShort((short) 45).putInt(0).putInt(0)
                    .putLong(entries.size()).putLong(entries.size()).putLong(cdSize).putLong(cdOffset);
            end.putInt(0x07064b50).putInt(0).putLong(eocd64).putInt(1);
        }
        end.putInt(0x06054b50).putShort((short) 0).putShort((short) 0)
                .putShort((short) (zip64 ? 0xFFFF : entries.size())).putShort((short) (zip64 ? 0xFFFF : entries.size()))
                .putInt(zip64 ? -1 : (int) cdSize).putInt(zip64 ? -1 : (int) cdOffset).putShort((short) 0);
        Safetensors.writeFully(ch, end.flip());
    }
}
