package io.llava4j.data;

import ai.djl.sentencepiece.SpProcessor;
import ai.djl.sentencepiece.SpTokenizer;
import com.google.protobuf.CodedInputStream;
import com.google.protobuf.CodedOutputStream;
import com.google.protobuf.WireFormat;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * transformers' slow {@code LlamaTokenizer} (4.37, the version LLaVA pins; LLaVA loads it with {@code use_fast=False})
 * over a SentencePiece {@code tokenizer.model}, which the sentencepiece library itself runs (DJL's binding).
 *
 * <p>What LlamaTokenizer adds around sentencepiece, reproduced here:
 * <ul>
 *   <li>added tokens (the special tokens, {@code added_tokens_decoder}, {@code added_tokens.json}) are split out of the
 *       text first, longest match at the leftmost position, honouring each token's lstrip / rstrip / single_word; the
 *       pieces in between are encoded by sentencepiece one by one (so the text after {@code </s>} starts afresh);</li>
 *   <li>{@code legacy = false}: the model's {@code add_dummy_prefix} is switched off (the NormalizerSpec merge
 *       transformers does), a {@code "▁"} is put in front of the whole text instead (after {@code "▁"} in the text
 *       became spaces), a piece that starts with a space is encoded behind the unk token and the unk token's pieces cut
 *       off, and a leading lone {@code "▁"} before a special token is dropped. The text after a special token thus
 *       gets no {@code "▁"} of its own; that is the one-token difference LLaVA's preprocess_v1 corrects for.</li>
 * </ul>
 */
final class SlowLlamaTokenizer implements LlavaTokenizer.Backend {
    static final String SPIECE_UNDERLINE = "\u2581";
    /** Tag of a length-delimited field 1: ModelProto.pieces, and SentencePiece.piece inside it. */
    private static final int PIECE_TAG = (1 << 3) | WireFormat.WIRETYPE_LENGTH_DELIMITED;

    /** An added token as transformers' {@code AddedToken}. */
    record AddedToken(String content, boolean lstrip, boolean rstrip, boolean singleWord) {}

    private final SpTokenizer owner;
    private final SpProcessor sp;
    private final List<String> pieces;              // id → piece of the model
    private final boolean legacy;
    private final Map<String, Integer> addedIds;    // _added_tokens_encoder
    private final Map<Integer, AddedToken> added;   // _added_tokens_decoder
    private final Set<String> allSpecial;           // all_special_tokens
    private final Set<String> additionalSpecial;    // additional_special_tokens
    private final Set<Integer> allSpecialIds;
    private final String unkToken;
    private final int unkLength;
    private final int underlineId;                  // the id of the piece "▁", -1 if none

    private SlowLlamaTokenizer(SpTokenizer owner, List<String> pieces, boolean legacy, Map<Integer, AddedToken> added,
                               Set<String> allSpecial, Set<String> additionalSpecial, String unkToken) {
        this.owner = owner;
        this.sp = owner.getProcessor();
        this.pieces = pieces;
        this.legacy = legacy;
        this.added = added;
        this.addedIds = new HashMap<>();
        added.forEach((id, t) -> addedIds.put(t.content(), id));
        this.allSpecial = allSpecial;
        this.additionalSpecial = additionalSpecial;
        this.allSpecialIds = new HashSet<>();
        for (String s : allSpecial) if (addedIds.containsKey(s)) allSpecialIds.add(addedIds.get(s));
        this.unkToken = unkToken;
        this.unkLength = legacy || unkToken == null ? 0 : sp.encode(unkToken).length;
        this.underlineId = pieces.indexOf(SPIECE_UNDERLINE);
    }

    /** The pieces of a tokenizer.model, in id order (a ModelProto's repeated {@code pieces}, field 1). */
    static List<String> readPieces(Path modelFile, byte[] proto) {
        List<String> out = new ArrayList<>();
        try {
            CodedInputStream in = CodedInputStream.newInstance(proto);
            for (int tag; (tag = in.readTag()) != 0; ) {
                if (tag != PIECE_TAG) {
                    in.skipField(tag);
                    continue;
                }
                int limit = in.pushLimit(in.readRawVarint32());
                String piece = null;
                for (int t; (t = in.readTag()) != 0; ) {
                    if (t == PIECE_TAG) piece = in.readStringRequireUtf8();
                    else in.skipField(t);
                }
                in.popLimit(limit);
                if (piece == null) throw new DataException(modelFile + ": piece " + out.size() + " has no text");
                out.add(piece);
            }
        } catch (IOException e) { // InvalidProtocolBufferException: not a ModelProto
            throw new DataException(modelFile + ": not a SentencePiece model: " + e.getMessage(), e);
        }
        if (out.isEmpty()) throw new DataException(modelFile + ": not a SentencePiece model (no pieces)");
        return out;
    }

