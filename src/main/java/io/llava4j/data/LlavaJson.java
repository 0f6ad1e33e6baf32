package io.llava4j.data;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Reads LLaVA training data: a JSON array of {@code {id, image?, conversations: [{from, value}, ...]}} (LCS-558K,
 * llava_v1_5_mix665k), or JSON Lines (one such object a line) when the file name ends in {@code .jsonl}.
 * The array is streamed record by record, so a large file is never held as one JSON tree.
 *
 * <p>Every problem is a {@link DataException} naming the file, the record (index from 0, and id) and the field:
 * missing or mistyped {@code conversations}, {@code from} or {@code value}; an {@code image} that is a list ("multiple
 * images not supported") or not a string. Other fields are ignored. An empty value and an unknown role are the
 * template's to judge ({@link Conversation}), as in LLaVA: plain does not look at roles, v1 refuses an unknown one.
 */
public final class LlavaJson {

    private static final ObjectMapper JSON = new ObjectMapper();

    private LlavaJson() {
    }

    /** All records of {@code file}; the first bad one is a {@link DataException}. */
    public static List<LlavaRecord> read(Path file) throws IOException {
        return read(file, f -> {
            throw new DataException(f.message());
        });
    }

    /**
     * All well-formed records of {@code file}. A record whose JSON parses but whose shape is wrong (and, in a
     * {@code .jsonl} file, a line that is not JSON) goes to {@code onBad} as a {@link DataProblem#JSON_SHAPE} finding and
     * is left out; records keep their index in the file. JSON syntax errors in an array stop the reading (nothing after
     * them can be trusted): a {@link DataException} with the line and column.
     */
    public static List<LlavaRecord> read(Path file, java.util.function.Consumer<Finding> onBad) throws IOException {
        if (!Files.isRegularFile(file)) throw new DataException(file + ": data file not found");
        String name = file.getFileName().toString();
        if (name.endsWith(".yaml") || name.endsWith(".yml")) return readMix(file, onBad);
        return name.endsWith(".jsonl") ? readLines(file, onBad) : readArray(file, onBad);
    }

    /**
     * LLaVA-NeXT's data mixture: a YAML file {@code datasets: [{json_path, sampling_strategy}]} whose records are the
     * concatenation, in order, of each file's selection: {@code all} (the default), {@code first:N} / {@code first:P%}
     * (the first N, or ceil(P·n/100), entries), {@code end:…} (the last ones). {@code random:…} draws with Python's
     * unseeded shuffle in LLaVA-NeXT, which cannot be reproduced: refused by name. A relative {@code json_path} is
     * read as given (LLaVA-NeXT's working directory), else beside the YAML file. Records are numbered in the mixture
     * (their {@link LlavaRecord#source} names the file and the record's place in it).
     */
    private static List<LlavaRecord> readMix(Path yaml, java.util.function.Consumer<Finding> onBad) throws IOException {
        JsonNode root;
        try {
            root = new com.fasterxml.jackson.dataformat.yaml.YAMLMapper().readTree(yaml.toFile());
        } catch (JsonProcessingException e) {
            throw new DataException(yaml + ": not valid YAML: " + e.getOriginalMessage(), e);
        }
        JsonNode datasets = root == null ? null : root.get("datasets");
        if (datasets == null || !datasets.isArray() || datasets.isEmpty())
            throw new DataException(yaml + ": field datasets: expected a list of {json_path, sampling_strategy}");
        List<LlavaRecord> out = new ArrayList<>();
        int offset = 0, k = 0;
        for (JsonNode d : datasets) {
            String where = yaml + ": datasets[" + k++ + "]";
            if (!d.isObject() || !d.path("json_path").isTextual())
                throw new DataException(where + ": field json_path: missing or not a string");
            Path json = Path.of(d.get("json_path").asText());
            if (!json.isAbsolute() && !Files.isRegularFile(json) && yaml.getParent() != null) json = yaml.getParent().resolve(json);
            List<Finding> bad = new ArrayList<>();
            List<LlavaRecord> recs = read(json, bad::add);
            int n = recs.size() + bad.size();
            String strategy = d.hasNonNull("sampling_strategy") ? d.get("sampling_strategy").asText() : "all";
            int from = 0, to = n;
            if (!strategy.equals("all")) {
                String[] kv = strategy.split(":", 2);
                if (kv.length != 2 || !(kv[0].equals("first") || kv[0].equals("end")))
                    throw new DataException(where + ": field sampling_strategy: '" + strategy + "' is not all, first:N[%] or end:N[%]"
                            + (kv[0].equals("random") ? " (LLaVA-NeXT's random draw is unseeded and cannot be reproduced)" : ""));
                int count;
                try {
                    count = kv[1].endsWith("%") ? (int) Math.ceil(Integer.parseInt(kv[1].substring(0, kv[1].length() - 1)) * (double) n / 100)
                            : Integer.parseInt(kv[1]);
                } catch (NumberFormatException e) {
                    throw new DataException(where + ": field sampling_strategy: '" + strategy + "': not a number of records", e);
                }
                count = Math.min(Math.max(count, 0), n);
                if (kv[0].equals("first")) to = count;
                else from = n - count;
            }
            for (LlavaRecord r : recs)
                if (r.index() >= from && r.index() < to)
                    out.add(new LlavaRecord(yaml + " > " + json + " record #" + r.index(), offset + r.index() - from, r.id(), r.image(),
                            r.conversations()));
            for (Finding f : bad)
                if (f.index() >= from && f.index() < to)
                    onBad.accept(new Finding(offset + f.index() - from, f.id(), f.problem(), f.message()));
            offset += to - from;
        }
        return out;
    }

    private static List<LlavaRecord> readArray(Path file, java.util.function.Consumer<Finding> onBad) throws IOException {
        List<LlavaRecord> out = new ArrayList<>();
        int index = 0;
        try (JsonParser p = JSON.getFactory().createParser(file.toFile())) {
            if (p.nextToken() != JsonToken.START_ARRAY)
                throw new DataException(file + ": expected a JSON array of records (use a .jsonl name for JSON Lines)");
            JsonToken t;
            while ((t = p.nextToken()) != JsonToken.END_ARRAY) {
                if (t == null) throw new DataException(file + ": the JSON array is not closed");
                JsonNode node = JSON.readTree(p);
                add(out, file, index++, node, onBad);
            }
        } catch (JsonProcessingException e) {
            throw new DataException(file + ": invalid JSON in record #" + index + ": " + e.getOriginalMessage()
                    + (e.getLocation() == null ? "" : " at line " + e.getLocation().getLineNr() + ", column "
                    + e.getLocation().getColumnNr()), e);
        }
        return out;
    }

    private static List<LlavaRecord> readLines(Path file, java.util.function.Consumer<Finding> onBad) throws IOException {
        List<LlavaRecord> out = new ArrayList<>();
        int index = 0, lineNr = 0;
        try (BufferedReader r = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            String line;
            while ((line = r.readLine()) != null) {
                lineNr++;
                if (line.isBlank()) continue;
                JsonNode node;
                try {
                    node = JSON.readTree(line);
                } catch (JsonProcessingException e) {
                    onBad.accept(new Finding(index, null, DataProblem.JSON_SHAPE, file + ": record #" + index + " (line " + lineNr
                            + "): invalid JSON: " + e.getOriginalMessage()));
                    index++;
                    continue;
                }
                add(out, file, index++, node, onBad);
            }
        } catch (java.nio.charset.CharacterCodingException e) {
            throw new DataException(file + ": line " + (lineNr + 1) + ": not valid UTF-8", e);
        }
        return out;
    }

    private static void add(List<LlavaRecord> out, Path file, int index, JsonNode node, java.util.function.Consumer<Finding> onBad) {
        try {
            out.add(parse(file.toString(), index, node));
        } catch (DataException e) {
            JsonNode id = node != null && node.isObject() ? node.get("id") : null;
            onBad.accept(new Finding(index, id != null && (id.isTextual() || id.isNumber()) ? id.asText() : null,
                    DataProblem.JSON_SHAPE, e.getMessage()));
        }
    }

    /** Validates one record's JSON object; {@code source} and {@code index} only serve the error messages. */
    public static LlavaRecord parse(String source, int index, JsonNode node) {
        String where = source + ": record #" + index;
        if (node == null || !node.isObject()) throw new DataException(where + ": expected a JSON object, got " + kind(node));
        String id = null;
        JsonNode idNode = node.get("id");
        if (idNode != null && !idNode.isNull()) {
            if (!idNode.isTextual() && !idNode.isNumber())
                throw new DataException(where + ": field id: expected a string or a number, got " + kind(idNode));
            id = idNode.asText();
            where += " (id \"" + id + "\")";
        }

        String image = null;
        JsonNode video = node.get("video");
        if (video != null && !video.isNull())
            throw new DataException(where + ": field video: video samples are not supported (LLaVA-NeXT / OneVision video)");
        JsonNode img = node.get("image");
        if (img != null && !img.isNull()) {
            if (img.isArray())
                throw new DataException(where + ": field image: multiple images not supported (got a list of " + img.size() + ")");
            if (!img.isTextual()) throw new DataException(where + ": field image: expected a file name, got " + kind(img));
            image = img.asText();
            if (image.isBlank()) throw new DataException(where + ": field image: empty file name");
        }

        JsonNode conv = node.get("conversations");
        if (conv == null || conv.isNull()) throw new DataException(where + ": field conversations: missing");
        if (!conv.isArray()) throw new DataException(where + ": field conversations: expected a list, got " + kind(conv));
        if (conv.isEmpty()) throw new DataException(where + ": field conversations: empty list");
        List<LlavaRecord.Turn> turns = new ArrayList<>();
        for (int i = 0; i < conv.size(); i++) {
            JsonNode t = conv.get(i);
            String field = "conversations[" + i + "]";
            if (!t.isObject()) throw new DataException(where + ": field " + field + ": expected an object {from, value}, got " + kind(t));
            JsonNode from = t.get("from");
            if (from == null || from.isNull()) throw new DataException(where + ": field " + field + ".from: missing");
            if (!from.isTextual()) throw new DataException(where + ": field " + field + ".from: expected a string, got " + kind(from));
            JsonNode value = t.get("value");
            if (value == null || value.isNull()) throw new DataException(where + ": field " + field + ".value: missing");
            if (!value.isTextual()) throw new DataException(where + ": field " + field + ".value: expected a string, got " + kind(value));
            turns.add(new LlavaRecord.Turn(from.asText(), value.asText()));
        }
        return new LlavaRecord(source, index, id, image, turns);
    }

    private static String kind(JsonNode n) {
        if (n == null || n.isNull()) return "null";
        if (n.isObject()) return "an object";
        if (n.isArray()) return "a list";
        if (n.isTextual()) return "a string";
        if (n.isNumber()) return "a number";
        if (n.isBoolean()) return "a boolean";
        return n.getNodeType().toString().toLowerCase();
    }
}
