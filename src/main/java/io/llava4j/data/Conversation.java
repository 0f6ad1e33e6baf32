package io.llava4j.data;

import io.llava4j.data.LlavaRecord.Turn;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * LLaVA's conversation templates ({@code llava/conversation.py}) and its {@code preprocess} (LLaVA-1.5's
 * {@code llava/train/train.py}): a record becomes input ids and labels exactly as LLaVA makes them for the
 * {@code --version} given.
 *
 * <ul>
 *   <li>For a record with an image, every turn that mentions {@code <image>} has it moved to the front as
 *       {@code "<image>\n"} (LLaVA's preprocess_multimodal).</li>
 *   <li>{@code plain} / {@code v0_plain} (stage 1, preprocess_plain): exactly two turns, the first mentioning
 *       {@code <image>}; the human turn is dropped; text = {@code "<image>" + answer + "\n"}; the tokens of
 *       {@code "<image>"} (BOS and the image token) are masked, everything after is supervised.</li>
 *   <li>{@code v1} / {@code vicuna_v1}, {@code llava_v1} (SeparatorStyle.TWO, preprocess_v1), {@code llava_llama_2},
 *       {@code llama_2}, {@code mistral_instruct} (SeparatorStyle.LLAMA_2, preprocess_llama_2), {@code mpt},
 *       {@code chatml_direct} / {@code mistral_direct} (SeparatorStyle.MPT, preprocess_mpt): a leading non-human
 *       turn is skipped, then roles must alternate human/gpt (LLaVA's KeyError / assert: refused here, naming the
 *       record); the prompt is get_prompt's; labels come from LLaVA's round-splitting (see {@link #labelsRounds} and
 *       {@link #labelsMpt}). When the rounds do not add up to the sample's length LLaVA masks the whole sample; so does
 *       this class, and it says so in {@link Tokenized#warning()}.</li>
 *   <li>{@code v0}: LLaVA's train.py never sets a template for {@code --version v0} (the branch that sets
 *       {@code default_conversation} is the else of {@code if version == "v0"}), so it trains with the module's
 *       default, conv_vicuna_v1, and preprocess_v1; the pad token is the tokenizer's own {@code pad_token}, or a new
 *       {@code [PAD]} token when there is none (see {@link Template#padId}). conv_vicuna_v0 ({@code ###}, with its
 *       example exchange) is the v0 prompt for inference only.</li>
 *   <li>{@code llava_v0} (conv_llava_v0, SeparatorStyle.SINGLE, version "Unknown"), {@code default} (conv_vicuna_v0,
 *       whose example exchange the fallback does not use) and {@code v0_mmtag}: LLaVA's fallback
 *       {@code preprocess}: {@code system + "\n\n"}, then {@code "### Human: q\n"} / {@code "### Assistant: a\n"} per
 *       turn ({@code _add_speaker_and_signal}: roles compared lower-cased, any other role is written "unknown"), and a
 *       final {@code "### "}; no turn is skipped. {@code _mask_targets} masks the header, and in each turn whose
 *       {@code from} is exactly "human" the tokens from its third on, counting each turn as long as it tokenizes alone
 *       (BOS included). That count drifts against the real positions, so parts of human turns are supervised and parts
 *       of answers are not: this is LLaVA's masking, reproduced as it is ({@link Template#caveat}).</li>
 *   <li>{@code v0_mmtag}, {@code v1_mmtag}: preprocess_multimodal writes the moved image as
 *       {@code <Image><image></Image>}; v1_mmtag then trains as v1 (its version starts with "v1").</li>
 *   <li>{@code qwen_1_5} / {@code qwen_2} (LLaVA-NeXT's conv_qwen, SeparatorStyle.CHATML; trained by LLaVA-NeXT's
 *       preprocess_qwen, the OneVision / interleave / LLaVA-NeXT-Qwen recipes): LLaVA-NeXT's own preprocess_multimodal
 *       places the image ({@link #moveImageFirstNext}: only a turn with exactly one {@code <image>} that does not start
 *       with it is rewritten; {@code <video>} is removed). The text is the system message
 *       {@code <|im_start|>system\nYou are a helpful assistant.<|im_end|>\n}, then every message as
 *       {@code <|im_start|>user|assistant\n{text}<|im_end|>\n}, each encoded on its own (no BOS) and concatenated.
 *       Labels: system and user messages masked, assistant messages supervised in full, their
 *       {@code <|im_start|>assistant\n} header included; then every id equal to that of {@code "\n"} (198 in Qwen; looked
 *       up here), {@code <|im_start|>} or {@code <|im_end|>} is supervised wherever it is, system and user turns included.
 *       A {@code \n} merged into another token stays as its message left it. No round counting, so no mismatch. Quirks
 *       kept: the model learns to predict the structural tokens of prompts; the pad is the unk token if the tokenizer has
 *       one, else its pad_token (Qwen: {@code <|endoftext|>}), else 0, and LLaVA-NeXT's collator drops every text token
 *       equal to it from the attention (so from the sample, as for LLaVA's unk). Differences: LLaVA-NeXT passes unknown
 *       roles through and does not check alternation; here roles are checked as for the other templates.</li>
 *   <li>{@code qwen2_base} / {@code qwen2_instruct} (TinyLLaVA_Factory's templates, Vicuna-style text, not ChatML):
 *       {@code system + " "}, then per round {@code "USER: " + q + " ASSISTANT: " + a + eos}, eos {@code <|endoftext|>}
 *       (base) or {@code <|im_end|>} (instruct). TinyLLaVA moves the image to the front of questions only (LLaVA-1.5's
 *       rule), for every record, and always tokenizes with tokenizer_image_token. Labels (Template._make_masks, see
 *       {@link #labelsTiny}): LLaVA's v1 arithmetic without BOS — counting starts at 0, instruction = tokens of
 *       {@code part0 + " ASSISTANT: "} − 1 (the trailing space is a token of its own in Qwen's BPE), round = tokens of
 *       the round + tokens of eos. The total checked is the number of ids other than the tokenizer's pad, plus
 *       {@code prompt.count(eos)} when the tokenizer's pad equals <em>the tokenizer's</em> eos: so qwen2_base with an
 *       Instruct tokenizer (eos {@code <|im_end|>}, pad {@code <|endoftext|>}) masks every sample, as TinyLLaVA does. An
 *       odd number of turns is refused (TinyLLaVA's assert); roles are checked as above (TinyLLaVA reads them by
 *       position only). Padding: when pad == eos TinyLLaVA's collator keeps every eos in the attention (padId -1 here);
 *       otherwise pad tokens in the text are dropped, as for LLaVA.</li>
 * </ul>
 * A record with an image is tokenized with {@link LlavaTokenizer#tokenizerImageToken}; a text-only record with
 * {@code tokenizer(text)} (LLaVA's has_image=False), so no image token is inserted. The result must hold exactly one
 * image token for a record with an image and none for a text-only record; anything else is a {@link DataException}.
 *
 * <p>Tokenizer-dependent corrections, as LLaVA applies them (it runs tokenizers ≥ 0.14): preprocess_v1 counts every
 * round after the first one token shorter when {@link LlavaTokenizer#legacy()} is false; preprocess_mpt counts every
 * round after the first one token longer when the tokenizer has a {@code legacy} attribute that is true
 * ({@link LlavaTokenizer#legacyAttribute()}); preprocess_llama_2 corrects nothing.
 */
public final class Conversation {

    /** The image placeholder in LLaVA data. */
    public static final String IMAGE = "<image>";
    /** Label of a position that is not supervised. */
    public static final int IGNORE_INDEX = -100;
    /** The vicuna_v1 system prompt. */
    public static final String SYSTEM_V1 = "A chat between a curious user and an artificial intelligence assistant. "
            + "The assistant gives helpful, detailed, and polite answers to the user's questions.";
    /** The system prompt of conv_vicuna_v0, conv_llava_v0 and conv_llava_v1 ("human" where vicuna_v1 says "user"). */
    public static final String SYSTEM_HUMAN = "A chat between a curious human and an artificial intelligence assistant. "
            + "The assistant gives helpful, detailed, and polite answers to the human's questions.";
    /** LLaVA's conv_llava_llama_2 system prompt. */
    public static final String SYSTEM_LLAMA_2 = "You are a helpful language and vision assistant. "
            + "You are able to understand the visual content that the user provides, "
            + "and assist the user with a variety of tasks using natural language.";
    /** LLaVA's conv_llama_2 system prompt (LLaMA-2-chat's). */
    public static final String SYSTEM_LLAMA_2_CHAT = "You are a helpful, respectful and honest assistant. Always answer as helpfully as"
            + " possible, while being safe.  Your answers should not include any harmful, unethical, racist, sexist, toxic, dangerous,"
            + " or illegal content. Please ensure that your responses are socially unbiased and positive in nature.\n\n"
            + "If a question does not make any sense, or is not factually coherent, explain why instead of answering something not"
            + " correct. If you don't know the answer to a question, please don't share false information.";
    /** conv_mpt's system prompt (with its ChatML header). */
    public static final String SYSTEM_MPT = "<|im_start|>system\n"
            + "A conversation between a user and an LLM-based AI assistant. The assistant gives helpful and honest answers.";
    /** LLaVA-NeXT's preprocess_qwen system message (and conv_qwen's system prompt, there with its ChatML header). */
    public static final String SYSTEM_QWEN = "You are a helpful assistant.";
    /** ChatML's turn opener, an added special token of Qwen tokenizers. */
    public static final String IM_START = "<|im_start|>";
    /** ChatML's turn end, an added special token of Qwen tokenizers (the EOS of Qwen Instruct/Chat models). */
    public static final String IM_END = "<|im_end|>";
    /** Qwen's document end (its base models' EOS and its pad token). */
    public static final String ENDOFTEXT = "<|endoftext|>";
    /** conv_chatml_direct's system prompt (with its ChatML header). */
    public static final String SYSTEM_CHATML_DIRECT = "<|im_start|>system\nAnswer the questions.";

    /** The system prompt of conv_llava_v0_mmtag and conv_llava_v1_mmtag (LLaVA's text, the missing space included). */
    public static final String SYSTEM_MMTAG = "A chat between a curious user and an artificial intelligence assistant. "
            + "The assistant is able to understand the visual content that the user provides, and assist the user with a variety of"
            + " tasks using natural language.The visual content will be provided with the following format: <Image>visual content</Image>.";

    /** conv_vicuna_v0's example exchange (its first two messages, offset 2), part of every v0 inference prompt. */
    static final String[][] VICUNA_V0_EXAMPLE = {
            {"Human", "What are the key differences between renewable and non-renewable energy sources?"},
            {"Assistant", "Renewable energy sources are those that can be replenished naturally in a relatively "
                    + "short amount of time, such as solar, wind, hydro, geothermal, and biomass. "
                    + "Non-renewable energy sources, on the other hand, are finite and will eventually be "
                    + "depleted, such as coal, oil, and natural gas. Here are some key differences between "
                    + "renewable and non-renewable energy sources:\n"
                    + "1. Availability: Renewable energy sources are virtually inexhaustible, while non-renewable "
                    + "energy sources are finite and will eventually run out.\n"
                    + "2. Environmental impact: Renewable energy sources have a much lower environmental impact "
                    + "than non-renewable sources, which can lead to air and water pollution, greenhouse gas emissions, "
                    + "and other negative effects.\n"
                    + "3. Cost: Renewable energy sources can be more expensive to initially set up, but they typically "
                    + "have lower operational costs than non-renewable sources.\n"
                    + "4. Reliability: Renewable energy sources are often more reliable and can be used in more remote "
                    + "locations than non-renewable sources.\n"
                    + "5. Flexibility: Renewable energy sources are often more flexible and can be adapted to different "
                    + "situations and needs, while non-renewable sources are more rigid and inflexible.\n"
                    + "6. Sustainability: Renewable energy sources are more sustainable over the long term, while "
                    + "non-renewable sources are not, and their depletion can lead to economic and social instability.\n"}};

    /** LLaVA's SeparatorStyle: how get_prompt joins the messages. */
    public enum Style { SINGLE, TWO, MPT, PLAIN, LLAMA_2, CHATML }

    /** Which of LLaVA's preprocess functions makes the labels. */
    enum Masking { PLAIN, V1, LLAMA_2, MPT, SINGLE, QWEN, TINY }

    /**
     * A conversation template: one of LLaVA's {@code conv_templates}, with its fields (system, roles, separator style,
     * sep, sep2) and the preprocess function LLaVA's train.py picks for it.
     */
    public enum Template {
        /** conv_llava_plain: {@code plain}, {@code v0_plain}. */
        PLAIN(Style.PLAIN, Masking.PLAIN, "", "", "", "\n", null, "plain", "v0_plain"),
        /** conv_vicuna_v1: {@code v1}, {@code vicuna_v1}. */
        VICUNA_V1(Style.TWO, Masking.V1, SYSTEM_V1, "USER", "ASSISTANT", " ", "</s>", "v1", "vicuna_v1"),
        /** conv_llava_v1: {@code llava_v1} (vicuna_v1 with the "curious human" system prompt). */
        LLAVA_V1(Style.TWO, Masking.V1, SYSTEM_HUMAN, "USER", "ASSISTANT", " ", "</s>", "llava_v1"),
        /**
         * {@code v0}: conv_vicuna_v0 for inference; for training LLaVA uses conv_vicuna_v1 and preprocess_v1 with the
         * tokenizer's pad (see the class comment).
         */
        V0(Style.SINGLE, Masking.V1, SYSTEM_HUMAN, "Human", "Assistant", "###", null, "v0"),
        /** conv_llava_v0: {@code llava_v0}, LLaVA's fallback preprocess. */
        LLAVA_V0(Style.SINGLE, Masking.SINGLE, SYSTEM_HUMAN, "Human", "Assistant", "###", null, "llava_v0"),
        /**
         * {@code default}: conv_vicuna_v0 as a template LLaVA's train.py does set (so the fallback preprocess, as
         * llava_v0, with the same system prompt and roles); for inference v0's prompt, example exchange included.
         */
        DEFAULT(Style.SINGLE, Masking.SINGLE, SYSTEM_HUMAN, "Human", "Assistant", "###", null, "default"),
        /** conv_llava_v0_mmtag: {@code v0_mmtag}, the fallback preprocess, {@code <image>} written {@code <Image><image></Image>}. */
        V0_MMTAG(Style.SINGLE, Masking.SINGLE, SYSTEM_MMTAG, "Human", "Assistant", "###", null, "v0_mmtag"),
        /** conv_llava_v1_mmtag: {@code v1_mmtag}, preprocess_v1, {@code <image>} written {@code <Image><image></Image>}. */
        V1_MMTAG(Style.TWO, Masking.V1, SYSTEM_MMTAG, "USER", "ASSISTANT", " ", "</s>", "v1_mmtag"),
        /** conv_llava_llama_2: {@code llava_llama_2}. */
        LLAVA_LLAMA_2(Style.LLAMA_2, Masking.LLAMA_2, SYSTEM_LLAMA_2, "USER", "ASSISTANT", "<s>", "</s>", "llava_llama_2"),
        /** conv_llama_2: {@code llama_2}. */
        LLAMA_2(Style.LLAMA_2, Masking.LLAMA_2, SYSTEM_LLAMA_2_CHAT, "USER", "ASSISTANT", "<s>", "</s>", "llama_2"),
        /** conv_mistral_instruct: {@code mistral_instruct} (LLaMA-2 style, no system prompt, no {@code <s>}). */
        MISTRAL_INSTRUCT(Style.LLAMA_2, Masking.LLAMA_2, "", "USER", "ASSISTANT", "", "</s>", "mistral_instruct"),
        /** conv_chatml_direct: {@code chatml_direct}, {@code mistral_direct}. */
        CHATML_DIRECT(Style.MPT, Masking.MPT, SYSTEM_CHATML_DIRECT, "<|im_start|>user\n", "<|im_start|>assistant\n",
                "<|im_end|>", null, "chatml_direct", "mistral_direct"),
        /** conv_mpt: {@code mpt}. */
        MPT(Style.MPT, Masking.MPT, SYSTEM_MPT, "<|im_start|>user\n", "<|im_start|>assistant\n", "<|im_end|>", null, "mpt"),
        /**
         * LLaVA-NeXT's conv_qwen: {@code qwen_1_5}, {@code qwen_2} (SeparatorStyle.CHATML; trained by preprocess_qwen,
         * see the class comment).
         */
        QWEN(Style.CHATML, Masking.QWEN, IM_START + "system\n" + SYSTEM_QWEN, IM_START + "user", IM_START + "assistant", IM_END, null,
                "qwen_1_5", "qwen_2"),
        /** TinyLLaVA's {@code qwen2_base}: vicuna_v1's text with {@code <|endoftext|>} ending each answer; Template._make_masks. */
        QWEN2_BASE(Style.TWO, Masking.TINY, SYSTEM_V1, "USER", "ASSISTANT", " ", ENDOFTEXT, "qwen2_base"),
        /** TinyLLaVA's {@code qwen2_instruct}: as qwen2_base with {@code <|im_end|>} ending each answer (not ChatML). */
        QWEN2_INSTRUCT(Style.TWO, Masking.TINY, SYSTEM_V1, "USER", "ASSISTANT", " ", IM_END, "qwen2_instruct");

        private final Style style;
        private final Masking masking;
        private final String system, user, assistant, sep, sep2;
        private final List<String> names;

        Template(Style style, Masking masking, String system, String user, String assistant, String sep, String sep2, String... names) {
            this.style = style;
            this.masking = masking;
            this.system = system;
            this.user = user;
            this.assistant = assistant;
            this.sep = sep;
            this.sep2 = sep2;
            this.names = List.of(names);
        }

        /** The names LLaVA's {@code conv_templates} gives this template; the first is the one used in messages. */
        public List<String> names() {
            return names;
        }

        public Style style() {
            return style;
        }

        /** The system prompt. */
        public String system() {
            return system;
        }

        /** The two role names (user, assistant) as get_prompt writes them. */
        public String[] roles() {
            return new String[]{user, assistant};
        }

        /**
         * The string at which LLaVA's cli.py stops generating: {@code sep}, or {@code sep2} for SeparatorStyle.TWO
         * (e.g. {@code "###"} for v0, {@code "<|im_end|>"} for mpt, {@code "</s>"} for v1).
         */
        public String stop() {
            return style == Style.TWO ? sep2 : sep;
        }

        /** The same as {@link #of}: every template trains. */
        public static Template forTraining(String version) {
            return of(version);
        }

        /**
         * The template of a LLaVA {@code --version} / {@code --conv-mode} value (a name of LLaVA's conv_templates, of
         * LLaVA-NeXT's {@code qwen_1_5} / {@code qwen_2}, or of TinyLLaVA's {@code qwen2_base} / {@code qwen2_instruct}).
         * Other names are refused (LLaVA's train.py silently trains vicuna_v1 for them).
         */
        public static Template of(String version) {
            if (version == null) throw new DataException("conversation template: none given (expected one of " + known() + ")");
            for (Template t : values()) if (t.names.contains(version)) return t;
            throw new DataException("conversation template \"" + version + "\" is not supported (expected one of " + known() + ")");
        }

        /**
         * The conv mode a model was trained with, from what its config says: {@code llmModelType} is the language model's
         * {@code model_type} ({@code text_config.model_type} in HF folders: qwen2, llama, mistral; may be null), and
         * {@code vlmModelType} the top-level {@code model_type} (llava, llava_next, llava_onevision, tinyllava, or the
         * original folders' llava_llama, llava_mistral, llava_qwen; null = llava).
         * <ul>
         *   <li>a qwen2 LLM under llava_onevision, llava (interleave), llava_next or llava_qwen: {@code qwen_1_5}
         *       (LLaVA-NeXT's recipes; qwen_2 is the same template);</li>
         *   <li>tinyllava with qwen2: {@code qwen2_base} (TinyLLaVA's Qwen2 recipe; a model trained from an Instruct LLM
         *       with qwen2_instruct cannot be told apart from its config);</li>
         *   <li>llava_next (or llava_mistral) with mistral: {@code mistral_instruct}; llava_next with llama:
         *       {@code vicuna_v1};</li>
         *   <li>llava / llava_llama (LLaVA-1.5) with any other LLM: {@code v1}, the CLI's default.</li>
         * </ul>
         * Other combinations have no known template: a {@link DataException} naming them.
         */
        public static String defaultConvMode(String llmModelType, String vlmModelType) {
            String llm = llmModelType == null ? "" : llmModelType.toLowerCase(Locale.ROOT);
            String vlm = vlmModelType == null ? "llava" : vlmModelType.toLowerCase(Locale.ROOT);
            boolean qwen2 = llm.equals("qwen2");
            String mode = switch (vlm) {
                case "llava_qwen" -> "qwen_1_5";
                case "llava_onevision" -> qwen2 ? "qwen_1_5" : null;
                case "tinyllava" -> qwen2 ? "qwen2_base" : null;
                case "llava_mistral" -> "mistral_instruct";
                case "llava_next" -> qwen2 ? "qwen_1_5" : llm.equals("mistral") ? "mistral_instruct" : llm.equals("llama") ? "vicuna_v1" : null;
                case "llava", "llava_llama" -> qwen2 ? "qwen_1_5" : "v1";
                default -> null;
            };
            if (mode == null)
                throw new DataException("no known conversation template for a " + (llmModelType == null ? "" : llmModelType + " language model under ")
                        + "model_type " + vlm + "; pass --conv_mode / --version (one of " + known() + ")");
            return mode;
        }

        private static String known() {
            List<String> all = new ArrayList<>();
            for (Template t : values()) all.addAll(t.names);
            return String.join(", ", all);
        }

        /**
         * The id LLaVA pads with (and counts, and drops from the attention mask) under this template, or -1 when that
         * pad is a token the text cannot contain. LLaVA's train.py sets {@code tokenizer.pad_token = unk_token} for
         * every {@code --version} but v0, whatever tokenizer_config.json says. For v0 it keeps the tokenizer's
         * {@code pad_token}, and where there is none it adds a new {@code [PAD]} token (and an embedding row): no text
         * holds it, so -1 here; llava4j does not grow the vocabulary (the padded positions are masked out either way).
         * A v0 pad that is the EOS would make LLaVA mask every sample (each v1 round ends in {@code </s>}): refused.
         */
        public int padId(LlavaTokenizer tok) {
            if (masking == Masking.QWEN) { // LLaVA-NeXT: pad = unk when there is one, else the pad_token, else 0 (its collator)
                if (tok.unk() >= 0) return tok.unk();
                return Math.max(tok.padToken(), 0);
            }
            if (masking == Masking.TINY) {
                int pad = tok.padToken();
                if (pad < 0)
                    throw new DataException(tok.folder() + ": the tokenizer has no pad_token; TinyLLaVA's " + names.get(0)
                            + " template counts and pads with it");
                return pad == tok.eos() ? -1 : pad; // pad == eos: TinyLLaVA's collator keeps every eos in the attention
            }
            if (this == V0) {
                int pad = tok.padToken();
                if (pad >= 0 && pad == tok.eos())
                    throw new DataException(tok.folder() + ": pad_token is the eos token; LLaVA's --version v0 pads with it, counts"
                            + " every </s> as padding and masks every sample (use --version v1: the same prompt, padded with unk)");
                return pad;
            }
            if (tok.unk() >= 0) return tok.unk();
            // LLaVA-NeXT sets pad = unk only when there is an unk (Qwen's tokenizers have none) and keeps the pad_token
            if (tok.padToken() >= 0) return tok.padToken();
            throw new DataException(tok.folder() + ": the tokenizer has neither unk_token nor pad_token; LLaVA pads with unk"
                    + " (LLaVA-NeXT with the pad_token) under the " + names.get(0) + " template");
        }

        /**
         * A warning about the template itself, null when none: LLaVA's llava_v0 masking supervises parts of human
         * turns; its mpt masking loses one token per round against tokenizers that add BOS.
         */
        public String caveat() {
            if (masking == Masking.SINGLE)
                return "the " + names.get(0) + " template uses LLaVA's fallback preprocess, whose _mask_targets counts each turn as"
                        + " tokenized alone (BOS included) and skips 2 tokens per human turn: parts of human turns are supervised and"
                        + " parts of answers are not, as in LLaVA";
            if (masking == Masking.QWEN)
                return "the " + names.get(0) + " template uses LLaVA-NeXT's preprocess_qwen, which supervises every \\n,"
                        + " <|im_start|> and <|im_end|> token wherever it is, in the system and user turns too, as in LLaVA-NeXT";
            if (masking == Masking.MPT)
                return "the " + names.get(0) + " template uses LLaVA's preprocess_mpt, whose round lengths drop the <|im_end|> after"
                        + " each answer: with most tokenizers the rounds do not add up and LLaVA masks the sample (each one is named)";
            return null;
        }

        /** Whether preprocess_multimodal writes the image as {@code <Image><image></Image>} ("mmtag" in the version). */
        boolean mmtag() {
            return this == V0_MMTAG || this == V1_MMTAG;
        }

        /** The template whose prompt and masking training uses: v1's for v0 (LLaVA's default_conversation). */
        Template training() {
            return this == V0 ? VICUNA_V1 : this;
        }

        /**
         * The messages the template starts with ({@code {role, message}}, fresh copies): conv_vicuna_v0's example
         * exchange for v0, none for the others.
         */
        public List<String[]> initialMessages() {
            List<String[]> out = new ArrayList<>();
            if (this == V0 || this == DEFAULT) for (String[] m : VICUNA_V0_EXAMPLE) out.add(m.clone());
            return out;
        }

        /**
         * LLaVA's {@code Conversation.get_prompt} for these messages ({@code {role, message}}; a null or empty message
         * is "no message": the open turn, written as get_prompt writes it).
         */
        public String prompt(List<String[]> messages) {
            return prompt(system, messages);
        }

        /** {@link #prompt(List)} with another system prompt (LLaVA's {@code conv.system = ...}). */
        public String prompt(String system, List<String[]> messages) {
            StringBuilder p = new StringBuilder();
            switch (style) {
                case SINGLE -> {
                    p.append(system).append(sep);
                    for (String[] m : messages)
                        if (has(m[1])) p.append(m[0]).append(": ").append(m[1]).append(sep);
                        else p.append(m[0]).append(':');
                }
                case TWO -> {
                    p.append(system).append(sep);
                    for (int i = 0; i < messages.size(); i++) {
                        String[] m = messages.get(i);
                        if (has(m[1])) p.append(m[0]).append(": ").append(m[1]).append(i % 2 == 0 ? sep : sep2);
                        else p.append(m[0]).append(':');
                    }
                }
                case MPT -> {
                    p.append(system).append(sep);
                    for (String[] m : messages)
                        if (has(m[1])) p.append(m[0]).append(m[1]).append(sep);
                        else p.append(m[0]);
                }
                case LLAMA_2 -> {
                    for (int i = 0; i < messages.size(); i++) {
                        String[] m = messages.get(i);
                        if (i == 0 && (!has(m[1]) || !m[0].equals(user)))
                            throw new IllegalArgumentException("the " + names.get(0) + " template needs a first message, from the user");
                        if (!has(m[1])) continue;
                        String msg = i == 0 && !system.isEmpty() ? "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + m[1] : m[1];
                        if (i % 2 == 0) p.append(sep).append("[INST] ").append(msg).append(" [/INST]");
                        else p.append(' ').append(msg).append(' ').append(sep2);
                    }
                    int a = 0; // Python's ret.lstrip(sep): strips any leading character of sep
                    while (a < p.length() && sep.indexOf(p.charAt(a)) >= 0) a++;
                    return p.substring(a);
                }
                case CHATML -> { // LLaVA-NeXT's get_prompt, SeparatorStyle.CHATML
                    if (!system.isEmpty()) p.append(system).append(sep).append('\n');
                    for (String[] m : messages)
                        if (has(m[1])) p.append(m[0]).append('\n').append(m[1]).append(sep).append('\n');
                        else p.append(m[0]).append('\n');
                }
                case PLAIN -> {
                    p.append(system);
                    for (int i = 0; i < messages.size(); i++) {
                        String m = messages.get(i)[1];
                        if (!has(m)) continue;
                        String s = i % 2 == 0 ? sep : sep2;
                        if (s == null) throw new IllegalArgumentException("the plain template holds one turn only (its sep2 is None)");
                        p.append(m).append(s);
                    }
                }
            }
            return p.toString();
        }

        private static boolean has(String message) {
            return message != null && !message.isEmpty();
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
    private final Template train;
    private final LlavaTokenizer tok;
    private final int imageTokenIndex;
    private final int padId;

    public Conversation(Template template, LlavaTokenizer tok, int imageTokenIndex) {
        this.template = template;
        this.train = template.training();
        this.tok = tok;
        this.imageTokenIndex = imageTokenIndex;
        this.padId = template.padId(tok);
    }

    public Template template() {
        return template;
    }

    /** The id LLaVA pads with under this template ({@link Template#padId}); -1 for v0's new [PAD] token. */
    public int padId() {
        return padId;
    }

    /**
     * The id the collator puts in padded positions: {@link #padId()}, or for v0's new [PAD] token (which llava4j does
     * not add) the unk or eos id; padded positions are masked out of attention and labels, so the id is never read.
     */
    public int collatorPadId() {
        return padId >= 0 ? padId : tok.unk() >= 0 ? tok.unk() : tok.eos();
    }

    /** Tokenizes without a length limit. */
    public Tokenized tokenize(LlavaRecord r) {
        return tokenize(r, Integer.MAX_VALUE);
    }

    /**
     * LLaVA's preprocess for one record, then truncation to {@code modelMaxLength}. As in LLaVA, the mismatch check
     * of v1, llama_2 and mpt only applies when the rounds end before {@code modelMaxLength}.
     */
    public Tokenized tokenize(LlavaRecord r, int modelMaxLength) {
        return untruncated(r, modelMaxLength).truncate(modelMaxLength);
    }

    /**
     * {@link #tokenize(LlavaRecord, int)} before the cut to {@code modelMaxLength} (which still decides, as in LLaVA,
     * whether the mismatch check applies).
     */
    public Tokenized untruncated(LlavaRecord r, int modelMaxLength) {
        String prompt = prompt(r);
        boolean plain = train.masking == Masking.PLAIN;
        // preprocess_plain and TinyLLaVA's Template.encode always use tokenizer_image_token
        int[] ids = tokenizeText(prompt, plain || train.masking == Masking.TINY || r.hasImage());
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
        Tokenized t = switch (train.masking) {
            case PLAIN -> labelsPlain(ids);
            case V1 -> labelsRounds(r, prompt, ids, modelMaxLength, r.hasImage(), true);
            case LLAMA_2 -> labelsRounds(r, prompt, ids, modelMaxLength, r.hasImage(), false);
            case MPT -> labelsMpt(r, prompt, ids, modelMaxLength, r.hasImage());
            case SINGLE -> labelsSingle(r, ids, modelMaxLength, r.hasImage());
            case QWEN -> labelsQwen(r, r.hasImage());
            case TINY -> labelsTiny(r, prompt, ids, modelMaxLength);
        };
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
        List<Turn> turns = turns(r);
        if (train.masking == Masking.PLAIN) { // preprocess_plain: roles are not looked at
            if (turns.size() != 2)
                throw new RecordException(DataProblem.TEMPLATE, r.describe() + ": field conversations: the plain template needs exactly 2 turns, got " + turns.size());
            if (!turns.get(0).value().contains(IMAGE))
                throw new RecordException(DataProblem.IMAGE_COUNT, r.describe() + ": field conversations[0].value: the plain template needs " + IMAGE + " in the first turn");
            return IMAGE + turns.get(1).value() + "\n";
        }
        if (train.masking == Masking.SINGLE) return promptSingle(turns);
        List<String[]> messages = messages(r, turns);
        if (train.masking == Masking.QWEN) return String.join("", qwenSegments(messages));
        if (train.masking == Masking.TINY) return promptTiny(r, messages);
        try {
            return train.prompt(messages);
        } catch (IllegalArgumentException e) { // get_prompt's assert for LLAMA_2
            throw new RecordException(DataProblem.TEMPLATE, r.describe() + ": field conversations[" + skip(turns) + "].value: " + e.getMessage());
        }
    }

    /** preprocess_*: "Skip the first one if it is not from human". */
    private static int skip(List<Turn> turns) {
        return turns.get(0).from().equals("human") ? 0 : 1;
    }

    /**
     * The record's messages ({role as the template writes it, text}) after the checks of LLaVA's preprocess_*: roles
     * human and gpt only, a leading non-human turn skipped, then human and gpt alternating, at most one turn with the
     * image.
     */
    private List<String[]> messages(LlavaRecord r, List<Turn> turns) {
        for (int j = 0; j < turns.size(); j++) { // preprocess_*: roles = {"human": ..., "gpt": ...}, a KeyError for any other
            String from = turns.get(j).from();
            if (!"human".equals(from) && !"gpt".equals(from))
                throw new RecordException(DataProblem.ROLES, r.describe() + ": field conversations[" + j + "].from: unknown role \"" + from
                        + "\" (the " + template.names.get(0) + " template knows exactly human and gpt, as LLaVA's preprocess does)");
        }
        int skip = skip(turns);
        List<String[]> messages = new ArrayList<>();
        int imageTurns = 0;
        for (int j = skip; j < turns.size(); j++) {
            Turn t = turns.get(j);
            int k = j - skip;
            String want = k % 2 == 0 ? "human" : "gpt";
            if (!t.from().equals(want))
                throw new RecordException(DataProblem.ROLES, r.describe() + ": field conversations[" + j + "].from: \"" + t.from() + "\" where a "
                        + want + " turn is expected (roles must alternate, starting with human)");
            if (t.value().contains(IMAGE)) imageTurns++;
            messages.add(new String[]{train.roles()[k % 2], t.value()});
        }
        if (r.hasImage() && imageTurns > 1)
            throw new RecordException(DataProblem.IMAGE_COUNT, r.describe() + ": field conversations: " + imageTurns + " turns mention " + IMAGE
                    + " (after skipping a leading non-human turn), expected at most 1 for one image");
        return messages;
    }

    /** _add_speaker_and_signal: the fallback preprocess's text, and each turn's own piece of it. */
    private List<String> singleSegments(List<Turn> turns) {
        List<String> out = new ArrayList<>();
        out.add(train.system + "\n\n");
        for (Turn t : turns) {
            String from = t.from().toLowerCase(Locale.ROOT);
            String role = from.equals("human") ? train.user : from.equals("gpt") ? train.assistant : "unknown";
            out.add("### " + role + ": " + t.value() + "\n");
        }
        return out;
    }

    private String promptSingle(List<Turn> turns) {
        return String.join("", singleSegments(turns)) + "### ";
    }

    /**
     * The record's turns after the image placement of the template's code base: LLaVA's preprocess_multimodal, which
     * runs for records with an image only (LLaVA-NeXT's own version for qwen_1_5); TinyLLaVA's Template._prompt, which
     * moves the image in questions (human turns) only, for every record.
     */
    private List<Turn> turns(LlavaRecord r) {
        if (train.masking == Masking.TINY) {
            List<Turn> out = new ArrayList<>(r.conversations().size());
            for (Turn t : r.conversations())
                out.add(t.from().equals("human") ? moveImageFirst(List.of(t), false).get(0) : t);
            return out;
        }
        if (!r.hasImage()) return r.conversations();
        return train.masking == Masking.QWEN ? moveImageFirstNext(r.conversations()) : moveImageFirst(r.conversations(), template.mmtag());
    }

    /**
     * LLaVA-NeXT's preprocess_multimodal (which differs from LLaVA-1.5's): a turn with exactly one {@code <image>} that
     * does not start with it has it removed, the value stripped, {@code "<image>\n"} put in front and the whole stripped
     * again; a turn that starts with {@code <image>}, or holds it twice or more, is left as it is (no strip, no newline
     * added). Then every turn that mentions {@code <video>} has it removed and is stripped.
     */
    static List<Turn> moveImageFirstNext(List<Turn> turns) {
        List<Turn> out = new ArrayList<>(turns.size());
        for (Turn t : turns) {
            String v = t.value();
            int n = 0;
            for (int at = v.indexOf(IMAGE); at >= 0; at = v.indexOf(IMAGE, at + IMAGE.length())) n++;
            if (n == 1 && !v.startsWith(IMAGE)) v = pyStrip(IMAGE + "\n" + pyStrip(v.replace(IMAGE, "")));
            if (v.contains("<video>")) v = pyStrip(v.replace("<video>", ""));
            out.add(new Turn(t.from(), v));
        }
        return out;
    }

    /**
     * LLaVA's preprocess_multimodal: in every turn that contains {@code <image>}, all occurrences are removed, the
     * value stripped, and {@code "<image>\n"} put in front (then stripped again); for the mmtag templates the image
     * is then written {@code <Image><image></Image>}.
     */
    public static List<Turn> moveImageFirst(List<Turn> turns, boolean mmtag) {
        List<Turn> out = new ArrayList<>(turns.size());
        for (Turn t : turns) {
            String v = t.value();
            if (v.contains(IMAGE)) {
                v = pyStrip(IMAGE + "\n" + pyStrip(v.replace(IMAGE, "")));
                if (mmtag) v = v.replace(IMAGE, "<Image>" + IMAGE + "</Image>");
            }
            out.add(new Turn(t.from(), v));
        }
        return out;
    }

    private int[] tokenizeText(String text, boolean hasImage) {
        return hasImage ? LlavaTokenizer.tokenizerImageToken(tok, text, imageTokenIndex) : tok.encode(text, true);
    }

    /**
     * The pieces LLaVA-NeXT's preprocess_qwen encodes one by one (apply_chat_template of one message each, so ChatML's
     * {@code <|im_start|>role\ncontent<|im_end|>\n}, an empty content included): the system message, then the
     * messages as user / assistant.
     */
    private List<String> qwenSegments(List<String[]> messages) {
        List<String> out = new ArrayList<>(messages.size() + 1);
        out.add(chatml("system", SYSTEM_QWEN));
        for (String[] m : messages) out.add(chatml(m[0].equals(train.user) ? "user" : "assistant", m[1]));
        return out;
    }

    private static String chatml(String role, String content) {
        return IM_START + role + "\n" + content + IM_END + "\n";
    }

    /**
     * LLaVA-NeXT's preprocess_qwen: each piece of {@link #qwenSegments} encoded alone (no BOS: apply_chat_template adds
     * no special tokens) and concatenated; the system and user pieces masked, the assistant pieces supervised in full
     * (their {@code <|im_start|>assistant\n} included); then every id of {@code \n}, {@code <|im_start|>} and
     * {@code <|im_end|>} supervised wherever it is.
     */
    private Tokenized labelsQwen(LlavaRecord r, boolean hasImage) {
        List<String[]> messages = messages(r, turns(r));
        List<String> segments = qwenSegments(messages);
        int newline = singleId("\n"), imStart = singleId(IM_START), imEnd = singleId(IM_END);
        List<int[]> pieces = new ArrayList<>(segments.size());
        int n = 0;
        for (String seg : segments) {
            int[] e = hasImage ? encodeWithImage(seg) : tok.encode(seg, false);
            pieces.add(e);
            n += e.length;
        }
        int[] ids = new int[n], labels = new int[n];
        int at = 0;
        for (int j = 0; j < pieces.size(); j++) {
            int[] e = pieces.get(j);
            boolean supervised = j > 0 && !messages.get(j - 1)[0].equals(train.user); // piece 0 is the system message
            System.arraycopy(e, 0, ids, at, e.length);
            if (supervised) System.arraycopy(e, 0, labels, at, e.length);
            else Arrays.fill(labels, at, at + e.length, IGNORE_INDEX);
            at += e.length;
        }
        for (int i = 0; i < n; i++) // LLaVA-NeXT's unmask_tokens_idx = [198, im_start, im_end]
            if (ids[i] == newline || ids[i] == imStart || ids[i] == imEnd) labels[i] = ids[i];
        return new Tokenized(ids, labels, null, false);
    }

    /**
     * apply_chat_template's tokenization with {@code <image>} added as a special token (LLaVA-NeXT does so when the
     * sample has an image): the text split at each {@code <image>}, the pieces encoded without special tokens, the
     * image id between them.
     */
    private int[] encodeWithImage(String text) {
        List<String> chunks = pySplit(text, IMAGE);
        List<int[]> enc = new ArrayList<>(chunks.size());
        int n = chunks.size() - 1;
        for (String c : chunks) {
            int[] e = tok.encode(c, false);
            enc.add(e);
            n += e.length;
        }
        int[] out = new int[n];
        int at = 0;
        for (int k = 0; k < enc.size(); k++) {
            if (k > 0) out[at++] = imageTokenIndex;
            System.arraycopy(enc.get(k), 0, out, at, enc.get(k).length);
            at += enc.get(k).length;
        }
        return out;
    }

    /** The one id {@code text} encodes to (a special token, or {@code "\n"}); a tokenizer that splits it is refused. */
    private int singleId(String text) {
        int[] e = tok.encode(text, false);
        if (e.length != 1)
            throw new DataException(tok.folder() + ": \"" + text.replace("\n", "\\n") + "\" encodes to " + e.length + " ids, not one; the "
                    + template.names.get(0) + " template needs it as a single token");
        return e[0];
    }

    /**
     * TinyLLaVA's Template._prompt: {@code system + " "}, then per question and answer {@code "USER: " + q + " "} and
     * {@code "ASSISTANT: " + a + eos}; the questions and answers must pair up (TinyLLaVA's assert).
     */
    private String promptTiny(LlavaRecord r, List<String[]> messages) {
        if (messages.size() % 2 != 0)
            throw new RecordException(DataProblem.TEMPLATE, r.describe() + ": field conversations: " + messages.size()
                    + " turns after skipping a leading non-human turn; the " + template.names.get(0)
                    + " template needs each question answered (TinyLLaVA asserts as many answers as questions)");
        StringBuilder p = new StringBuilder(train.system).append(train.sep);
        for (String[] m : messages) {
            if (m[0].equals(train.user)) p.append(train.user).append(": ").append(m[1]).append(train.sep);
            else p.append(train.assistant).append(": ").append(m[1]).append(train.sep2);
        }
        return p.toString();
    }

    /**
     * TinyLLaVA's Template.make_labels / _make_masks: the prompt is split into rounds on eos (sep2); each round on
     * {@code " ASSISTANT: "}; counting starts at 0 (no BOS); a round counts {@code len(tokenizer_image_token(round)) +
     * len(tokenizer.encode(eos))}, its instruction part {@code len(tokenizer_image_token(part0 + " ASSISTANT: ")) - 1}.
     * The total it is checked against is the number of ids that are not the tokenizer's pad, plus
     * {@code prompt.count(eos)} when the tokenizer's pad is its eos; when they differ (and the rounds end before
     * {@code modelMaxLength}) the whole sample is masked.
     */
    private Tokenized labelsTiny(LlavaRecord r, String prompt, int[] ids, int modelMaxLength) {
        String sep = train.sep + train.assistant + ": ", eos = train.sep2;
        int[] labels = ids.clone();
        int eosLen = tok.encode(eos, true).length;
        int cur = 0;
        for (String rou : pySplit(prompt, eos)) {
            if (rou.isEmpty()) break;
            List<String> parts = pySplit(rou, sep);
            if (parts.size() != 2) break;
            int roundLen = tokenizeText(rou, true).length + eosLen;
            int instructionLen = tokenizeText(parts.get(0) + sep, true).length - 1;
            mask(labels, cur, cur + instructionLen);
            cur += roundLen;
        }
        mask(labels, cur, labels.length);
        int pad = tok.padToken(), total = 0;
        for (int id : ids) if (id != pad) total++;
        if (pad == tok.eos()) total += countOf(prompt, eos);
        if (cur < modelMaxLength && cur != total) {
            Arrays.fill(labels, IGNORE_INDEX);
            return new Tokenized(ids, labels, r.describe() + ": tokenization mismatch: the rounds of the " + template.names.get(0)
                    + " template cover " + cur + " tokens but TinyLLaVA counts " + total + (pad == tok.eos() ? "" : " (ids other than the pad "
                    + pad + ")") + "; the sample is fully masked (as TinyLLaVA does)", true);
        }
        return new Tokenized(ids, labels, null, false);
    }

    /** Python's {@code s.count(sub)}: non-overlapping occurrences. */
    private static int countOf(String s, String sub) {
        int n = 0;
        for (int at = s.indexOf(sub); at >= 0; at = s.indexOf(sub, at + sub.length())) n++;
        return n;
    }

    /** plain: mask the tokens of "<image>" alone (BOS + image token). */
    private Tokenized labelsPlain(int[] ids) {
        int masked = Math.min(tokenizeText(IMAGE, true).length, ids.length);
        int[] labels = ids.clone();
        Arrays.fill(labels, 0, masked, IGNORE_INDEX);
        return new Tokenized(ids, labels, null, false);
    }

    /**
     * LLaVA's preprocess_v1 ({@code v1}: separator {@code sep + roles[1] + ": "}, the non-legacy -1 per round) and
     * preprocess_llama_2 (separator {@code "[/INST] "}, no correction): the prompt is split into rounds on sep2
     * ({@code </s>}), each round on the separator; BOS and the instruction part of each round (its token count minus
     * 2) are masked.
     */
    private Tokenized labelsRounds(LlavaRecord r, String prompt, int[] ids, int modelMaxLength, boolean hasImage, boolean v1) {
        String sep = v1 ? train.sep + train.assistant + ": " : "[/INST] ";
        int[] labels = ids.clone();
        int cur = 1;
        mask(labels, 0, cur);
        List<String> rounds = pySplit(prompt, train.sep2);
        for (int i = 0; i < rounds.size(); i++) {
            String rou = rounds.get(i);
            if (rou.isEmpty()) break;
            List<String> parts = pySplit(rou, sep);
            if (parts.size() != 2) break;
            int roundLen = tokenizeText(rou, hasImage).length;
            int instructionLen = tokenizeText(parts.get(0) + sep, hasImage).length - 2;
            if (v1 && i != 0 && !tok.legacy()) { // the round's first piece loses its "▁" behind </s>
                roundLen--;
                instructionLen--;
            }
            mask(labels, cur, cur + instructionLen);
            cur += roundLen;
        }
        mask(labels, cur, labels.length);
        return mismatch(r, ids, labels, cur, modelMaxLength);
    }

    /**
     * LLaVA's preprocess_mpt: the prompt is split on sep ({@code <|im_end|>}) and regrouped as system + user + gpt,
     * then user + gpt per round (the sep between the pieces of a round kept, the one after it lost); each round is
     * split on {@code sep + roles[1]}; counting starts at 0 and the instruction part is its token count minus 1; with
     * a tokenizer whose {@code legacy} attribute is true every round after the first counts one more.
     */
    private Tokenized labelsMpt(LlavaRecord r, String prompt, int[] ids, int modelMaxLength, boolean hasImage) {
        String sep = train.sep + train.assistant;
        int[] labels = ids.clone();
        List<String> rounds = pySplit(prompt, train.sep);
        List<String> reRounds = new ArrayList<>();
        reRounds.add(String.join(train.sep, rounds.subList(0, Math.min(3, rounds.size()))));
        for (int idx = 3; idx < rounds.size(); idx += 2)
            reRounds.add(String.join(train.sep, rounds.subList(idx, Math.min(idx + 2, rounds.size()))));
        int cur = 0;
        for (int i = 0; i < reRounds.size(); i++) {
            String rou = reRounds.get(i);
            if (rou.isEmpty()) break;
            List<String> parts = pySplit(rou, sep);
            if (parts.size() != 2) break;
            int roundLen = tokenizeText(rou, hasImage).length;
            int instructionLen = tokenizeText(parts.get(0) + sep, hasImage).length - 1;
            if (i != 0 && tok.legacyAttribute() && tok.legacy()) {
                roundLen++;
                instructionLen++;
            }
            mask(labels, cur, cur + instructionLen);
            cur += roundLen;
        }
        mask(labels, cur, labels.length);
        return mismatch(r, ids, labels, cur, modelMaxLength);
    }

    /** The check that ends preprocess_v1 / _llama_2 / _mpt: rounds that do not cover the sample mask all of it. */
    private Tokenized mismatch(LlavaRecord r, int[] ids, int[] labels, int cur, int modelMaxLength) {
        int total = 0;
        for (int id : ids) if (id != padId) total++;  // LLaVA: target.ne(pad_token_id).sum()
        if (cur < modelMaxLength && cur != total) {
            Arrays.fill(labels, IGNORE_INDEX);
            return new Tokenized(ids, labels, r.describe() + ": tokenization mismatch: the rounds of the " + template.names.get(0)
                    + " template cover " + cur + " tokens but the sample has " + total + "; the sample is fully masked (as LLaVA does)", true);
        }
        return new Tokenized(ids, labels, null, false);
    }

    /**
     * LLaVA's fallback preprocess (SeparatorStyle.SINGLE): _mask_targets over the lengths of the header and of each
     * turn's {@code "### Role: value\n"}, each tokenized alone: with an image {@code len(tokenizer_image_token(s))},
     * without one _tokenize_fn's count of non-pad ids (truncated to model_max_length).
     */
    private Tokenized labelsSingle(LlavaRecord r, int[] ids, int modelMaxLength, boolean hasImage) {
        List<Turn> turns = turns(r);
        List<String> segments = singleSegments(turns);
        int[] lens = new int[segments.size()];
        for (int j = 0; j < lens.length; j++) {
            if (hasImage) {
                lens[j] = tokenizeText(segments.get(j), true).length;
            } else {
                int[] s = tok.encode(segments.get(j), true);
                for (int k = 0; k < Math.min(s.length, modelMaxLength); k++) if (s[k] != padId) lens[j]++;
            }
        }
        int[] labels = ids.clone();
        int cur = lens[0];
        mask(labels, 0, cur);
        for (int j = 0; j < turns.size(); j++) {
            if (turns.get(j).from().equals("human")) mask(labels, cur + 2, cur + lens[j + 1]);
            cur += lens[j + 1];
        }
        return new Tokenized(ids, labels, null, false);
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
