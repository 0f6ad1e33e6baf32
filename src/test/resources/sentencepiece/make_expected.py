"""Makes the SentencePiece fixtures of LlavaTokenizerSentencePieceTest (run from this folder):

    apt-get install -y sentencepiece python3-sentencepiece python3-protobuf
    /usr/bin/python3 make_expected.py

1. trains `tokenizer.model`: a small SentencePiece BPE model with LLaMA's trainer options (byte fallback, identity
   normalization, no whitespace folding, split digits, <unk>=0 <s>=1 </s>=2) on a deterministic LLaVA-like corpus;
2. writes `expected.json`: for each text, the ids of
   - `sp`: the real sentencepiece library, `SentencePieceProcessor.encode(text)`;
   - `legacy` / `non_legacy`: transformers' slow LlamaTokenizer (the tokenizer LLaVA loads, use_fast=False, in
     transformers 4.37 as LLaVA pins it) with legacy=True / legacy=False, without special tokens added. transformers is
     not a Debian package, so its tokenize() is transcribed below (added tokens split first, lstrip/rstrip, then
     sentencepiece on each piece; legacy=False: the model's add_dummy_prefix is switched off in the ModelProto
     exactly as transformers does it, a "▁" is put in front of the whole text, and a piece that starts with a space is
     encoded behind the unk token and that token cut off again);
   - LLaVA's preprocess_v1 labels of one multi-turn conversation with an image, for both tokenizers (LLaVA's
     "-1 per round" when legacy is False).
Special tokens: <unk> <s> </s> (the model's own), and <image> added behind the vocabulary as llava-hf's
tokenizer_config.json does (added_tokens_decoder).
"""
import json
import random

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as model_pb2

SP = "\u2581"
IMAGE_TOKEN_INDEX = -200
IGNORE_INDEX = -100

WORDS = ("a the red blue green yellow circle square triangle star shape image picture photo of on in at top bottom "
         "left right is are what which where how many there two three one object objects color colour large small "
         "ASSISTANT user assistant chat between curious and an artificial intelligence gives helpful detailed "
         "polite answers to questions describe briefly this scene cat dog sitting next table window").split()


def corpus():
    rng = random.Random(1234)
    lines = []
    for _ in range(3000):
        n = rng.randint(3, 14)
        words = [rng.choice(WORDS) for _ in range(n)]
        if rng.random() < 0.2:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 2024)))
        line = " ".join(words)
        if rng.random() < 0.3:
            line = line.capitalize() + rng.choice([".", "?", "!", ":", ","])
        if rng.random() < 0.3:  # as in LLaMA's vocabulary, "USER" after "</s>" is one piece, "▁USER" is not
            line = line + "</s>USER: " + rng.choice(WORDS)
        lines.append(line)
    return lines


def train():
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus()), model_prefix="tokenizer", model_type="bpe", vocab_size=800,
        character_coverage=1.0, byte_fallback=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, split_digits=True, allow_whitespace_only_pieces=True, add_dummy_prefix=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, minloglevel=2)


class SlowLlamaTokenizer:
    """transformers 4.37's LlamaTokenizer.tokenize / convert_tokens_to_ids, special tokens not added."""

    def __init__(self, model_file, legacy, added):
        self.legacy = legacy
        proto = model_pb2.ModelProto.FromString(open(model_file, "rb").read())
        if not legacy:
            spec = model_pb2.NormalizerSpec()
            spec.add_dummy_prefix = False
            proto.normalizer_spec.MergeFrom(spec)
        self.sp = spm.SentencePieceProcessor()
        self.sp.LoadFromSerializedProto(proto.SerializeToString())
        self.unk = "<unk>"
        self.unk_len = len(self.sp.encode(self.unk))
        self.special = {"<unk>", "<s>", "</s>"}  # all_special_tokens (pad is unset, as in LLaVA's v1.5 config)
        self.added = {"<unk>": 0, "<s>": 1, "</s>": 2, **added}  # _added_tokens_encoder

    def split(self, text):
        """Trie.split: at each position the longest added token starting there."""
        out, start, i = [], 0, 0
        while i < len(text):
            hit = max((t for t in self.added if text.startswith(t, i)), key=len, default=None)
            if hit is None:
                i += 1
                continue
            out.append(text[start:i])
            out.append(hit)
            i += len(hit)
            start = i
        out.append(text[start:])
        return [t for t in out if t != ""] if out else [text]

    def _tokenize(self, text):
        if self.legacy or not text.startswith((SP, " ")):
            return self.sp.encode(text, out_type=str)
        tokens = self.sp.encode(self.unk + text, out_type=str)
        return tokens[self.unk_len:] if len(tokens) >= self.unk_len else tokens

    def tokenize(self, text):
        if not self.legacy and len(text) > 0:
            text = SP + text.replace(SP, " ")
        tokens = []
        for chunk in self.split(text):  # no added token here has lstrip/rstrip/single_word
            tokens.extend([chunk] if chunk in self.added else self._tokenize(chunk))
        if not self.legacy and len(tokens) > 1 and tokens[0] == SP and tokens[1] in self.special:
            tokens = tokens[1:]
        return tokens

    def ids(self, text):
        return [self.added[t] if t in self.added else self.sp.piece_to_id(t) for t in self.tokenize(text)]

    def __call__(self, text):  # tokenizer(text).input_ids: add_bos_token=True, add_eos_token=False
        return [1] + self.ids(text)


