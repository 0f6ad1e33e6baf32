package io.llava4j.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.config.LlavaConfig;
import io.llava4j.engine.Tensors;
import io.llava4j.io.Layout;
import io.llava4j.model.Llava;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Real-shaped checkpoints that cost no disk: the model a published config describes, every tensor present with its
 * real name, shape and dtype, in the published shard files of its {@code model.safetensors.index.json}, with all data
 * zero (sparse files). Used by the real-size benchmark (bench/real-size.sh) and the loading-memory test.
 *
 * <p>{@code java … io.llava4j.bench.SparseCheckpoints REAL_CONFIG_DIR OUT_DIR [F16|BF16|F32]}
 */
public final class SparseCheckpoints {
    private static final ObjectMapper JSON = new ObjectMapper();

    private SparseCheckpoints() {}

    /**
     * {@code hf REAL_CONFIG_DIR OUT_DIR [dtype]}: the model of a published config; {@code bench OUT_DIR}: the benchmark
     * shape of llava_ref.py with the reference tokenizer; {@code sample OUT_DIR SIDE [TEXT]}: a one-record data file;
     * {@code onevision REAL_CONFIG_DIR TINY_ONEVISION_DIR OUT_DIR}: a llava-hf OneVision folder from its config alone
     * ({@link #onevision}); {@code image-sample OUT_DIR NAME W H}: a one-record ChatML-ready data file {@code NAME.json}
     * with a W×H image ({@link #imageSample}).
     */
    public static void main(String[] args) throws IOException {
        switch (args.length == 0 ? "" : args[0]) {
            case "hf" -> {
                long bytes = llavaHf(Path.of(args[1]), Path.of(args[2]), args.length > 3 ? args[3] : "F16");
                System.out.printf("wrote %s: %.2f GB of (sparse) weights%n", args[2], bytes / 1e9);
            }
            case "bench" -> System.out.println("wrote " + benchShaped(Path.of(args[1]), Path.of(args[2])));
            case "zero-bench" -> System.out.println("wrote " + zeroBenchShaped(Path.of(args[1]), Path.of(args[2])));
            case "sample" -> System.out.println("wrote " + oneSample(Path.of(args[1]), Integer.parseInt(args[2])));
            case "onevision" -> {
                long bytes = onevision(Path.of(args[1]), Path.of(args[2]), Path.of(args[3]));
                System.out.printf("wrote %s: %.2f GB of (sparse) BF16 weights%n", args[3], bytes / 1e9);
            }
            case "image-sample" -> System.out.println("wrote " + imageSample(Path.of(args[1]), args[2],
                    Integer.parseInt(args[3]), Integer.parseInt(args[4])));
            case "positions" -> positions(Path.of(args[1]), Path.of(args[2]), Path.of(args[3]), args[4]);
            case "original" -> {
                long bytes = original(Path.of(args[1]), Path.of(args[2]), Path.of(args[3]));
                System.out.printf("wrote %s: %.2f GB of (sparse) weights%n", args[3], bytes / 1e9);
            }
            default -> {
                System.err.println("usage: SparseCheckpoints hf REAL_CONFIG_DIR OUT_DIR [F16|BF16|F32] | bench TINY_MODEL_DIR OUT_DIR"
                        + " | sample OUT_DIR SIDE | onevision REAL_CONFIG_DIR TINY_ONEVISION_DIR OUT_DIR | image-sample OUT_DIR NAME WIDTH HEIGHT"
                        + " | positions MODEL_DIR DATA_JSON IMAGE_FOLDER VERSION");
                System.exit(2);
            }
        }
    }

