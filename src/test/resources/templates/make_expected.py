"""Makes expected.json for ConversationTemplatesTest: LLaVA's own conversation templates and preprocess functions, run
verbatim on the SentencePiece fixture tokenizer. Run from this folder with a checkout of haotian-liu/LLaVA:

    apt-get install -y python3-torch python3-sentencepiece python3-protobuf python3-pil
    /usr/bin/python3 make_expected.py /path/to/LLaVA

What is LLaVA's own code here (read from the checkout, not copied):
- llava/conversation.py is imported as it is (Conversation.get_prompt, conv_templates);
- from llava/train/train.py the functions _tokenize_fn, _mask_targets, _add_speaker_and_signal, preprocess_multimodal,
  preprocess_llama_2, preprocess_v1, preprocess_mpt, preprocess_plain and preprocess, and train()'s
  `if model_args.version == "v0": ...` block that picks the pad token and default_conversation, are cut out of the
  source with `ast` and executed as they are (IS_TOKENIZER_GREATER_THAN_0_14 = True, as with LLaVA's pinned versions);
- from llava/mm_utils.py tokenizer_image_token, likewise.
What stands in for transformers (not a Debian package): the slow LlamaTokenizer transcription of
../sentencepiece/make_expected.py (legacy=True and legacy=False) on ../sentencepiece/tokenizer.model, with <image>,
<|im_start|> and <|im_end|> added behind its 800 pieces (ids 800, 801, 802; the last two also additional special
tokens), and smart_tokenizer_and_embedding_resize adding [PAD] as id 803.

For every template (LLaVA's --version) x tokenizer x record, expected.json holds what LazySupervisedDataset.__getitem__
gives (input_ids, labels), whether preprocess printed "tokenization mismatch", or the exception LLaVA raises. For
inference, conv_templates[mode].copy() with append_message as llava/serve/cli.py does gives get_prompt() after one and
after two user turns.
"""
import ast
import contextlib
import copy
import importlib.util
import io
import json
import sys
import types
import typing
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("sentencepiece_fixtures", HERE.parent / "sentencepiece" / "make_expected.py")
_sp_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_sp_fixtures)
SlowLlamaTokenizer = _sp_fixtures.SlowLlamaTokenizer  # transformers 4.37's slow LlamaTokenizer, transcribed

MODEL = HERE.parent / "sentencepiece" / "tokenizer.model"
ADDED = {"<image>": 800, "<|im_start|>": 801, "<|im_end|>": 802}
PAD_NEW = 803
SHORT = 60


class Tokenizer:
    """What LLaVA's preprocess functions use of a transformers tokenizer."""

    def __init__(self, legacy, pad_token):
        self.sp = SlowLlamaTokenizer(str(MODEL), legacy, ADDED)
        self.sp.special |= {"<|im_start|>", "<|im_end|>"}
        self.legacy = legacy
        self.bos_token_id = 1
        self.unk_token = "<unk>"
        self.pad_token = pad_token
        self.model_max_length = 2048
        self.ids = {"<unk>": 0, "<s>": 1, "</s>": 2, **ADDED}

    @property
    def pad_token_id(self):
        return None if self.pad_token is None else self.ids[self.pad_token]

    def __call__(self, text, return_tensors=None, padding=None, max_length=None, truncation=False):
        def one(t):
            ids = self.sp(t)
            return ids[:max_length] if truncation else ids

        if isinstance(text, list):
            rows = [one(t) for t in text]
            assert len(rows) == 1
        else:
            rows = one(text)
            if return_tensors == "pt":
                rows = [rows]
        return types.SimpleNamespace(input_ids=torch.tensor(rows) if return_tensors == "pt" else rows)


def smart_tokenizer_and_embedding_resize(special_tokens_dict, tokenizer, model):
    tokenizer.ids[special_tokens_dict["pad_token"]] = PAD_NEW
    tokenizer.pad_token = special_tokens_dict["pad_token"]


