package io.llava4j.data;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.Closeable;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A LLaMA-style tokenizer read from a model folder: {@code tokenizer.json} (HF "fast" format, run by the HF Rust
 * tokenizers library through DJL, whose native library is bundled in its jar) plus {@code tokenizer_config.json} for the
 * special tokens ({@code bos_token}, {@code eos_token}, {@code unk_token}, {@code pad_token}) and {@code add_bos_token} /
 * {@code add_eos_token}.
 *
 * <p>{@link #encode(String, boolean)} with {@code addBos = true} gives what HF's {@code tokenizer(text).input_ids} gives
 * for a LLaMA tokenizer: BOS first when {@code add_bos_token} (default true), EOS last when {@code add_eos_token}
 * (default false). The pieces themselves are encoded without the tokenizer.json post-processor and the special tokens
 * are added here, so the result follows tokenizer_config.json just as transformers' LlamaTokenizer(Fast) does.
 * Special tokens written in the text (e.g. {@code </s>}) are recognised as such, as in HF.
 *
 * <p>The pad id is tokenizer_config's {@code pad_token}, else the unk token (LLaVA sets pad = unk for v1 models).
 *
 * <p>DJL never downloads here: unless the caller set it, the system property {@code ai.djl.offline} is set to true before
 * the native library is loaded, so a platform without a bundled library fails loudly instead of fetching one.
 */
public final class LlavaTokenizer implements Closeable {

    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path folder;
    private final HuggingFaceTokenizer hf;
    private final Map<String, Integer> vocab;
    private final int vocabSize;
    private final int bos, eos, unk, pad;
    private final boolean addBosToken, addEosToken;

    private LlavaTokenizer(Path folder, HuggingFaceTokenizer hf, Map<String, Integer> vocab, int vocabSize,
                           int bos, int eos, int unk, int pad, boolean addBosToken, boolean addEosToken) {
        this.folder = folder;
        this.hf = hf;
        this.vocab = vocab;
        this.vocabSize = vocabSize;
        this.bos = bos;
        this.eos = eos;
        this.unk = unk;
        this.pad = pad;
        this.addBosToken = addBosToken;
        this.addEosToken = addEosToken;
    }

    /** Loads {@code tokenizer.json} and (if present) {@code tokenizer_config.json} from a model folder. */
    public static LlavaTokenizer load(Path folder) throws IOException {
        Path tokFile = folder.resolve("tokenizer.json");
        if (!Files.isRegularFile(tokFile))
            throw new DataException(tokFile + ": not found (a tokenizer folder needs tokenizer.json)");
        JsonNode tok;
        try {
            tok = JSON.readTree(tokFile.toFile());
        } catch (IOException e) {
            throw new DataException(tokFile + ": not valid JSON: " + e.getMessage(), e);
        }
        Map<String, Integer> vocab = readVocab(tokFile, tok);
        int vocabSize = 0;
        for (int id : vocab.values()) vocabSize = Math.max(vocabSize, id + 1);

        Path cfgFile = folder.resolve("tokenizer_config.json");
        JsonNode cfg = null;
        if (Files.isRegularFile(cfgFile)) {
            try {
                cfg = JSON.readTree(cfgFile.toFile());
            } catch (IOException e) {
                throw new DataException(cfgFile + ": not valid JSON: " + e.getMessage(), e);
            }
        }
        String where = cfg != null ? cfgFile.toString() : tokFile + " (no tokenizer_config.json)";
        int unk = specialId(vocab, cfg, "unk_token", "<unk>", where);
        int bos = specialId(vocab, cfg, "bos_token", "<s>", where);
        int eos = specialId(vocab, cfg, "eos_token", "</s>", where);
        int pad = specialId(vocab, cfg, "pad_token", null, where);
        if (pad < 0) pad = unk;
        if (pad < 0)
            throw new DataException(where + ": no pad_token and no unk_token to pad with");
        boolean addBos = cfg == null || !cfg.has("add_bos_token") || cfg.get("add_bos_token").asBoolean(true);
        boolean addEos = cfg != null && cfg.has("add_eos_token") && cfg.get("add_eos_token").asBoolean(false);
        if (addBos && bos < 0) throw new DataException(where + ": add_bos_token is true but there is no bos_token");
        if (addEos && eos < 0) throw new DataException(where + ": add_eos_token is true but there is no eos_token");

        if (System.getProperty("ai.djl.offline") == null) System.setProperty("ai.djl.offline", "true");
        Map<String, String> options = new HashMap<>();
        options.put("addSpecialTokens", "false");
        options.put("truncation", "false");
        options.put("padding", "false");
        options.put("maxLength", "-1");
        HuggingFaceTokenizer hf = HuggingFaceTokenizer.newInstance(tokFile, options);
        return new LlavaTokenizer(folder, hf, vocab, vocabSize, bos, eos, unk, pad, addBos, addEos);
    }

    /** token string to id, from the model's vocabulary (BPE/WordPiece map or Unigram list) and the added tokens. */
    private static Map<String, Integer> readVocab(Path file, JsonNode tok) {
        Map<String, Integer> vocab = new HashMap<>();
        JsonNode v = tok.path("model").path("vocab");
        if (v.isObject()) {
            for (Map.Entry<String, JsonNode> e : v.properties()) vocab.put(e.getKey(), e.getValue().asInt());
        } else if (v.isArray()) {
            for (int i = 0; i < v.size(); i++) vocab.put(v.get(i).get(0).asText(), i);
        } else {
            throw new DataException(file + ": model.vocab is missing or neither an object nor a list");
        }
        for (JsonNode a : tok.path("added_tokens")) vocab.put(a.path("content").asText(), a.path("id").asInt());
        return vocab;
    }

    /**
     * The id of a special token named in tokenizer_config.json (a string or an AddedToken object {"content": ...}).
     * When the field is absent, transformers' LlamaTokenizer default ({@code fallback}) is looked up in the
     * vocabulary. Returns -1 when there is no such token.
     */
    private static int specialId(Map<String, Integer> vocab, JsonNode cfg, String field, String fallback, String where) {
        String content = null;
        if (cfg != null && cfg.has(field) && !cfg.get(field).isNull()) {
            JsonNode n = cfg.get(field);
            content = n.isTextual() ? n.asText() : n.path("content").asText(null);
            if (content == null) throw new DataException(where + ": field " + field + " is neither a string nor {\"content\": ...}");
            Integer id = vocab.get(content);
            if (id == null) throw new DataException(where + ": field " + field + " = \"" + content + "\" is not in the vocabulary");
            return id;
        }
        if (fallback != null && vocab.containsKey(fallback)) return vocab.get(fallback);
        return -1;
    }

    /**
     * Encodes {@code text}. With {@code addBos} the special tokens of HF's {@code tokenizer(text)} are added: BOS first
     * when add_bos_token, EOS last when add_eos_token. Without it only the text's own tokens come back.
     */
    public int[] encode(String text, boolean addBos) {
        long[] ids = hf.encode(text, false, false).getIds();
        int front = addBos && addBosToken ? 1 : 0;
        int back = addBos && addEosToken ? 1 : 0;
        int[] out = new int[ids.length + front + back];
        if (front == 1) out[0] = bos;
        for (int i = 0; i < ids.length; i++) out[front + i] = Math.toIntExact(ids[i]);
        if (back == 1) out[out.length - 1] = eos;
        return out;
    }

    /** Decodes ids to text, special tokens included. */
    public String decode(int[] ids) {
        return decode(ids, false);
    }

    /** Decodes ids to text; ids outside the vocabulary (e.g. LLaVA's image token -200) are an error. */
    public String decode(int[] ids, boolean skipSpecialTokens) {
        long[] l = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= vocabSize)
                throw new IllegalArgumentException("id " + ids[i] + " at position " + i + " is outside the vocabulary [0, " + vocabSize + ")");
            l[i] = ids[i];
        }
        return hf.decode(l, skipSpecialTokens);
    }

    /** The tokens (pieces) of {@code text} without special tokens added, e.g. {@code ["▁a", "▁red"]}. */
    public List<String> tokens(String text) {
        return new ArrayList<>(List.of(hf.encode(text, false, false).getTokens()));
    }

    /**
     * LLaVA's {@code tokenizer_image_token}: splits {@code prompt} on {@code <image>}, encodes each chunk as
     * {@code tokenizer(chunk)} does, keeps only the first chunk's BOS and puts one {@code imageTokenIndex} between
     * chunks. Stray {@code ▁} tokens around the image come out exactly as in LLaVA.
     */
    public static int[] tokenizerImageToken(LlavaTokenizer tok, String prompt, int imageTokenIndex) {
        List<int[]> chunks = new ArrayList<>();
        for (String c : Conversation.pySplit(prompt, Conversation.IMAGE)) chunks.add(tok.encode(c, true));
        int offset = chunks.get(0).length > 0 && chunks.get(0)[0] == tok.bos && tok.bos >= 0 ? 1 : 0;
        List<Integer> ids = new ArrayList<>();
        if (offset == 1) ids.add(chunks.get(0)[0]);
        for (int k = 0; k < chunks.size(); k++) {
            if (k > 0) ids.add(imageTokenIndex);
            int[] c = chunks.get(k);
            for (int j = offset; j < c.length; j++) ids.add(c[j]);
        }
        return ids.stream().mapToInt(Integer::intValue).toArray();
    }

    /** The id of a token string (a vocabulary entry or an added token), or -1 if there is none. */
    public int tokenIdOf(String token) {
        Integer id = vocab.get(token);
        return id == null ? -1 : id;
    }

    /** BOS id, or -1 if the tokenizer has none. */
    public int bos() {
        return bos;
    }

    /** EOS id, or -1 if the tokenizer has none. */
    public int eos() {
        return eos;
    }

    /** UNK id, or -1 if the tokenizer has none. */
    public int unk() {
        return unk;
    }

    /** Padding id: tokenizer_config's pad_token, else unk. */
    public int pad() {
        return pad;
    }

    /** Whether {@code encode(text, true)} starts with BOS (tokenizer_config add_bos_token, default true). */
    public boolean addsBos() {
        return addBosToken;
    }

    /** Largest id of the vocabulary and the added tokens, plus one. */
    public int vocabSize() {
        return vocabSize;
    }

    /** The folder this tokenizer was read from. */
    public Path folder() {
        return folder;
    }

    @Override
    public void close() {
        hf.close();
    }
}
