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
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A LLaMA-style tokenizer read from a model folder, with {@code tokenizer_config.json} (and
 * {@code special_tokens_map.json}, whose entries win as in transformers) for the special tokens ({@code bos_token},
 * {@code eos_token}, {@code unk_token}, {@code pad_token}) and {@code add_bos_token} / {@code add_eos_token}.
 *
 * <p>Two kinds of folder:
 * <ul>
 *   <li>{@code tokenizer.model} (SentencePiece), what original LLaVA and Vicuna folders ship: run as LLaVA runs it,
 *       transformers' slow {@code LlamaTokenizer} ({@code use_fast=False}) with tokenizer_config's {@code legacy}
 *       (default true), see {@link SlowLlamaTokenizer}. Used whenever the file is there, even beside a tokenizer.json.</li>
 *   <li>otherwise {@code tokenizer.json} (HF "fast" format, run by the HF Rust tokenizers library through DJL), encoded
 *       as the file says; {@link #legacy()} is true for it.</li>
 * </ul>
 * Both libraries' native code is bundled in their jars.
 *
 * <p>{@link #encode(String, boolean)} with {@code addBos = true} gives what HF's {@code tokenizer(text).input_ids} gives
 * for a LLaMA tokenizer: BOS first when {@code add_bos_token} (default true), EOS last when {@code add_eos_token}
 * (default false). The pieces themselves are encoded without the tokenizer.json post-processor and the special tokens
 * are added here, so the result follows tokenizer_config.json just as transformers' LlamaTokenizer(Fast) does.
 * Special tokens written in the text (e.g. {@code </s>}) are recognised as such, as in HF.
 *
 * <p>The pad id is the {@code pad_token}, else the unk token (LLaVA sets pad = unk for v1 models).
 *
 * <p>A Qwen2 / Qwen1.5 byte-level BPE tokenizer.json ({@code tokenizer_class} Qwen2Tokenizer or Qwen2TokenizerFast) is
 * read as transformers reads it: no BOS, ever ({@link #bos()} is the configured bos_token or -1, {@link #addsBos()} is
 * false, {@code encode(text, true)} adds nothing; {@code add_bos_token: true} is refused); a special-token field the
 * config does not have defaults to {@code <|endoftext|>} (unk, eos, pad), one it writes as null is no token, so for the
 * released configs {@link #unk()} is -1, {@link #pad()} is {@code <|endoftext|>} and {@link #eos()} is
 * {@code <|endoftext|>} (base models) or {@code <|im_end|>} (Instruct/Chat models). The added tokens
 * ({@code <|endoftext|>}, {@code <|im_start|>}, {@code <|im_end|>}, {@code <image>}, ...) are split out of the text and
 * encode as single ids, as in HF.
 *
 * <p>DJL never downloads here: unless the caller set it, the system property {@code ai.djl.offline} is set to true before
 * the native library is loaded, so a platform without a bundled library fails loudly instead of fetching one.
 */
public final class LlavaTokenizer implements Closeable {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final List<String> SPECIAL_FIELDS = List.of("bos_token", "eos_token", "unk_token", "pad_token");

    /** What turns text into ids: a tokenizer.json or a tokenizer.model. */
    interface Backend extends Closeable {
        /** The ids of {@code text}, no BOS/EOS added. */
        int[] encode(String text);

        /** The pieces of {@code text}, no BOS/EOS added. */
        List<String> tokenize(String text);

        String decode(int[] ids, boolean skipSpecialTokens);

        /** LlamaTokenizer's {@code legacy}: whether the text after a special token is encoded as a fresh start. */
        boolean legacy();

        @Override
        void close();
    }

    private final Path folder;
    private final Backend backend;
    private final Map<String, Integer> vocab;
    private final int vocabSize;
    private final int bos, eos, unk, pad, padToken;
    private final boolean addBosToken, addEosToken, legacyAttribute;

    private LlavaTokenizer(Path folder, Backend backend, Map<String, Integer> vocab, int vocabSize,
                           int bos, int eos, int unk, int pad, int padToken, boolean addBosToken, boolean addEosToken,
                           boolean legacyAttribute) {
        this.folder = folder;
        this.backend = backend;
        this.vocab = vocab;
        this.vocabSize = vocabSize;
        this.bos = bos;
        this.eos = eos;
        this.unk = unk;
        this.pad = pad;
        this.padToken = padToken;
        this.addBosToken = addBosToken;
        this.addEosToken = addEosToken;
        this.legacyAttribute = legacyAttribute;
    }

    /**
     * Loads the tokenizer of a model folder: {@code tokenizer.model} if it is there, else {@code tokenizer.json}, plus
     * {@code tokenizer_config.json} / {@code special_tokens_map.json} if present. A folder with neither tokenizer file
     * is an error naming the folder.
     */
    public static LlavaTokenizer load(Path folder) throws IOException {
        Path spFile = folder.resolve("tokenizer.model");
        Path tokFile = folder.resolve("tokenizer.json");
        boolean sentencePiece = Files.isRegularFile(spFile);
        if (!sentencePiece && !Files.isRegularFile(tokFile))
            throw new DataException(folder + ": no tokenizer: neither tokenizer.model (SentencePiece, what LLaVA loads) nor tokenizer.json is there");
        Path cfgFile = folder.resolve("tokenizer_config.json");
        JsonNode cfg = readJsonIfPresent(cfgFile);
        JsonNode map = readJsonIfPresent(folder.resolve("special_tokens_map.json"));
        String where = cfg != null ? cfgFile.toString() : (sentencePiece ? spFile : tokFile) + " (no tokenizer_config.json)";
        Map<String, JsonNode> specials = new LinkedHashMap<>();
        for (String field : SPECIAL_FIELDS) {
            JsonNode n = map != null && map.hasNonNull(field) ? map.get(field) : cfg != null ? cfg.get(field) : null;
            if (n != null && !n.isNull()) specials.put(field, n);
        }
        if (System.getProperty("ai.djl.offline") == null) System.setProperty("ai.djl.offline", "true");

        String cls = cfg != null && cfg.hasNonNull("tokenizer_class") ? cfg.get("tokenizer_class").asText() : "";
        boolean qwen = !sentencePiece && cls.startsWith("Qwen2Tokenizer");
        Opened opened = sentencePiece ? sentencePiece(folder, spFile, cfg, map, specials, where) : tokenizerJson(tokFile);
        Map<String, Integer> vocab = opened.vocab();
        try {
            int vocabSize = 0;
            for (int id : vocab.values()) vocabSize = Math.max(vocabSize, id + 1);
            // the defaults of the tokenizer class for a field the config does not name: LlamaTokenizer's <unk> <s> </s>;
            // Qwen2Tokenizer's <|endoftext|> for unk, eos and pad, and no BOS. A field written as null is no token for Qwen.
            int unk = specialId(vocab, specials.get("unk_token"), "unk_token", qwen ? qwenDefault(cfg, map, "unk_token") : "<unk>", where);
            int bos = specialId(vocab, specials.get("bos_token"), "bos_token", qwen ? null : "<s>", where);
            int eos = specialId(vocab, specials.get("eos_token"), "eos_token", qwen ? qwenDefault(cfg, map, "eos_token") : "</s>", where);
            int padToken = specialId(vocab, specials.get("pad_token"), "pad_token", qwen ? qwenDefault(cfg, map, "pad_token") : null, where);
            int pad = padToken >= 0 ? padToken : unk;
            if (pad < 0) throw new DataException(where + ": no pad_token and no unk_token to pad with");
            boolean addBos = cfg == null || !cfg.has("add_bos_token") || cfg.get("add_bos_token").asBoolean(true);
            if (qwen) { // Qwen2Tokenizer(Fast) never adds a BOS (its tokenizer.json post-processor is ByteLevel alone)
                if (cfg.has("add_bos_token") && cfg.get("add_bos_token").asBoolean(false))
                    throw new DataException(where + ": field add_bos_token: true is not supported for " + cls
                            + " (transformers' Qwen2 tokenizers add no BOS whatever it says)");
                addBos = false;
            }
            boolean addEos = cfg != null && cfg.has("add_eos_token") && cfg.get("add_eos_token").asBoolean(false);
            if (addBos && bos < 0) throw new DataException(where + ": add_bos_token is true but there is no bos_token");
            if (addEos && eos < 0) throw new DataException(where + ": add_eos_token is true but there is no eos_token");
            boolean legacyAttribute = sentencePiece || cls.startsWith("Llama") || cls.startsWith("CodeLlama");
            return new LlavaTokenizer(folder, opened.backend(), vocab, vocabSize, bos, eos, unk, pad, padToken, addBos, addEos,
                    legacyAttribute);
        } catch (RuntimeException e) {
            opened.backend().close();
            throw e;
        }
    }

    /**
     * Qwen2Tokenizer's default for a special-token field: {@code <|endoftext|>} when neither special_tokens_map.json nor
     * tokenizer_config.json has the field at all; none (null) when one of them writes it as null, as the released Qwen
     * configs do for unk_token.
     */
    private static String qwenDefault(JsonNode cfg, JsonNode map, String field) {
        boolean written = (map != null && map.has(field)) || (cfg != null && cfg.has(field));
        return written ? null : "<|endoftext|>";
    }

    /** A backend and its vocabulary (token string to id, added tokens included). */
    private record Opened(Backend backend, Map<String, Integer> vocab) {}

    private static Opened tokenizerJson(Path tokFile) throws IOException {
        JsonNode tok;
        try {
            tok = JSON.readTree(tokFile.toFile());
        } catch (IOException e) {
            throw new DataException(tokFile + ": not valid JSON: " + e.getMessage(), e);
        }
        Map<String, Integer> vocab = readVocab(tokFile, tok);
        return new Opened(HfJson.load(tokFile), vocab);
    }

    /**
     * tokenizer.model as transformers' LlamaTokenizer sets it up: the model's pieces, the added tokens of the config,
     * and the special tokens (LlamaTokenizer's defaults {@code <unk> <s> </s>} where the config names none) as added
     * tokens, all split out of the text before sentencepiece sees it.
     */
    private static Opened sentencePiece(Path folder, Path spFile, JsonNode cfg, JsonNode map, Map<String, JsonNode> specials,
                                        String where) throws IOException {
        checkSlowLlama(cfg, where);
        boolean legacy = cfg == null || !cfg.hasNonNull("legacy") || cfg.get("legacy").asBoolean(true);
        List<String> pieces = SlowLlamaTokenizer.readPieces(spFile, Files.readAllBytes(spFile));
        Map<Integer, SlowLlamaTokenizer.AddedToken> added = addedTokens(folder, cfg, where);
        Map<String, Integer> vocab = new HashMap<>();
        for (int i = 0; i < pieces.size(); i++) vocab.putIfAbsent(pieces.get(i), i);
        Map<String, String> defaults = Map.of("unk_token", "<unk>", "bos_token", "<s>", "eos_token", "</s>");
        Set<String> allSpecial = new LinkedHashSet<>(), additional = new LinkedHashSet<>();
        String unkContent = null;
        for (String field : SPECIAL_FIELDS) {
            JsonNode n = specials.get(field);
            if (n == null && defaults.containsKey(field) && vocab.containsKey(defaults.get(field)))
                n = JSON.getNodeFactory().textNode(defaults.get(field));
            if (n == null) continue;
            String content = addSpecial(added, vocab, n, field, where);
            allSpecial.add(content);
            if (field.equals("unk_token")) unkContent = content;
        }
        JsonNode extra = map != null && map.has("additional_special_tokens") ? map.get("additional_special_tokens")
                : cfg != null ? cfg.get("additional_special_tokens") : null;
        if (extra != null)
            for (JsonNode n : extra) additional.add(addSpecial(added, vocab, n, "additional_special_tokens", where));
        allSpecial.addAll(additional);
        added.forEach((id, t) -> vocab.put(t.content(), id));
        return new Opened(SlowLlamaTokenizer.load(spFile, legacy, added, allSpecial, additional, unkContent), vocab);
    }


    /** tokenizer.model is run with LlamaTokenizer's semantics: refuse a config that asks for another tokenizer. */
    private static void checkSlowLlama(JsonNode cfg, String where) {
        if (cfg == null) return;
        String cls = cfg.hasNonNull("tokenizer_class") ? cfg.get("tokenizer_class").asText() : null;
        if (cls != null && !cls.equals("LlamaTokenizer") && !cls.equals("LlamaTokenizerFast"))
            throw new DataException(where + ": field tokenizer_class: " + cls + " is not supported for tokenizer.model"
                    + " (llava4j runs it as LLaMA's LlamaTokenizer)");
        JsonNode kw = cfg.get("sp_model_kwargs");
        if (kw != null && !kw.isNull() && !(kw.isObject() && kw.isEmpty()))
            throw new DataException(where + ": field sp_model_kwargs: " + kw + " is not supported (sampling options change the ids)");
    }

    /** added_tokens_decoder of tokenizer_config.json, then added_tokens.json for ids it does not name. */
    private static Map<Integer, SlowLlamaTokenizer.AddedToken> addedTokens(Path folder, JsonNode cfg, String where) throws IOException {
        Map<Integer, SlowLlamaTokenizer.AddedToken> added = new LinkedHashMap<>();
        JsonNode dec = cfg == null ? null : cfg.get("added_tokens_decoder");
        if (dec != null && dec.isObject())
            for (Map.Entry<String, JsonNode> e : dec.properties()) {
                int id;
                try {
                    id = Integer.parseInt(e.getKey());
                } catch (NumberFormatException ex) {
                    throw new DataException(where + ": field added_tokens_decoder: key \"" + e.getKey() + "\" is not an id");
                }
                added.put(id, addedToken(e.getValue(), "added_tokens_decoder." + e.getKey(), where));
            }
        Path file = folder.resolve("added_tokens.json");
        JsonNode extra = readJsonIfPresent(file);
        if (extra != null)
            for (Map.Entry<String, JsonNode> e : extra.properties()) {
                if (!e.getValue().canConvertToInt())
                    throw new DataException(file + ": field " + e.getKey() + ": the id is not an integer");
                added.putIfAbsent(e.getValue().asInt(), new SlowLlamaTokenizer.AddedToken(e.getKey(), false, false, false));
            }
        return added;
    }

    /** A special token: added (with its flags) unless an added token already has its content. Returns the content. */
    private static String addSpecial(Map<Integer, SlowLlamaTokenizer.AddedToken> added, Map<String, Integer> pieces,
                                     JsonNode n, String field, String where) {
        String content = content(n, field, where);
        for (SlowLlamaTokenizer.AddedToken t : added.values()) if (t.content().equals(content)) return content;
        Integer id = pieces.get(content);
        if (id == null) throw new DataException(where + ": field " + field + " = \"" + content + "\" is not in the vocabulary");
        added.put(id, addedToken(n, field, where));
        return content;
    }

    private static SlowLlamaTokenizer.AddedToken addedToken(JsonNode n, String field, String where) {
        String content = content(n, field, where);
        return new SlowLlamaTokenizer.AddedToken(content, n.path("lstrip").asBoolean(false), n.path("rstrip").asBoolean(false),
                n.path("single_word").asBoolean(false));
    }

    /** A token written as a string or as an AddedToken object {"content": ...}. */
    private static String content(JsonNode n, String field, String where) {
        String content = n.isTextual() ? n.asText() : n.path("content").isTextual() ? n.path("content").asText() : null;
        if (content == null) throw new DataException(where + ": field " + field + " is neither a string nor {\"content\": ...}");
        return content;
    }

    private static JsonNode readJsonIfPresent(Path file) throws IOException {
        if (!Files.isRegularFile(file)) return null;
        try {
            JsonNode n = JSON.readTree(file.toFile());
            if (n == null || !n.isObject()) throw new DataException(file + ": expected a JSON object");
            return n;
        } catch (com.fasterxml.jackson.core.JacksonException e) {
            throw new DataException(file + ": not valid JSON: " + e.getOriginalMessage(), e);
        }
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
     * The id of a special token ({@code node}: a string or an AddedToken object). When it is not given,
     * transformers' LlamaTokenizer default ({@code fallback}) is looked up in the vocabulary. Returns -1 when there
     * is no such token.
     */
    private static int specialId(Map<String, Integer> vocab, JsonNode node, String field, String fallback, String where) {
        if (node != null) {
            String content = content(node, field, where);
            Integer id = vocab.get(content);
            if (id == null) throw new DataException(where + ": field " + field + " = \"" + content + "\" is not in the vocabulary");
            return id;
        }
        if (fallback != null && vocab.containsKey(fallback)) return vocab.get(fallback);
        return -1;
    }

    /** A tokenizer.json run by the HF tokenizers library, its post-processor off (special tokens are added here). */
    private record HfJson(HuggingFaceTokenizer hf) implements Backend {
        static HfJson load(Path tokFile) throws IOException {
            Map<String, String> options = new HashMap<>();
            options.put("addSpecialTokens", "false");
            options.put("truncation", "false");
            options.put("padding", "false");
            options.put("maxLength", "-1");
            return new HfJson(HuggingFaceTokenizer.newInstance(tokFile, options));
        }

        /**
         * The ids alone, straight from the native encoding: DJL's {@code encode} also fetches every token's text,
         * character span and masks, about 40 % of the time when tokenizing a data file (the text is passed as is: the
         * options given in {@link #load} leave DJL's Java-side text preparation off).
         */
        @Override
        public int[] encode(String text) {
            long enc = ai.djl.huggingface.tokenizers.jni.TokenizersLibrary.LIB.encode(hf.getHandle(), text, false);
            long[] ids;
            try {
                ids = ai.djl.huggingface.tokenizers.jni.TokenizersLibrary.LIB.getTokenIds(enc);
            } finally {
                ai.djl.huggingface.tokenizers.jni.TokenizersLibrary.LIB.deleteEncoding(enc);
            }
            int[] out = new int[ids.length];
            for (int i = 0; i < ids.length; i++) out[i] = Math.toIntExact(ids[i]);
            return out;
        }

        @Override
        public List<String> tokenize(String text) {
            return new ArrayList<>(List.of(hf.encode(text, false, false).getTokens()));
        }

        @Override
        public String decode(int[] ids, boolean skipSpecialTokens) {
            long[] l = new long[ids.length];
            for (int i = 0; i < ids.length; i++) l[i] = ids[i];
            return hf.decode(l, skipSpecialTokens);
        }

        @Override
        public boolean legacy() {
            return true;
        }

        @Override
        public void close() {
            hf.close();
        }
    }

    /**
     * Encodes {@code text}. With {@code addBos} the special tokens of HF's {@code tokenizer(text)} are added: BOS first
     * when add_bos_token, EOS last when add_eos_token. Without it only the text's own tokens come back.
     */
    public int[] encode(String text, boolean addBos) {
        int[] ids = backend.encode(text);
        int front = addBos && addBosToken ? 1 : 0;
        int back = addBos && addEosToken ? 1 : 0;
        int[] out = new int[ids.length + front + back];
        if (front == 1) out[0] = bos;
        System.arraycopy(ids, 0, out, front, ids.length);
        if (back == 1) out[out.length - 1] = eos;
        return out;
    }

    /** Decodes ids to text, special tokens included. */
    public String decode(int[] ids) {
        return decode(ids, false);
    }

    /** Decodes ids to text; ids outside the vocabulary (e.g. LLaVA's image token -200) are an error. */
    public String decode(int[] ids, boolean skipSpecialTokens) {
        for (int i = 0; i < ids.length; i++)
            if (ids[i] < 0 || ids[i] >= vocabSize)
                throw new IllegalArgumentException("id " + ids[i] + " at position " + i + " is outside the vocabulary [0, " + vocabSize + ")");
        return backend.decode(ids, skipSpecialTokens);
    }

    /**
     * Decodes what a model generated: ids past the tokenizer (the padding rows of an embedding larger than the
     * vocabulary, as Qwen2's 152,000 rows for about 151,650 tokens) have no text and are skipped, as HF's tokenizers
     * skip ids they have no token for.
     */
    public String decodeGenerated(int[] ids, boolean skipSpecialTokens) {
        return decode(java.util.Arrays.stream(ids).filter(id -> id >= 0 && id < vocabSize).toArray(), skipSpecialTokens);
    }

    /** The tokens (pieces) of {@code text} without special tokens added, e.g. {@code ["▁a", "▁red"]}. */
    public List<String> tokens(String text) {
        return backend.tokenize(text);
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

    /**
     * tokenizer_config's pad_token, else unk. Training data does not pad with it: LLaVA overrides the pad token per
     * template ({@link Conversation.Template#padId}).
     */
    public int pad() {
        return pad;
    }

    /** tokenizer_config's (or special_tokens_map's) pad_token, or -1 when it names none. */
    public int padToken() {
        return padToken;
    }

    /**
     * Whether the tokenizer LLaVA loads has a {@code legacy} attribute (LLaVA's preprocess_mpt reads
     * {@code getattr(tokenizer, 'legacy', False)}): LLaMA's tokenizers have one (a tokenizer.model, or a tokenizer_class
     * starting with Llama / CodeLlama); others (e.g. MPT's GPTNeoXTokenizerFast) do not.
     */
    public boolean legacyAttribute() {
        return legacyAttribute;
    }

    /**
     * LlamaTokenizer's {@code legacy} as LLaVA reads it ({@code tokenizer.legacy}): for a tokenizer.model, tokenizer_config's
     * {@code legacy} (default true); true for a tokenizer.json. When false, the text after {@code </s>} gets no
     * {@code "▁"} of its own, and LLaVA's preprocess_v1 counts each round after the first one token shorter.
     */
    public boolean legacy() {
        return backend.legacy();
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
        backend.close();
    }
}