def tokenizer_image_token(prompt, tok):
    chunks = [tok(c) for c in prompt.split("<image>")]
    out, offset = [], 0
    if chunks and chunks[0] and chunks[0][0] == 1:
        offset = 1
        out.append(chunks[0][0])
    for k, c in enumerate(chunks):
        if k > 0:
            out.append(IMAGE_TOKEN_INDEX)
        out.extend(c[offset:])
    return out


def preprocess_v1(prompt, tok):
    """LLaVA's preprocess_v1 for one conversation with an image (tokenizers >= 0.14)."""
    ids = tokenizer_image_token(prompt, tok)
    labels = list(ids)
    total = sum(1 for i in ids if i != 0)  # pad = unk = 0
    cur = 1
    labels[:cur] = [IGNORE_INDEX] * cur
    for i, rou in enumerate(prompt.split("</s>")):
        if rou == "":
            break
        parts = rou.split(" ASSISTANT: ")
        if len(parts) != 2:
            break
        parts[0] += " ASSISTANT: "
        round_len = len(tokenizer_image_token(rou, tok))
        instruction_len = len(tokenizer_image_token(parts[0], tok)) - 2
        if i != 0 and not tok.legacy:
            round_len -= 1
            instruction_len -= 1
        labels[cur:cur + instruction_len] = [IGNORE_INDEX] * len(labels[cur:cur + instruction_len])
        cur += round_len
    labels[cur:] = [IGNORE_INDEX] * len(labels[cur:])
    assert cur == total, (tok.legacy, cur, total)  # the fixture must not be a tokenization mismatch
    return ids, labels


SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
          "The assistant gives helpful, detailed, and polite answers to the user's questions.")
CONVERSATION = [("human", "<image>\nWhat shape is on top?"), ("gpt", "A red circle."),
                ("human", "How many shapes are there?"), ("gpt", "There are 3 shapes: a star, a square and a triangle."),
                ("human", "Describe the colours briefly."), ("gpt", "Red, blue and green.")]

TEXTS = [
    "a red circle", "What shape is on top?", " leading space", "two  spaces and trailing ", "", " ", "\n",
    "line one\nline two", "digits 2024 and 7", "unknown é ü and 😀 emoji", "\u2581already marked", "tab\tseparated",
    "a</s>USER: b", "<s>hello</s>", "Hello <s>.", "x <image>\ny", "<image>\nWhat is it?", "ASSISTANT: </s>",
    "USER: <image>\nWhat shape is on top? ASSISTANT: A red circle.</s>USER: How many? ASSISTANT: 3</s>",
]


def main():
    train()
    added = {"<image>": 800}
    legacy = SlowLlamaTokenizer("tokenizer.model", True, added)
    non_legacy = SlowLlamaTokenizer("tokenizer.model", False, added)
    sp = spm.SentencePieceProcessor(model_file="tokenizer.model")
    cases = []
    for t in TEXTS:
        cases.append({"text": t, "sp": sp.encode(t), "sp_pieces": sp.encode(t, out_type=str),
                      "legacy": legacy.ids(t), "non_legacy": non_legacy.ids(t),
                      "non_legacy_pieces": non_legacy.tokenize(t)})
    prompt = SYSTEM + " "
    for k, (role, value) in enumerate(CONVERSATION):
        prompt += ("USER" if role == "human" else "ASSISTANT") + ": " + value + (" " if role == "human" else "</s>")
    v1 = {}
    for name, tok in (("legacy", legacy), ("non_legacy", non_legacy)):
        ids, labels = preprocess_v1(prompt, tok)
        v1[name] = {"input_ids": ids, "labels": labels}
    out = {"vocab_size": sp.get_piece_size(), "pieces": [sp.id_to_piece(i) for i in range(sp.get_piece_size())],
           "cases": cases, "v1_prompt": prompt,
           "v1_conversation": [{"from": r, "value": v} for r, v in CONVERSATION], "v1": v1}
    with open("expected.json", "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