def load_llava(root):
    spec = importlib.util.spec_from_file_location("llava_conversation", root / "llava" / "conversation.py")
    conv_lib = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conv_lib)
    ns = {"torch": torch, "copy": copy, "Sequence": typing.Sequence, "Dict": typing.Dict, "DataArguments": object,
          "transformers": types.SimpleNamespace(PreTrainedTokenizer=object), "conversation_lib": conv_lib,
          "IGNORE_INDEX": -100, "IMAGE_TOKEN_INDEX": -200, "DEFAULT_IMAGE_TOKEN": "<image>",
          "DEFAULT_IM_START_TOKEN": "<im_start>", "DEFAULT_IM_END_TOKEN": "<im_end>",
          "IS_TOKENIZER_GREATER_THAN_0_14": True, "model": None, "smart_tokenizer_and_embedding_resize": smart_tokenizer_and_embedding_resize}
    wanted = {"_tokenize_fn", "_mask_targets", "_add_speaker_and_signal", "preprocess_multimodal", "preprocess_llama_2",
              "preprocess_v1", "preprocess_mpt", "preprocess_plain", "preprocess", "tokenizer_image_token"}
    found = {}
    for f in ("llava/mm_utils.py", "llava/train/train.py"):
        tree = ast.parse((root / f).read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name in wanted:
                found[node.name] = node
            if isinstance(node, ast.FunctionDef) and node.name == "train":
                for st in ast.walk(node):
                    if isinstance(st, ast.If) and ast.unparse(st.test) == "model_args.version == 'v0'" \
                            and isinstance(st.orelse[0], ast.If):
                        found["pick_pad"] = ast.FunctionDef(
                            name="pick_pad", args=ast.arguments(posonlyargs=[], args=[ast.arg("model_args"), ast.arg("tokenizer")],
                                                               kwonlyargs=[], kw_defaults=[], defaults=[]),
                            body=[st], decorator_list=[], lineno=0)
    assert set(found) == wanted | {"pick_pad"}, sorted((wanted | {"pick_pad"}) - set(found))
    for name, node in found.items():
        exec(compile(ast.fix_missing_locations(ast.Module(body=[node], type_ignores=[])), f"llava:{name}", "exec"), ns)
    return conv_lib, ns


def T(role, value):
    return {"from": role, "value": value}


RECORDS = [
    {"id": "image-2-rounds", "image": "img0.png", "conversations": [
        T("human", "What shape is on top?\n<image>"), T("gpt", "A red circle."),
        T("human", "How many shapes are there?"), T("gpt", "There are 3 shapes: a star, a square and a triangle.")]},
    {"id": "text-3-rounds", "conversations": [
        T("human", "Describe a cat."), T("gpt", "A small cat sitting next to the window."),
        T("human", "What color?"), T("gpt", "Red."), T("human", "And the dog?"), T("gpt", "Blue and large.")]},
    {"id": "image-1-round", "image": "img0.png", "conversations": [
        T("human", "<image>\nDescribe briefly this scene."), T("gpt", "Two objects on a table.")]},
    {"id": "leading-gpt", "image": "img0.png", "conversations": [
        T("gpt", "Hello"), T("human", "<image>\nWhat is it?"), T("gpt", "a circle")]},
    {"id": "empty-answer", "conversations": [
        T("human", "Hi"), T("gpt", "yes"), T("human", "More?"), T("gpt", "")]},
    {"id": "single-gpt", "conversations": [T("gpt", "hello")]},
    {"id": "unknown-role", "conversations": [T("human", "q"), T("bot", "a")]},
    {"id": "capitalized-roles", "conversations": [T("Human", "q"), T("GPT", "a")]},
    {"id": "not-alternating", "conversations": [T("human", "q"), T("human", "again"), T("gpt", "a")]},
    {"id": "literal-unk", "conversations": [T("human", "Say <unk> now"), T("gpt", "ok <unk>")]},
    {"id": "two-images", "image": "img0.png", "conversations": [
        T("human", "<image>\nWhat is it?"), T("gpt", "a circle"), T("human", "<image> again?"), T("gpt", "yes")]},
    {"id": "special-text", "conversations": [
        T("human", "What is [INST] and ###?"), T("gpt", "Markers: </s> and <|im_end|> end turns.")]},
]

VERSIONS = ["default", "v0", "v1", "vicuna_v1", "llama_2", "mistral_instruct", "chatml_direct", "mistral_direct",
            "llava_v0", "v0_mmtag", "llava_v1", "v1_mmtag", "llava_llama_2", "mpt"]  # conv_templates but plain / v0_plain
MODES = ["plain", "v0_plain"] + VERSIONS


def run(conv_lib, ns, version, legacy, pad_token, record, max_length=2048):
    tok = Tokenizer(legacy, pad_token)
    tok.model_max_length = max_length
    conv_lib.default_conversation = conv_lib.conv_vicuna_v1  # the module's value before train() runs
    ns["pick_pad"](types.SimpleNamespace(version=version), tok)
    data_args = types.SimpleNamespace(is_multimodal=True, mm_use_im_start_end=False)
    if "image" in record:
        sources = ns["preprocess_multimodal"](copy.deepcopy([record["conversations"]]), data_args)
    else:
        sources = copy.deepcopy([record["conversations"]])
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            d = ns["preprocess"](sources, tok, has_image="image" in record)
    except (AssertionError, KeyError) as e:
        return {"error": type(e).__name__}
    # DataCollatorForSupervisedDataset cuts to model_max_length (the has_image path is not truncated before it)
    ids, labels = d["input_ids"][0].tolist()[:max_length], d["labels"][0].tolist()[:max_length]
    res = {"pad_id": tok.pad_token_id, "input_ids": ids, "labels": labels, "mismatch": "tokenization mismatch" in out.getvalue()}
    images = d["input_ids"][0].tolist().count(-200)  # before the collator's cut (a cut image token trains as text)
    if images != (1 if "image" in record else 0):
        res["image_tokens"] = images
    return res


def main():
    conv_lib, ns = load_llava(Path(sys.argv[1]))
    assert sorted(MODES) == sorted(conv_lib.conv_templates), sorted(conv_lib.conv_templates)
    samples = []
    for version in VERSIONS:
        for legacy in (True, False):
            for record in RECORDS:
                r = run(conv_lib, ns, version, legacy, None, record)
                samples.append({"version": version, "legacy": legacy, "id": record["id"], **r})
            for record in RECORDS:  # model_max_length shorter than the samples: truncation and the mismatch check's guard
                if record["id"] in ("image-2-rounds", "text-3-rounds", "literal-unk"):
                    r = run(conv_lib, ns, version, legacy, None, record, SHORT)
                    samples.append({"version": version, "legacy": legacy, "id": record["id"], "max_length": SHORT, **r})
    prompts = []
    for mode in MODES:
        conv = conv_lib.conv_templates[mode].copy()
        conv.append_message(conv.roles[0], "<image>\nWhat is it?")
        conv.append_message(conv.roles[1], None)
        one = conv.get_prompt()
        conv.messages[-1][-1] = "A circle."
        conv.append_message(conv.roles[0], "And below?")
        conv.append_message(conv.roles[1], None)
        stop = conv.sep if conv.sep_style != conv_lib.SeparatorStyle.TWO else conv.sep2
        try:
            two = conv.get_prompt()
        except TypeError as e:  # plain: sep2 is None
            two = {"error": type(e).__name__}
        prompts.append({"mode": mode, "one_turn": one, "two_turns": two, "stop": stop})
    with open(HERE / "expected.json", "w", encoding="utf-8") as f:  # one record / sample / prompt a line
        f.write("{\"records\": [\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in RECORDS) + "],\n")
        f.write("\"samples\": [\n" + ",\n".join(json.dumps(x, ensure_ascii=False) for x in samples) + "],\n")
        f.write("\"prompts\": [\n" + ",\n".join(json.dumps(x, ensure_ascii=False) for x in prompts) + "]}\n")


if __name__ == "__main__":
    main()
