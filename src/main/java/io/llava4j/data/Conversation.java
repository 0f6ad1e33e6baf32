package io.llava4j.data;

import io.llava4j.data.LlavaRecord.Role;
import io.llava4j.data.LlavaRecord.Turn;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * LLaVA's conversation templates and its {@code preprocess}: a record becomes input ids and labels exactly as
 * LLaVA-1.5's train.py makes them.
 *
 * <ul>
 *   <li>For a record with an image, every turn that mentions {@code <image>} has it moved to the front as
 *       {@code "<image>\n"} (LLaVA's preprocess_multimodal).</li>
 *   <li>{@link Template#PLAIN} (stage 1): exactly two turns, the first mentioning {@code <image>}; the human turn is
 *       dropped; text = {@code "<image>" + answer + "\n"}; the tokens of {@code "<image>"} (BOS and the image token)
 *       are masked, everything after is supervised.</li>
 *   <li>{@link Template#VICUNA_V1} (stage 2): a leading non-human turn is skipped, then roles must alternate
 *       human/gpt; prompt = system + " " + {@code "USER: q "} / {@code "ASSISTANT: a</s>"} per turn. Labels come from
 *       LLaVA's round-splitting: the prompt is split on {@code </s>}, each round on {@code " ASSISTANT: "}, and the
 *       instruction part of each round (its token count minus 2) is masked. When the rounds do not add up to the
 *       sample's length, LLaVA masks the whole sample; so does this class, and it says so in
 *       {@link Tokenized#warning()}.</li>
 *   <li>{@link Template#LLAVA_LLAMA_2} (training only): LLaVA's SeparatorStyle.LLAMA_2 prompt
 *       ({@code [INST] <<SYS>>…<</SYS>>\n\nq [/INST] a </s><s>[INST] …}) and preprocess_llama_2's masking: rounds split on
 *       {@code </s>}, each on {@code "[/INST] "}, no legacy correction.</li>
 * </ul>
 * A record with an image is tokenized with {@link LlavaTokenizer#tokenizerImageToken}; a text-only record with
 * {@code tokenizer(text)} (LLaVA's has_image=False), so no image token is inserted. The result must hold exactly one
 * image token for a record with an image and none for a text-only record; anything else is a {@link DataException}.
 *
 * <p>LLaVA's "-1 per round" for {@code legacy=False} slow tokenizers is reproduced: when {@link LlavaTokenizer#legacy()}
 * is false (a tokenizer.model whose tokenizer_config says {@code legacy: false}), every round after the first counts
 * one token less and masks one instruction token less, as LLaVA's preprocess_v1 does with tokenizers ≥ 0.14. A
 * tokenizer.json is taken as legacy (no correction).
 */
public final class Conversation {

    /** The image placeholder in LLaVA data. */
    public static final String IMAGE = "<image>";
    /** Label of a position that is not supervised. */
    public static final int IGNORE_INDEX = -100;
    /** The vicuna_v1 system prompt. */
    public static final String SYSTEM_V1 = "A chat between a curious user and an artificial intelligence assistant. "
            + "The assistant gives helpful, detailed, and polite answers to the user's questions.";

    /** LLaVA's conv_llava_llama_2 system prompt. */
    public static final String SYSTEM_LLAMA_2 = "You are a helpful language and vision assistant. "
            + "You are able to understand the visual content that the user provides, "
            + "and assist the user with a variety of tasks using natural language.";

    private static final String V1_SEP2 = "</s>";
    private static final String V1_ASSISTANT_SEP = " ASSISTANT: ";
    private static final String LLAMA_2_SEP = "[/INST] ";

    /** A conversation template, by LLaVA's {@code --version} value. */
    public enum Template {
        PLAIN, VICUNA_V1,
        /** LLaVA's llava_llama_2 (SeparatorStyle.LLAMA_2, preprocess_llama_2); training only, see {@link #forTraining}. */
        LLAVA_LLAMA_2;

        /**
         * The templates training takes: those of {@link #of}, and {@code llava_llama_2} (scripts/finetune.sh's LLaMA-2
         * block). Prompt building for generation ({@code generate/}) knows only {@link #of}'s.
         */
        public static Template forTraining(String version) {
            if ("llava_llama_2".equals(version)) return LLAVA_LLAMA_2;
            try {
                return of(version);
            } catch (DataException e) {
                throw new DataException("conversation template \"" + version + "\" is not supported for training (expected plain /"
                        + " v0_plain, v1 / vicuna_v1 or llava_llama_2)");
            }
        }

        /**
         * {@code plain} or {@code v0_plain} (LLaVA's conv_llava_plain under both names) → PLAIN; {@code v1} or
         * {@code vicuna_v1} → VICUNA_V1; anything else is an error.
         */
        public static Template of(String version) {
            if (version == null) throw new DataException("conversation template: none given (expected plain or v1)");
            switch (version) {
                case "plain": case "v0_plain": return PLAIN;
                case "v1": case "vicuna_v1": return VICUNA_V1;
                default: throw new DataException("conversation template \"" + version
                        + "\" is not supported (expected plain / v0_plain or v1 / vicuna_v1)");
            }
        }

        /**
         * The id LLaVA pads with (and counts, and drops from the attention mask) under this template. LLaVA's
         * train.py sets {@code tokenizer.pad_token = tokenizer.unk_token} for every {@code --version} but v0,
         * whatever tokenizer_config.json says, so a {@code pad_token} there (often {@code </s>}) is not used.
         */
        public int padId(LlavaTokenizer tok) {
            if (tok.unk() < 0)
                throw new DataException(tok.folder() + ": the tokenizer has no unk_token; LLaVA pads with unk under the "
                        + name().toLowerCase() + " template");
            return tok.unk();
        }
    }

    /**
     * A tokenized sample.
     *
     * @param inputIds the ids, with one image token where the image goes
     * @param labels   same length; {@link #IGNORE_INDEX} where not supervised
     * @param warning  null, or why the sample was fully masked
     * @param mismatch whether the template's rounds did not add up to the tokenization (LLaVA's "tokenization
     *                 mismatch"), so every label was masked
     */
    public record Tokenized(int[] inputIds, int[] labels, String warning, boolean mismatch) {
        /** The first {@code maxLength} ids and labels (HF truncation, as LLaVA applies model_max_length). */
        public Tokenized truncate(int maxLength) {
            if (inputIds.length <= maxLength) return this;
            return new Tokenized(Arrays.copyOf(inputIds, maxLength), Arrays.copyOf(labels, maxLength), warning, mismatch);
        }
    }

    private final Template template;
    private final LlavaTokenizer tok;
    private final int imageTokenIndex;
    private final int padId;

    public Conversation(Template template, LlavaTokenizer tok, int imageTokenIndex) {
        this.template = template;
        this.tok = tok;
        this.imageTokenIndex = imageTokenIndex;
        this.padId = template.padId(tok);
    }

    public Template template() {
        return template;
    }

    /** The id LLaVA pads with under this template ({@link Template#padId}). */
    public int padId() {
        return padId;
    }

    /** Tokenizes without a length limit. */
    public Tokenized tokenize(LlavaRecord r) {
        return tokenize(r, Integer.MAX_VALUE);
    }

    /**
     * LLaVA's preprocess for one record, then truncation to {@code modelMaxLength}. As in LLaVA, the mismatch check
     * of v1 only applies when the rounds end before {@code modelMaxLength}.
     */
    public Tokenized tokenize(LlavaRecord r, int modelMaxLength) {
        return untruncated(r, modelMaxLength).truncate(modelMaxLength);
    }

    /**
     * {@link #tokenize(LlavaRecord, int)} before the cut to {@code modelMaxLength} (which still decides, as in LLaVA,
     * whether v1's mismatch check applies).
     */
    public Tokenized untruncated(LlavaRecord r, int modelMaxLength) {
        String prompt = prompt(r);
        boolean plain = template == Template.PLAIN;
        int[] ids = tokenizeText(prompt, plain || r.hasImage()); // preprocess_plain always uses tokenizer_image_token
        int images = 0;
        for (int id : ids) if (id == imageTokenIndex) images++;
        String warning = null;
        if (r.hasImage() && images == 0) {
            warning = r.describe() + ": the record has an image but no " + IMAGE + " in a turn that is kept; it trains as text only"
                    + " (as LLaVA does: the image is loaded and unused)";
        } else if (!r.hasImage() && images == 1 && plain) {
            warning = r.describe() + ": a text-only record with " + IMAGE + " under the plain template trains on a zero image (as LLaVA does)";
        } else if (images != (r.hasImage() ? 1 : 0)) {
            throw new RecordException(DataProblem.IMAGE_COUNT, r.describe() + ": field conversations: the prompt holds " + images + " image token(s) but the record has "
                    + (r.hasImage() ? 1 : 0) + " image(s)" + (r.hasImage() ? "" : " (a text-only record must not contain " + IMAGE + ")"));
        }
        Tokenized t = plain ? labelsPlain(ids)
                : template == Template.LLAVA_LLAMA_2 ? labelsRounds(r, prompt, ids, modelMaxLength, r.hasImage(), LLAMA_2_SEP, false)
                : labelsRounds(r, prompt, ids, modelMaxLength, r.hasImage(), V1_ASSISTANT_SEP, true);
        if (warning != null) t = new Tokenized(t.inputIds(), t.labels(), t.warning() == null ? warning : warning + "; " + t.warning(), t.mismatch());
        return t;
    }

    /**
     * Whether the sample has an image token for an image: the record's own, or (plain template, text-only record
     * mentioning {@code <image>}) LLaVA's zero image.
     */
    public boolean usesImage(LlavaRecord r) {
        return prompt(r).contains(IMAGE);
    }

    /**
     * Checks what can be checked without tokenizing (turn count, role order, the image placeholder); throws a
     * {@link DataException} naming the record. {@link #tokenize} runs the same checks.
     */
    public void check(LlavaRecord r) {
        prompt(r);
    }

    /** The text LLaVA tokenizes for this record. */
    public String prompt(LlavaRecord r) {
        List<Turn> turns = r.hasImage() ? moveImageFirst(r.conversations()) : r.conversations();
        if (template == Template.PLAIN) { // preprocess_plain: roles are not looked at
            if (turns.size() != 2)
                throw new RecordException(DataProblem.TEMPLATE, r.describe() + ": field conversations: the plain template needs exactly 2 turns, got " + turns.size());
            if (!turns.get(0).value().contains(IMAGE))
                throw new RecordException(DataProblem.IMAGE_COUNT, r.describe() + ": field conversations[0].value: the plain template needs " + IMAGE + " in the first turn");
            return IMAGE + turns.get(1).value() + "\n";
        }
        for (int j = 0; j < turns.size(); j++)
            if (LlavaRecord.roleOf(turns.get(j).from()) == null)
                throw new RecordException(DataProblem.ROLES, r.describe() + ": field conversations[" + j + "].from: unknown role \"" + turns.get(j).from()
                        + "\" (the v1 template knows human and gpt)");
        int skip = turns.get(0).role() != Role.HUMAN ? 1 : 0;
        if (template == Template.LLAVA_LLAMA_2) return promptLlama2(r, turns, skip);
        StringBuilder p = new StringBuilder(SYSTEM_V1).append(' ');
        int imageTurns = 0;
        for (int j = skip; j < turns.size(); j++) {
            Turn t = turns.get(j);
            int k = j - skip;
            checkAlternates(r, t, j, k);
            if (t.value().contains(IMAGE)) imageTurns++;
            String role = k % 2 == 0 ? "USER" : "ASSISTANT";
            // Conversation.get_prompt (SeparatorStyle.TWO): an empty message is written as "ROLE:" with no separator
            if (t.value().isEmpty()) p.append(role).append(':');
            else p.append(role).append(": ").append(t.value()).append(k % 2 == 0 ? " " : V1_SEP2);
        }
        if (r.hasImage() && imageTurns > 1)
            throw new RecordException(DataProblem.IMAGE_COUNT, r.describe() + ": field conversations: " + imageTurns + " turns mention " + IMAGE
                    + " (after skipping a leading non-human turn), expected at most 1 for one image");
        return p.toString();
    }

    /** Turn {@code k} after the skipped leading turns must be human when k is even, gpt when odd. */
    private static void checkAlternates(LlavaRecord r, Turn t, int j, int k) {
        Role want = k % 2 == 0 ? Role.HUMAN : Role.GPT;
        if (t.role() != want)
            throw new RecordException(DataProblem.ROLES, r.describe() + ": field conversations[" + j + "].from: \"" + t.from() + "\" where a "
                    + (want == Role.HUMAN ? "human" : "gpt") + " turn is expected (roles must alternate, starting with human)");
    }

    /** Conversation.get_prompt for SeparatorStyle.LLAMA_2 (sep "<s>", sep2 "</s>"), after preprocess_llama_2's skip. */
    private String promptLlama2(LlavaRecord r, List<Turn> turns, int skip) {
        StringBuilder p = new StringBuilder();
        int imageTurns = 0;
        for (int j = skip; j < turns.size(); j++) {
            Turn t = turns.get(j);
            int k = j - skip;
            checkAlternates(r, t, j, k);
            if (k == 0 && t.value().isEmpty()) // get_prompt: assert message, "first message should not be none"
                throw new RecordException(DataProblem.TEMPLATE, r.describe() + ": field conversations[" + j + "].value: the llava_llama_2 template needs a non-empty first message");
            if (t.value().contains(IMAGE)) imageTurns++;
            if (t.value().isEmpty()) continue;
            String m = k == 0 ? "<<SYS>>\n" + SYSTEM_LLAMA_2 + "\n<</SYS>>\n\n" + t.value() : t.value();
            if (k % 2 == 0) p.append("<s>").append("[INST] ").append(m).append(" [/INST]");
            else p.append(' ').append(m).append(' ').append(V1_SEP2);
        }
        if (r.hasImage() && imageTurns > 1)
            throw new RecordException(DataProblem.IMAGE_COUNT, r.describe() + ": field conversations: " + imageTurns + " turns mention " + IMAGE
                    + " (after skipping a leading non-human turn), expected at most 1 for one image");
        int a = 0; // Python's ret.lstrip("<s>"): strips any leading '<', 's', '>'
        while (a < p.length() && "<s>".indexOf(p.charAt(a)) >= 0) a++;
        return p.substring(a);
    }

    /**
     * LLaVA's preprocess_multimodal: in every turn that contains {@code <image>}, all occurrences are removed, the
     * value stripped, and {@code "<image>\n"} put in front (then stripped again).
     */
    public static List<Turn> moveImageFirst(List<Turn> turns) {
        List<Turn> out = new ArrayList<>(turns.size());
        for (Turn t : turns) {
            String v = t.value();
            if (v.contains(IMAGE)) v = pyStrip(IMAGE + "\n" + pyStrip(v.replace(IMAGE, "")));
            out.add(new Turn(t.from(), v));
        }
        return out;
    }

    private int[] tokenizeText(String text, boolean hasImage) {
        return hasImage ? LlavaTokenizer.tokenizerImageToken(tok, text, imageTokenIndex) : tok.encode(text, true);
    }

    /** plain: mask the tokens of "<image>" alone (BOS + image token). */
    private Tokenized labelsPlain(int[] ids) {
        int masked = Math.min(tokenizeText(IMAGE, true).length, ids.length);
        int[] labels = ids.clone();
        Arrays.fill(labels, 0, masked, IGNORE_INDEX);
        return new Tokenized(ids, labels, null, false);
    }

    /**
     * LLaVA's preprocess_v1 masking ({@code sep} " ASSISTANT: ", with the non-legacy -1 per round) and
     * preprocess_llama_2's ({@code sep} "[/INST] ", no correction).
     */
    private Tokenized labelsRounds(LlavaRecord r, String prompt, int[] ids, int modelMaxLength, boolean hasImage, String sep,
                                   boolean legacyCorrection) {
        int[] labels = ids.clone();
        int total = 0;
        for (int id : ids) if (id != padId) total++;  // LLaVA: target.ne(pad_token_id).sum(), pad = unk
        int cur = 1;
        mask(labels, 0, cur);
        List<String> rounds = pySplit(prompt, V1_SEP2);
        for (int i = 0; i < rounds.size(); i++) {
            String rou = rounds.get(i);
            if (rou.isEmpty()) break;
            List<String> parts = pySplit(rou, sep);
            if (parts.size() != 2) break;
            int roundLen = tokenizeText(rou, hasImage).length;
            int instructionLen = tokenizeText(parts.get(0) + sep, hasImage).length - 2;
            if (legacyCorrection && i != 0 && !tok.legacy()) { // the round's first piece loses its "▁" behind </s>
                roundLen--;
                instructionLen--;
            }
            mask(labels, cur, cur + instructionLen);
            cur += roundLen;
        }
        mask(labels, cur, labels.length);
        String warning = null;
        if (cur < modelMaxLength && cur != total) {
            Arrays.fill(labels, IGNORE_INDEX);
            warning = r.describe() + ": tokenization mismatch: the rounds of the " + (template == Template.VICUNA_V1 ? "v1" : "llava_llama_2") + " template cover " + cur
                    + " tokens but the sample has " + total + "; the sample is fully masked (as LLaVA does)";
        }
        return new Tokenized(ids, labels, warning, warning != null);
    }

    /** Python's {@code labels[from:to] = IGNORE_INDEX}: the range is clipped to the array, empty when to <= from. */
    private static void mask(int[] labels, int from, int to) {
        int a = Math.max(0, Math.min(from, labels.length));
        int b = Math.max(a, Math.min(to, labels.length));
        Arrays.fill(labels, a, b, IGNORE_INDEX);
    }

    /** Python's {@code s.split(sep)}. */
    static List<String> pySplit(String s, String sep) {
        List<String> out = new ArrayList<>();
        int from = 0;
        for (int at; (at = s.indexOf(sep, from)) >= 0; from = at + sep.length()) out.add(s.substring(from, at));
        out.add(s.substring(from));
        return out;
    }

    /** Python's {@code str.strip()}: removes leading and trailing Unicode whitespace as Python defines it. */
    static String pyStrip(String s) {
        int a = 0, b = s.length();
        while (a < b && isPyWhitespace(s.charAt(a))) a++;
        while (b > a && isPyWhitespace(s.charAt(b - 1))) b--;
        return s.substring(a, b);
    }

    /** Python's {@code str.isspace()} for one character (what {@code strip()} and {@code split()} use). */
    static boolean isPyWhitespace(char c) {
        if (c <= ' ') return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
        return c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029
                || c == 0x202f || c == 0x205f || c == 0x3000;
    }

    /** Python's {@code len(s.split())}: the number of whitespace-separated words. */
    static int pyWordCount(String s) {
        int n = 0;
        boolean inWord = false;
        for (int i = 0; i < s.length(); i++) {
            boolean ws = isPyWhitespace(s.charAt(i));
            if (!ws && !inWord) n++;
            inWord = !ws;
        }
        return n;
    }
}