    /**
     * The model with {@code normalizer_spec.add_dummy_prefix = false} merged in, as transformers'
     * {@code get_spm_processor} does for {@code legacy = false}: a second {@code normalizer_spec} (field 3) holding only
     * {@code add_dummy_prefix} (its field 3) appended to the message, which protobuf parsing merges into the first.
     */
    static byte[] withoutDummyPrefix(byte[] proto) {
        try {
            ByteArrayOutputStream spec = new ByteArrayOutputStream();
            CodedOutputStream s = CodedOutputStream.newInstance(spec);
            s.writeBool(3, false);
            s.flush();
            ByteArrayOutputStream out = new ByteArrayOutputStream(proto.length + 8);
            out.write(proto);
            CodedOutputStream o = CodedOutputStream.newInstance(out);
            o.writeByteArray(3, spec.toByteArray());
            o.flush();
            return out.toByteArray();
        } catch (IOException e) {
            throw new IllegalStateException(e); // in-memory streams do not fail
        }
    }

    /**
     * @param added      added tokens by id, the special tokens included (ids as the vocabulary or the config give them)
     * @param allSpecial the contents of bos/eos/unk/pad and additional_special_tokens
     * @param additionalSpecial the contents of additional_special_tokens
     * @param unkToken   the unk token's content (needed when {@code legacy} is false)
     */
    static SlowLlamaTokenizer load(Path modelFile, boolean legacy, Map<Integer, AddedToken> added, Set<String> allSpecial,
                                   Set<String> additionalSpecial, String unkToken) throws IOException {
        byte[] proto = Files.readAllBytes(modelFile);
        List<String> pieces = readPieces(modelFile, proto);
        if (!legacy && unkToken == null)
            throw new DataException(modelFile.resolveSibling("tokenizer_config.json") + ": legacy is false, which needs an unk_token");
        SpTokenizer sp;
        try {
            sp = new SpTokenizer(legacy ? proto : withoutDummyPrefix(proto));
        } catch (RuntimeException e) {
            throw new DataException(modelFile + ": sentencepiece cannot load it: " + e.getMessage(), e);
        }
        return new SlowLlamaTokenizer(sp, Collections.unmodifiableList(pieces), legacy, Map.copyOf(added),
                Set.copyOf(allSpecial), Set.copyOf(additionalSpecial), unkToken);
    }

    /** The model's pieces, in id order. */
    List<String> pieces() {
        return pieces;
    }

    @Override
    public boolean legacy() {
        return legacy;
    }

    /** LlamaTokenizer.tokenize then convert_tokens_to_ids: the ids of {@code text}, no BOS/EOS. */
    @Override
    public int[] encode(String text) {
        List<Integer> ids;
        if (legacy || text.isEmpty()) {
            ids = splitAndEncode(text);
        } else {
            ids = splitAndEncode(SPIECE_UNDERLINE + text.replace(SPIECE_UNDERLINE, " "));
            if (ids.size() > 1 && ids.get(0) == underlineId && allSpecialIds.contains(ids.get(1))) ids = ids.subList(1, ids.size());
        }
        return ids.stream().mapToInt(Integer::intValue).toArray();
    }

    /** The pieces of {@code text} (the model's pieces by id, so an unknown character shows as its unk piece). */
    @Override
    public List<String> tokenize(String text) {
        List<String> out = new ArrayList<>();
        for (int id : encode(text)) out.add(added.containsKey(id) ? added.get(id).content() : pieces.get(id));
        return out;
    }

    /** PreTrainedTokenizer.tokenize: added tokens split out (with their strip rules), the rest through _tokenize. */
    private List<Integer> splitAndEncode(String text) {
        List<String> parts = split(text);
        for (int i = 0; i < parts.size(); i++) {
            Integer id = addedIds.get(parts.get(i));
            if (id == null) continue;
            AddedToken t = added.get(id);
            String left = i > 0 ? parts.get(i - 1) : null, right = i < parts.size() - 1 ? parts.get(i + 1) : null;
            if (t.rstrip() && right != null && !right.isEmpty()) parts.set(i + 1, pyLstrip(right));
            if (t.lstrip() && left != null && !left.isEmpty()) parts.set(i - 1, pyRstrip(left));
            if (t.singleWord() && left != null && !left.isEmpty() && !left.endsWith(" ")) {
                parts.set(i - 1, left + parts.get(i));
                parts.set(i, "");
            } else if (t.singleWord() && right != null && !right.isEmpty() && !right.startsWith(" ")) {
                parts.set(i, parts.get(i) + right);
                parts.set(i + 1, "");
            }
        }
        List<Integer> out = new ArrayList<>();
        for (String p : parts) {
            if (p.isEmpty()) continue;
            Integer id = addedIds.get(p);
            if (id != null) out.add(id);
            else for (int x : pieceEncode(p)) out.add(x);
        }
        return out;
    }