    /**
     * The benchmark configuration of llava_ref.py (CLIP-S/16 at 224 px + a 12-layer 768-wide LLaMA, vocab 32000, MHA)
     * as a sparse F16 llava-hf folder, with the tokenizer and processor files of {@code tiny} (the image size set to 224).
     */
    public static Path benchShaped(Path tiny, Path dir) throws IOException {
        ObjectNode c = (ObjectNode) JSON.readTree(tiny.resolve("config.json").toFile());
        c.put("image_token_index", 31999);
        ObjectNode v = (ObjectNode) c.get("vision_config");
        v.put("hidden_size", 384).put("intermediate_size", 1536).put("num_hidden_layers", 12).put("num_attention_heads", 6)
                .put("image_size", 224).put("patch_size", 16);
        ObjectNode t = (ObjectNode) c.get("text_config");
        t.put("hidden_size", 768).put("intermediate_size", 2048).put("num_hidden_layers", 12).put("num_attention_heads", 12)
                .put("num_key_value_heads", 12).put("vocab_size", 32000).put("max_position_embeddings", 2048);
        c.put("torch_dtype", "float16");
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("config.json"), JSON.writeValueAsString(c));
        for (String f : List.of("tokenizer.json", "tokenizer_config.json"))
            Files.copy(tiny.resolve(f), dir.resolve(f), StandardCopyOption.REPLACE_EXISTING);
        ObjectNode pp = (ObjectNode) JSON.readTree(tiny.resolve("preprocessor_config.json").toFile());
        ((ObjectNode) pp.get("crop_size")).put("height", 224).put("width", 224);
        ((ObjectNode) pp.get("size")).put("shortest_edge", 224);
        Files.writeString(dir.resolve("preprocessor_config.json"), JSON.writeValueAsString(pp));
        llavaHf(dir, dir, "F16");
        return dir;
    }

    /**
     * bench/zero.sh's model: the benchmark configuration with a larger LLM (20 layers, width 1024, MLP 2816, vocab
     * 32000: 322 M parameters; with the projector 323 M train in stage 2), as a sparse F16 llava-hf folder.
     */
    public static Path zeroBenchShaped(Path tiny, Path dir) throws IOException {
        benchShaped(tiny, dir);
        ObjectNode c = (ObjectNode) JSON.readTree(dir.resolve("config.json").toFile());
        ((ObjectNode) c.get("text_config")).put("hidden_size", 1024).put("intermediate_size", 2816).put("num_hidden_layers", 20)
                .put("num_attention_heads", 16).put("num_key_value_heads", 16);
        Files.writeString(dir.resolve("config.json"), JSON.writeValueAsString(c));
        try (java.util.stream.Stream<Path> old = Files.list(dir)) {
            for (Path f : old.filter(f -> f.getFileName().toString().endsWith(".safetensors")).toList()) Files.delete(f);
        }
        llavaHf(dir, dir, "F16");
        return dir;
    }

    /**
     * Writes an llava-hf folder for {@code configDir}'s config.json: the shards its index names (one
     * {@code model.safetensors} when it has no index), its side files, and the reference tokenizer.
     *
     * @return bytes of weight data
     */
    public static long llavaHf(Path configDir, Path out, String dtype) throws IOException {
        Files.createDirectories(out);
        for (String f : List.of("config.json", "preprocessor_config.json", "tokenizer_config.json", "special_tokens_map.json",
                "generation_config.json", "added_tokens.json"))
            if (!configDir.equals(out) && Files.isRegularFile(configDir.resolve(f))) Files.copy(configDir.resolve(f), out.resolve(f), StandardCopyOption.REPLACE_EXISTING);
        LlavaConfig cfg = LlavaConfig.load(out, null, null);
        Llava model = new Llava(cfg); // parameters are allocated lazily: nothing is touched
        int depth = cfg.projectorDepth();
        Map<String, long[]> shapes = new LinkedHashMap<>();
        Tensors.namedParameters(model).forEach((n, t) -> shapes.put(Layout.LLAVA_HF.fileName(n, depth), Tensors.shape(t)));

        Path index = configDir.resolve("model.safetensors.index.json");
        Map<String, Map<String, long[]>> shards = new TreeMap<>();
        if (Files.isRegularFile(index)) {
            JsonNode wm = JSON.readTree(index.toFile()).get("weight_map");
            for (String name : shapes.keySet()) {
                JsonNode shard = wm.get(name);
                if (shard == null) throw new IllegalStateException(index + " does not list " + name);
                shards.computeIfAbsent(shard.asText(), s -> new LinkedHashMap<>()).put(name, shapes.get(name));
            }
            Files.copy(index, out.resolve(index.getFileName()), StandardCopyOption.REPLACE_EXISTING);
        } else {
            shards.put("model.safetensors", shapes);
        }
        long total = 0;
        for (Map.Entry<String, Map<String, long[]>> s : shards.entrySet()) total += writeSparse(out.resolve(s.getKey()), s.getValue(), dtype);
        return total;
    }

    /** Shard size limit of {@link #onevision}: the BF16 OneVision-0.5B files (2.06 GB with the tied head's copy) make two shards. */
    public static final long ONEVISION_MAX_SHARD_BYTES = 2_000_000_000L;

    /**
     * A llava-hf OneVision folder (transformers before 4.52: {@code vision_tower.vision_model.…},
     * {@code multi_modal_projector.linear_{1,2}.…}, {@code image_newline}, {@code language_model.model.…} and
     * {@code language_model.lm_head.weight}) made from {@code configDir}'s config.json alone, as no published weight map is
     * in the repository: the names and shapes are those of the model llava4j builds from the config (its parameters are
     * allocated, never touched), plus the tied head's copy {@code language_model.lm_head.weight} [vocab, hidden] that
     * converted files carry and llava4j ignores. BF16, the data holes in sparse files, split in model order into
     * {@code model-0000k-of-0000N.safetensors} shards of at most {@link #ONEVISION_MAX_SHARD_BYTES} with the
     * {@code model.safetensors.index.json} transformers writes ({@code metadata.total_size}, {@code weight_map} sorted by
     * name). The tokenizer is {@code tiny}'s toy Qwen one (ids < 1040, all valid rows of the real embedding); its
     * preprocessor_config.json is adapted to the real tile size and the config's pinpoints.
     *
     * @return bytes of weight data
     */
    public static long onevision(Path configDir, Path tiny, Path out) throws IOException {
        Files.createDirectories(out);
        Files.copy(configDir.resolve("config.json"), out.resolve("config.json"), StandardCopyOption.REPLACE_EXISTING);
        LlavaConfig cfg = LlavaConfig.load(out, null, null);
        if (cfg.anyres() == null) throw new IllegalArgumentException(configDir + " is not an AnyRes (OneVision) config");
        Map<String, long[]> shapes = new LinkedHashMap<>(onevisionShapes(cfg));

        long total = 0;
        List<Map<String, long[]>> shards = new java.util.ArrayList<>();
        Map<String, long[]> current = new LinkedHashMap<>();
        long currentBytes = 0;
        for (Map.Entry<String, long[]> e : shapes.entrySet()) {
            long bytes = 2 * numel(e.getValue());
            if (!current.isEmpty() && currentBytes + bytes > ONEVISION_MAX_SHARD_BYTES) {
                shards.add(current);
                current = new LinkedHashMap<>();
                currentBytes = 0;
            }
            current.put(e.getKey(), e.getValue());
            currentBytes += bytes;
        }
        shards.add(current);
        Map<String, String> weightMap = new TreeMap<>();
        for (int i = 0; i < shards.size(); i++) {
            String file = String.format("model-%05d-of-%05d.safetensors", i + 1, shards.size());
            total += writeSparse(out.resolve(file), shards.get(i), "BF16");
            for (String name : shards.get(i).keySet()) weightMap.put(name, file);
        }
        ObjectNode index = JSON.createObjectNode();
        index.putObject("metadata").put("total_size", total);
        ObjectNode wm = index.putObject("weight_map");
        weightMap.forEach(wm::put);
        Files.writeString(out.resolve("model.safetensors.index.json"), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(index));

        for (String f : List.of("tokenizer.json", "tokenizer_config.json"))
            Files.copy(tiny.resolve(f), out.resolve(f), StandardCopyOption.REPLACE_EXISTING);
        ObjectNode pp = (ObjectNode) JSON.readTree(tiny.resolve("preprocessor_config.json").toFile());
        int side = cfg.vision().imageSize();
        ((ObjectNode) pp.get("size")).removeAll().put("height", side).put("width", side);
        pp.set("image_grid_pinpoints", JSON.readTree(out.resolve("config.json").toFile()).get("image_grid_pinpoints"));
        Files.writeString(out.resolve("preprocessor_config.json"), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(pp));
        return total;
    }

    /**
     * The llava-hf tensors of a OneVision checkpoint for {@code cfg}, in model order: every parameter of llava4j's model
     * under its llava-hf name, then {@code language_model.lm_head.weight} when the head is tied (the converted files'
     * copy of the embedding).
     */
    public static Map<String, long[]> onevisionShapes(LlavaConfig cfg) {
        Llava model = new Llava(cfg); // torch.empty: allocated, never touched (3.6 GB of address space at real size)
        Map<String, long[]> shapes = new LinkedHashMap<>();
        Tensors.namedParameters(model).forEach((n, t) -> shapes.put(Layout.LLAVA_HF.fileName(n, cfg.projectorDepth()), Tensors.shape(t)));
        String head = Layout.LM_HEAD + "weight";
        if (cfg.text().tieWordEmbeddings() && !shapes.containsKey(head))
            shapes.put(head, new long[]{cfg.text().vocabSize(), cfg.text().hiddenSize()});
        return shapes;
    }

    static long numel(long[] shape) {
        long n = 1;
        for (long d : shape) n *= d;
        return n;
    }

    /**
     * A one-record data file {@code dir/NAME.json} (ChatML-ready: a human turn with {@code <image>} and an answer) whose
     * image {@code images/NAME.png} is {@code width}×{@code height}: a colour ramp with a circle, so no tile is uniform.
     */
    public static Path imageSample(Path dir, String name, int width, int height) throws IOException {
        Files.createDirectories(dir.resolve("images"));
        java.awt.image.BufferedImage img = new java.awt.image.BufferedImage(width, height, java.awt.image.BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                img.setRGB(x, y, (255 * x / width) << 16 | (255 * y / height) << 8 | 128);
        java.awt.Graphics2D g = img.createGraphics();
        g.setColor(java.awt.Color.RED);
        int d = Math.min(width, height) / 2;
        g.fillOval((width - d) / 2, (height - d) / 2, d, d);
        g.dispose();
        javax.imageio.ImageIO.write(img, "png", dir.resolve("images/" + name + ".png").toFile());
        Path json = dir.resolve(name + ".json");
        String answer = "A red circle in the middle of a picture that fades from blue to red and green, drawn flat, with no other shapes.";
        Files.writeString(json, "[{\"id\": \"" + name + "\", \"image\": \"" + name + ".png\", \"conversations\": ["
                + "{\"from\": \"human\", \"value\": \"<image>\\nWhat is in the picture?\"},"
                + "{\"from\": \"gpt\", \"value\": \"" + answer + "\"}]}]", StandardCharsets.UTF_8);
        return json;
    }

    /**
     * Prints, for each record of {@code data}, its image's size, AnyRes grid and image tokens ({@code AnyRes}'s count,
     * the processor's) and its text ids under {@code version}: the sequence the model sees is text ids − 1 + image tokens.
     */
    public static void positions(Path model, Path data, Path imageFolder, String version) throws IOException {
        LlavaConfig cfg = LlavaConfig.load(model, null, null);
        io.llava4j.data.AnyRes.Spec spec = io.llava4j.data.AnyRes.spec(cfg);
        io.llava4j.data.LlavaTokenizer tok = io.llava4j.data.LlavaTokenizer.load(model);
        io.llava4j.data.Conversation conv = new io.llava4j.data.Conversation(
                io.llava4j.data.Conversation.Template.forTraining(version), tok, cfg.imageTokenIndex());
        for (io.llava4j.data.LlavaRecord r : io.llava4j.data.LlavaJson.read(data)) {
            io.llava4j.data.Conversation.Tokenized t = conv.tokenize(r);
            int[] hw = io.llava4j.data.ImageProcessor.size(imageFolder.resolve(r.image()));
            io.llava4j.data.AnyRes.Grid g = io.llava4j.data.AnyRes.grid(hw[0], hw[1], spec);
            int image = io.llava4j.data.AnyRes.numImageTokens(hw[0], hw[1], spec);
            long supervised = java.util.Arrays.stream(t.labels()).filter(l -> l != -100).count();
            System.out.printf("%s: image %dx%d (WxH), grid %dx%d + base = %d tiles, %d image tokens; %d text ids (%d supervised)"
                            + " -> %d positions%n", r.id(), hw[1], hw[0], g.rows(), g.cols(), g.rows() * g.cols() + 1, image,
                    t.inputIds().length, supervised, t.inputIds().length - 1 + image);
        }
    }

    /**
     * An original-LLaVA folder (liuhaotian/llava-v1.5-7b: {@code pytorch_model-0000k-of-0000N.bin} torch.save shards as
     * its published {@code pytorch_model.bin.index.json} lays them out, F16) plus the CLIP folder its
     * {@code mm_vision_tower} names ({@code OUT/clip}: config, preprocessor config and a sparse F16 safetensors file);
     * run it with {@code --vision_tower OUT/clip}.
     */
    public static long original(Path configDir, Path clipConfigDir, Path out) throws IOException {
        Files.createDirectories(out);
        Path clip = Files.createDirectories(out.resolve("clip"));
        Files.copy(configDir.resolve("config.json"), out.resolve("config.json"), StandardCopyOption.REPLACE_EXISTING);
        for (String f : List.of("config.json", "preprocessor_config.json"))
            Files.copy(clipConfigDir.resolve(f), clip.resolve(f), StandardCopyOption.REPLACE_EXISTING);
        LlavaConfig cfg = LlavaConfig.load(out, clip, null);
        Llava model = new Llava(cfg);
        int depth = cfg.projectorDepth();
        Map<String, long[]> main = new LinkedHashMap<>(), vision = new LinkedHashMap<>();
        Tensors.namedParameters(model).forEach((n, t) -> {
            Layout.Source src = Layout.ORIGINAL_LLAVA.source(n);
            if (src == Layout.Source.VISION_FOLDER) vision.put(Layout.ORIGINAL_LLAVA.fileName(n, depth), Tensors.shape(t));
            else if (src == Layout.Source.CHECKPOINT) main.put(Layout.ORIGINAL_LLAVA.fileName(n, depth), Tensors.shape(t));
        });
        long total = writeSparse(clip.resolve("model.safetensors"), vision, "F16");
        Path index = configDir.resolve("pytorch_model.bin.index.json");
        JsonNode wm = JSON.readTree(index.toFile()).get("weight_map");
        Map<String, Map<String, io.llava4j.io.TorchZipWriter.Tensor>> shards = new TreeMap<>();
        for (Map.Entry<String, JsonNode> e : wm.properties()) {
            String name = e.getKey();
            long[] shape = main.get(name);
            io.llava4j.io.DType dt = io.llava4j.io.DType.F16;
            if (shape == null && name.endsWith("rotary_emb.inv_freq")) { // a buffer LLaVA's checkpoints carry
                shape = new long[]{cfg.text().headDim() / 2};
                dt = io.llava4j.io.DType.F32;
            }
            if (shape == null) throw new IllegalStateException(index + " lists " + name + ", which the model does not have");
            long n = dt.bytes;
            for (long d : shape) n *= d;
            total += n;
            shards.computeIfAbsent(e.getValue().asText(), k -> new LinkedHashMap<>()).put(name, new io.llava4j.io.TorchZipWriter.Tensor(dt, shape, hole(n)));
        }
        for (String name : main.keySet())
            if (!wm.has(name)) throw new IllegalStateException(index + " does not list " + name);
        for (Map.Entry<String, Map<String, io.llava4j.io.TorchZipWriter.Tensor>> sh : shards.entrySet())
            io.llava4j.io.TorchZipWriter.writeTensors(out.resolve(sh.getKey()), sh.getValue());
        Files.copy(index, out.resolve(index.getFileName()), StandardCopyOption.REPLACE_EXISTING);
        return total;
    }

    /** {@code size} zero bytes that cost no disk (a hole in the file). */
    public static io.llava4j.io.TorchZipWriter.Payload hole(long size) {
        return new io.llava4j.io.TorchZipWriter.Payload() {
            public long size() {
                return size;
            }

            public long crc32() {
                java.util.zip.CRC32 c = new java.util.zip.CRC32();
                byte[] zeros = new byte[1 << 20];
                for (long left = size; left > 0; left -= zeros.length) c.update(zeros, 0, (int) Math.min(left, zeros.length));
                return c.getValue();
            }

            public void writeTo(java.nio.channels.FileChannel ch) throws IOException {
                ch.position(ch.position() + size);
            }
        };
    }

    /** A safetensors file whose header lists the tensors and whose data section is a hole of the right size. */
    public static long writeSparse(Path file, Map<String, long[]> tensors, String dtype) throws IOException {
        int size = switch (dtype) {
            case "F32" -> 4;
            case "F16", "BF16" -> 2;
            default -> throw new IllegalArgumentException(dtype);
        };
        ObjectNode header = JSON.createObjectNode();
        header.putObject("__metadata__").put("format", "pt");
        long offset = 0;
        for (Map.Entry<String, long[]> e : new TreeMap<>(tensors).entrySet()) {
            long n = 1;
            for (long d : e.getValue()) n *= d;
            ObjectNode t = header.putObject(e.getKey());
            t.put("dtype", dtype);
            ArrayNode sh = t.putArray("shape");
            for (long d : e.getValue()) sh.add(d);
            t.putArray("data_offsets").add(offset).add(offset + n * size);
            offset += n * size;
        }
        byte[] json = JSON.writeValueAsBytes(header);
        int padded = (json.length + 7) / 8 * 8;
        ByteBuffer head = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
        head.putLong(padded).put(json);
        while (head.hasRemaining()) head.put((byte) ' ');
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.setLength(0);
            f.write(head.array());
            f.setLength(8 + padded + offset); // the data: a hole that reads as zeros
        }
        return offset;
    }

    /** A one-sample LLaVA JSON file with a grey {@code side}×{@code side} PNG. */
    public static Path oneSample(Path dir, int side) throws IOException {
        Files.createDirectories(dir.resolve("images"));
        java.awt.image.BufferedImage img = new java.awt.image.BufferedImage(side, side, java.awt.image.BufferedImage.TYPE_INT_RGB);
        java.awt.Graphics2D g = img.createGraphics();
        g.setColor(new java.awt.Color(120, 140, 160));
        g.fillRect(0, 0, side, side);
        g.setColor(java.awt.Color.RED);
        g.fillOval(side / 4, side / 4, side / 2, side / 2);
        g.dispose();
        javax.imageio.ImageIO.write(img, "png", dir.resolve("images/img.png").toFile());
        Path json = dir.resolve("data.json");
        // two records, as a batch of 2 in the benchmarks; the answer is about 32 tokens with the reference tokenizer
        String answer = "A red circle in the middle of a grey square picture, drawn flat, with no other shapes around it.";
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < 2; i++)
            sb.append(i == 0 ? "" : ",").append("{\"id\": \"sample-").append(i).append("\", \"image\": \"img.png\", \"conversations\": [")
                    .append("{\"from\": \"human\", \"value\": \"<image>\\nWhat is in the picture?\"},")
                    .append("{\"from\": \"gpt\", \"value\": \"").append(answer).append("\"}]}");
        Files.writeString(json, sb.append("]").toString(), StandardCharsets.UTF_8);
        return json;
    }
}