    /**
     * LlamaTokenizer._tokenize with convert_tokens_to_ids: one stretch of text without added tokens. Ids, not piece
     * strings, come back from the library (its JNI strings cannot carry characters outside the BMP); the two are the
     * same here, since sentencepiece's own piece for an unknown character maps to unk either way.
     */
    private int[] pieceEncode(String text) {
        if (legacy || !(text.startsWith(SPIECE_UNDERLINE) || text.startsWith(" "))) return sp.encode(text);
        int[] ids = sp.encode(unkToken + text); // "<unk> Hey" → ['<', 'unk', '>', '▁Hey']
        return ids.length >= unkLength ? Arrays.copyOfRange(ids, unkLength, ids.length) : ids;
    }

    /** transformers' Trie.split over the added tokens: at the leftmost position that starts one, the longest. */
    private List<String> split(String text) {
        List<String> out = new ArrayList<>();
        int start = 0;
        for (int i = 0; i < text.length(); ) {
            String hit = null;
            for (String t : addedIds.keySet())
                if (!t.isEmpty() && text.startsWith(t, i) && (hit == null || t.length() > hit.length())) hit = t;
            if (hit == null) {
                i++;
                continue;
            }
            if (i > start) out.add(text.substring(start, i));
            out.add(hit);
            i += hit.length();
            start = i;
        }
        if (start < text.length() || out.isEmpty()) out.add(text.substring(start));
        return out;
    }

    /**
     * PreTrainedTokenizer._decode with LlamaTokenizer.convert_tokens_to_string (spaces_between_special_tokens and
     * clean_up_tokenization_spaces off, LLaMA's defaults). Known limit: characters outside the BMP (emoji) come back
     * garbled, as DJL's binding returns text through JNI's modified UTF-8; training and scoring never decode.
     */
    @Override
    public String decode(int[] ids, boolean skipSpecialTokens) {
        List<String> tokens = new ArrayList<>();
        for (int id : ids) {
            if (skipSpecialTokens && allSpecialIds.contains(id)) continue;
            AddedToken a = added.get(id);
            if (a == null && (id < 0 || id >= pieces.size()))
                throw new IllegalArgumentException("id " + id + " is neither a piece of the model nor an added token");
            tokens.add(a != null ? a.content() : pieces.get(id));
        }
        StringBuilder out = new StringBuilder();
        List<String> run = new ArrayList<>();
        for (String t : tokens) {
            // _decode's legacy_added_tokens: added tokens that are not special, and additional special ones past the model
            boolean verbatim = addedIds.containsKey(t)
                    && (!allSpecial.contains(t) || additionalSpecial.contains(t) && addedIds.get(t) >= pieces.size());
            if (!verbatim) {
                run.add(t);
                continue;
            }
            if (!run.isEmpty()) out.append(tokensToString(run));
            run.clear();
            out.append(t);
        }
        if (!run.isEmpty()) out.append(tokensToString(run));
        return out.toString();
    }

    /** LlamaTokenizer.convert_tokens_to_string. */
    private String tokensToString(List<String> tokens) {
        tokens = new ArrayList<>(tokens);
        if (tokens.get(0).startsWith(SPIECE_UNDERLINE)) tokens.set(0, tokens.get(0).substring(1));
        StringBuilder out = new StringBuilder();
        List<String> sub = new ArrayList<>();
        boolean prevSpecial = false;
        for (int i = 0; i < tokens.size(); i++) {
            String t = tokens.get(i);
            if (allSpecial.contains(t)) {
                if (!prevSpecial && i != 0 && legacy) out.append(' ');
                out.append(sp.buildSentence(sub.toArray(String[]::new))).append(t);
                prevSpecial = true;
                sub.clear();
            } else {
                sub.add(t);
                prevSpecial = false;
            }
        }
        return out.append(sp.buildSentence(sub.toArray(String[]::new))).toString();
    }

    private static String pyLstrip(String s) {
        int a = 0;
        while (a < s.length() && Conversation.isPyWhitespace(s.charAt(a))) a++;
        return s.substring(a);
    }

    private static String pyRstrip(String s) {
        int b = s.length();
        while (b > 0 && Conversation.isPyWhitespace(s.charAt(b - 1))) b--;
        return s.substring(0, b);
    }

    @Override
    public void close() {
        owner.close();
    }
}
