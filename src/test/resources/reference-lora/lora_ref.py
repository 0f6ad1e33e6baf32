#!/usr/bin/python3
"""Independent PyTorch reference of a LLaVA-1.5 style model (HF transformers layout), extended with LoRA.

This is a copy of the PyTorch reference llava_ref.py (not part of this repository) with one command added, `lora`: LLaVA's `--lora_enable True`
fine-tuning following PEFT's definition of a LoRA Linear (peft/tuners/lora/layer.py): the frozen layer's output plus
lora_B(lora_A(dropout(x))) * lora_alpha / r, lora_A initialised kaiming_uniform_(a=sqrt(5)), lora_B zero, bias "none".
Adapters go on the LLM's q/k/v/o/gate/up/down projections (module paths language_model.model.layers.N...), never in
the vision tower; the projector trains fully with its own learning rate (LLaVA's --mm_projector_lr); everything else
is frozen.

It mirrors transformers' CLIPVisionModel + LlavaMultiModalProjector + LlamaForCausalLM, names its weights the way
transformers' LlavaForConditionalGeneration saves them, and writes:
  make   : a model folder (config.json, model.safetensors) with seeded random weights
  expect : for a case (pixel values + input ids + labels) the logits, the loss, the projector's gradients with the
           language model and the vision tower frozen, and the projector after K AdamW steps
  bench  : time of one training step (stage pretrain or finetune) and peak RSS, PyTorch eager on this CPU

Runs on Debian's python3-torch (1.13); numpy is used to read and write safetensors.
"""
import argparse, json, math, os, resource, struct, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

IGNORE_INDEX = -100

# ----------------------------------------------------------------------------------------------- safetensors

_DT = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32, "F64": np.float64}
_DT_R = {np.dtype(v): k for k, v in _DT.items()}


def save_safetensors(path, tensors, metadata=None):
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        b = a.tobytes()
        header[name] = {"dtype": _DT_R[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, d in header.items():
        if name == "__metadata__":
            continue
        b, e = d["data_offsets"]
        out[name] = np.frombuffer(data[b:e], dtype=_DT[d["dtype"]]).reshape(d["shape"]).copy()
    return out


# ----------------------------------------------------------------------------------------------- model

class CLIPVisionEmbeddings(nn.Module):
    def __init__(s, c):
        super().__init__()
        h = c["hidden_size"]
        s.class_embedding = nn.Parameter(torch.randn(h))
        s.patch_embedding = nn.Conv2d(c["num_channels"], h, c["patch_size"], c["patch_size"], bias=False)
        n = (c["image_size"] // c["patch_size"]) ** 2 + 1
        s.position_embedding = nn.Embedding(n, h)
        s.register_buffer("position_ids", torch.arange(n)[None], persistent=False)

    def forward(s, px):
        p = s.patch_embedding(px).flatten(2).transpose(1, 2)
        cls = s.class_embedding.expand(px.shape[0], 1, -1)
        return torch.cat([cls, p], 1) + s.position_embedding(s.position_ids)


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


ACT = {"quick_gelu": quick_gelu, "gelu": lambda x: F.gelu(x), "silu": F.silu, "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh")}


class CLIPAttention(nn.Module):
    def __init__(s, c):
        super().__init__()
        h = c["hidden_size"]
        s.nh, s.hd = c["num_attention_heads"], h // c["num_attention_heads"]
        s.q_proj, s.k_proj, s.v_proj, s.out_proj = (nn.Linear(h, h) for _ in range(4))

    def forward(s, x):
        b, t, h = x.shape
        q, k, v = (p(x).view(b, t, s.nh, s.hd).transpose(1, 2) for p in (s.q_proj, s.k_proj, s.v_proj))
        a = torch.softmax((q @ k.transpose(-1, -2)) * s.hd ** -0.5, -1) @ v
        return s.out_proj(a.transpose(1, 2).reshape(b, t, h))


class CLIPMLP(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.act = ACT[c.get("hidden_act", "quick_gelu")]
        s.fc1 = nn.Linear(c["hidden_size"], c["intermediate_size"])
        s.fc2 = nn.Linear(c["intermediate_size"], c["hidden_size"])

    def forward(s, x):
        return s.fc2(s.act(s.fc1(x)))


class CLIPEncoderLayer(nn.Module):
    def __init__(s, c):
        super().__init__()
        eps = c.get("layer_norm_eps", 1e-5)
        s.self_attn, s.mlp = CLIPAttention(c), CLIPMLP(c)
        s.layer_norm1 = nn.LayerNorm(c["hidden_size"], eps=eps)
        s.layer_norm2 = nn.LayerNorm(c["hidden_size"], eps=eps)

    def forward(s, x):
        x = x + s.self_attn(s.layer_norm1(x))
        return x + s.mlp(s.layer_norm2(x))


class CLIPEncoder(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.layers = nn.ModuleList(CLIPEncoderLayer(c) for _ in range(c["num_hidden_layers"]))


class CLIPVisionTransformer(nn.Module):
    def __init__(s, c):
        super().__init__()
        eps = c.get("layer_norm_eps", 1e-5)
        s.embeddings = CLIPVisionEmbeddings(c)
        s.pre_layrnorm = nn.LayerNorm(c["hidden_size"], eps=eps)
        s.encoder = CLIPEncoder(c)
        s.post_layernorm = nn.LayerNorm(c["hidden_size"], eps=eps)

    def hidden_states(s, px):
        x = s.pre_layrnorm(s.embeddings(px))
        hs = [x]
        for layer in s.encoder.layers:
            x = layer(x)
            hs.append(x)
        return hs


class CLIPVisionModel(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.vision_model = CLIPVisionTransformer(c)


class LlavaMultiModalProjector(nn.Module):
    def __init__(s, vh, th, act):
        super().__init__()
        s.linear_1, s.linear_2, s.act = nn.Linear(vh, th), nn.Linear(th, th), ACT[act]

    def forward(s, x):
        return s.linear_2(s.act(s.linear_1(x)))


class LlamaRMSNorm(nn.Module):
    def __init__(s, h, eps):
        super().__init__()
        s.weight, s.eps = nn.Parameter(torch.ones(h)), eps

    def forward(s, x):
        return s.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + s.eps))


def rotate_half(x):
    x1, x2 = x.chunk(2, -1)
    return torch.cat([-x2, x1], -1)


class LlamaAttention(nn.Module):
    def __init__(s, c):
        super().__init__()
        h = c["hidden_size"]
        s.nh, s.nkv = c["num_attention_heads"], c.get("num_key_value_heads", c["num_attention_heads"])
        s.hd = c.get("head_dim", h // s.nh)
        s.theta = c.get("rope_theta", 10000.0)
        s.q_proj = nn.Linear(h, s.nh * s.hd, bias=False)
        s.k_proj = nn.Linear(h, s.nkv * s.hd, bias=False)
        s.v_proj = nn.Linear(h, s.nkv * s.hd, bias=False)
        s.o_proj = nn.Linear(s.nh * s.hd, h, bias=False)

    def forward(s, x, pos):
        b, t, _ = x.shape
        q = s.q_proj(x).view(b, t, s.nh, s.hd).transpose(1, 2)
        k = s.k_proj(x).view(b, t, s.nkv, s.hd).transpose(1, 2)
        v = s.v_proj(x).view(b, t, s.nkv, s.hd).transpose(1, 2)
        inv = 1.0 / (s.theta ** (torch.arange(0, s.hd, 2, dtype=torch.float32) / s.hd))
        fr = pos[:, None].float() * inv[None]
        emb = torch.cat([fr, fr], -1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        rep = s.nh // s.nkv
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        sc = (q @ k.transpose(-1, -2)) / math.sqrt(s.hd)
        mask = torch.full((t, t), float("-inf")).triu(1)
        a = torch.softmax(sc + mask, -1) @ v
        return s.o_proj(a.transpose(1, 2).reshape(b, t, s.nh * s.hd))


class LlamaMLP(nn.Module):
    def __init__(s, c):
        super().__init__()
        h, i = c["hidden_size"], c["intermediate_size"]
        s.gate_proj, s.up_proj = nn.Linear(h, i, bias=False), nn.Linear(h, i, bias=False)
        s.down_proj = nn.Linear(i, h, bias=False)

    def forward(s, x):
        return s.down_proj(F.silu(s.gate_proj(x)) * s.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(s, c):
        super().__init__()
        eps = c.get("rms_norm_eps", 1e-6)
        s.self_attn, s.mlp = LlamaAttention(c), LlamaMLP(c)
        s.input_layernorm = LlamaRMSNorm(c["hidden_size"], eps)
        s.post_attention_layernorm = LlamaRMSNorm(c["hidden_size"], eps)

    def forward(s, x, pos):
        x = x + s.self_attn(s.input_layernorm(x), pos)
        return x + s.mlp(s.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        s.layers = nn.ModuleList(LlamaDecoderLayer(c) for _ in range(c["num_hidden_layers"]))
        s.norm = LlamaRMSNorm(c["hidden_size"], c.get("rms_norm_eps", 1e-6))

    def forward(s, emb):
        pos = torch.arange(emb.shape[1])
        x = emb
        for layer in s.layers:
            x = layer(x, pos)
        return s.norm(x)


class LlamaForCausalLM(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.model = LlamaModel(c)
        s.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)


class Llava(nn.Module):
    def __init__(s, cfg):
        super().__init__()
        s.cfg = cfg
        vc, tc = cfg["vision_config"], cfg["text_config"]
        s.vision_tower = CLIPVisionModel(vc)
        s.multi_modal_projector = LlavaMultiModalProjector(vc["hidden_size"], tc["hidden_size"], cfg.get("projector_hidden_act", "gelu"))
        s.language_model = LlamaForCausalLM(tc)

    def image_features(s, px):
        hs = s.vision_tower.vision_model.hidden_states(px)
        f = hs[s.cfg.get("vision_feature_layer", -2)]
        if s.cfg.get("vision_feature_select_strategy", "default") == "default":
            f = f[:, 1:]
        return s.multi_modal_projector(f)

    def merge(s, input_ids, feats, labels=None):
        """Expands each image token (image_token_index) of input_ids into that image's feature rows."""
        emb_tab = s.language_model.model.embed_tokens
        itok = s.cfg["image_token_index"]
        rows, lab, img = [], [], 0
        for i, tok in enumerate(input_ids.tolist()):
            if tok == itok:
                rows.append(feats[img])
                lab += [IGNORE_INDEX] * feats.shape[1]
                img += 1
            else:
                rows.append(emb_tab(torch.tensor([tok])))
                lab.append(labels[i] if labels is not None else IGNORE_INDEX)
        return torch.cat(rows, 0)[None], torch.tensor(lab)[None]

    def forward(s, px, input_ids, labels):
        feats = s.image_features(px)
        emb, lab = s.merge(input_ids, feats, labels)
        h = s.language_model.model(emb)
        logits = s.language_model.lm_head(h)
        loss = F.cross_entropy(logits[0, :-1], lab[0, 1:], ignore_index=IGNORE_INDEX)
        return logits, loss


# ----------------------------------------------------------------------------------------------- configs

CONFIGS = {
    "tiny": dict(
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, image_size=16, patch_size=4, num_channels=3, hidden_act="quick_gelu", layer_norm_eps=1e-5),
        text=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4, vocab_size=1024, rms_norm_eps=1e-6, rope_theta=10000.0, max_position_embeddings=256),
        image_token_index=1023, vision_feature_layer=-2, strategy="default"),
    # for timing: a small but not toy LLaVA (~ CLIP-S/16 at 224 px + a 12-layer 768-wide LLaMA)
    "bench": dict(
        vision=dict(hidden_size=384, intermediate_size=1536, num_hidden_layers=12, num_attention_heads=6, image_size=224, patch_size=16, num_channels=3, hidden_act="quick_gelu", layer_norm_eps=1e-5),
        text=dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=12, vocab_size=32000, rms_norm_eps=1e-6, rope_theta=10000.0, max_position_embeddings=2048),
        image_token_index=31999, vision_feature_layer=-2, strategy="default"),
}


def hf_config(name):
    c = CONFIGS[name]
    return {
        "architectures": ["LlavaForConditionalGeneration"], "model_type": "llava",
        "image_token_index": c["image_token_index"], "projector_hidden_act": "gelu",
        "vision_feature_layer": c["vision_feature_layer"], "vision_feature_select_strategy": c["strategy"],
        "vision_config": dict(model_type="clip_vision_model", **c["vision"]),
        "text_config": dict(model_type="llama", hidden_act="silu", tie_word_embeddings=False, **c["text"]),
        "torch_dtype": "float32",
    }


def build(name, seed):
    torch.manual_seed(seed)
    cfg = hf_config(name)
    m = Llava(cfg)
    with torch.no_grad():  # spread the weights so that every part matters for the output
        for n, p in m.named_parameters():
            if n.endswith("norm.weight") or "layernorm" in n.split(".")[-2] or "layer_norm" in n:
                p.copy_(1.0 + 0.1 * torch.randn_like(p)) if n.endswith("weight") else p.copy_(0.05 * torch.randn_like(p))
            elif p.dim() >= 2:
                p.copy_(torch.randn_like(p) * (1.0 / math.sqrt(p.shape[1] if p.dim() == 2 else p[0].numel())))
            else:
                p.copy_(0.05 * torch.randn_like(p))
    return m


def state_to_numpy(m):
    return {k: v.detach().numpy().astype(np.float32) for k, v in m.state_dict().items() if "position_ids" not in k}


def load_model(folder):
    cfg = json.load(open(os.path.join(folder, "config.json")))
    m = Llava(cfg)
    sd = {k: torch.from_numpy(v) for k, v in load_safetensors(os.path.join(folder, "model.safetensors")).items()}
    missing, unexpected = m.load_state_dict(sd, strict=False)
    missing = [k for k in missing if "position_ids" not in k]
    assert not missing and not unexpected, (missing, unexpected)
    return m


# ----------------------------------------------------------------------------------------------- commands

def cmd_make(a):
    os.makedirs(a.out, exist_ok=True)
    m = build(a.config, a.seed)
    json.dump(m.cfg, open(os.path.join(a.out, "config.json"), "w"), indent=2)
    save_safetensors(os.path.join(a.out, "model.safetensors"), state_to_numpy(m), {"format": "pt"})
    print(f"wrote {a.out}: {sum(p.numel() for p in m.parameters())} parameters")


def make_case(cfg, seed, prompt_len=5, answer_len=6):
    g = torch.Generator().manual_seed(seed)
    vc, tc = cfg["vision_config"], cfg["text_config"]
    px = torch.randn(1, 3, vc["image_size"], vc["image_size"], generator=g)
    itok = cfg["image_token_index"]
    ids = torch.randint(3, itok, (prompt_len + answer_len,), generator=g)
    # layout: <bos> prompt[:2] <image> prompt[2:] answer </s>
    input_ids = [1] + ids[:2].tolist() + [itok] + ids[2:prompt_len].tolist() + ids[prompt_len:].tolist() + [2]
    labels = [IGNORE_INDEX] * (1 + prompt_len + 1) + ids[prompt_len:].tolist() + [2]
    return px, torch.tensor(input_ids), labels


def cmd_expect(a):
    m = load_model(a.model)
    px, input_ids, labels = make_case(m.cfg, a.seed)
    for n, p in m.named_parameters():  # stage 1: only the projector trains
        p.requires_grad_(n.startswith("multi_modal_projector."))
    logits, loss = m(px, input_ids, labels)
    loss.backward()
    out = {
        "case.pixel_values": px.numpy(), "case.input_ids": input_ids.numpy().astype(np.int64),
        "case.labels": np.array(labels, dtype=np.int64),
        "logits": logits.detach().numpy()[0], "loss": np.array([loss.item()], dtype=np.float32),
    }
    for n, p in m.named_parameters():
        if p.requires_grad:
            out["grad." + n] = p.grad.numpy().copy()
        else:
            assert p.grad is None
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    opt.step()
    for _ in range(a.steps - 1):
        opt.zero_grad()
        _, l = m(px, input_ids, labels)
        l.backward()
        opt.step()
    for n, p in m.named_parameters():
        if p.requires_grad:
            out[f"after{a.steps}." + n] = p.detach().numpy().copy()
    save_safetensors(a.out, out, {"lr": str(a.lr), "steps": str(a.steps), "seed": str(a.seed)})
    print(f"wrote {a.out}: loss={loss.item():.6f} tokens={logits.shape[1]}")


def cmd_bench(a):
    torch.set_num_threads(a.threads)
    m = build("bench", 0)
    cfg = m.cfg
    trainable = {"pretrain": ("multi_modal_projector.",), "finetune": ("multi_modal_projector.", "language_model.")}[a.stage]
    for n, p in m.named_parameters():
        p.requires_grad_(n.startswith(trainable))
    g = torch.Generator().manual_seed(1)
    px = torch.randn(a.batch, 3, 224, 224, generator=g)
    text = 32
    itok = cfg["image_token_index"]
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0, foreach=a.foreach)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            return step_inner()

    def step_inner():
        opt.zero_grad(set_to_none=True)
        feats = m.image_features(px)
        embs, labs = [], []
        for b in range(a.batch):
            ids = torch.randint(3, itok, (text,), generator=g)
            # as HF's LlavaForConditionalGeneration does it: one embedding lookup for the text, image rows put in place
            # of the image token (a per-token lookup would make the embedding's backward dense once per token)
            text_emb = m.language_model.model.embed_tokens(torch.cat([torch.tensor([1]), ids]))
            emb = torch.cat([text_emb[:1], feats[b], text_emb[1:]])[None]
            lab = torch.tensor([IGNORE_INDEX] * (1 + feats.shape[1]) + ids.tolist())[None]
            embs.append(emb)
            labs.append(lab)
        emb, lab = torch.cat(embs), torch.cat(labs)
        logits = m.language_model.lm_head(m.language_model.model(emb))
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), lab[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(a.warmup):
        step()
    ts = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n_img = (224 // 16) ** 2
    print(json.dumps({"engine": f"pytorch-{torch.__version__}", "bf16": a.bf16, "stage": a.stage, "batch": a.batch, "threads": a.threads,
                      "step_s_median": ts[len(ts) // 2], "step_s_min": ts[0], "tokens_per_step": a.batch * (n_img + 1 + text),
                      "trainable_params": sum(p.numel() for p in params), "peak_rss_mb": round(rss)}))


# ----------------------------------------------------------------------------------------------- data (LLaVA semantics)

SYSTEM_V1 = ("A chat between a curious user and an artificial intelligence assistant. "
             "The assistant gives helpful, detailed, and polite answers to the user's questions.")

DATASETS = {
    "tiny": dict(seed=7, mean=[0.48145466, 0.4578275, 0.40821073], std=[0.26862954, 0.26130258, 0.27577711],
                 captions=["a red circle above a blue square", "two green triangles on a white background"],
                 turns=[[("What shape is on top?", "a red circle"), ("And below it?", "a blue square")],
                        [("How many triangles are there?", "two green triangles")]]),
}


def words_of(ds):
    import re
    ws = set()
    texts = list(ds["captions"]) + [SYSTEM_V1, "USER:", "ASSISTANT:"]
    for conv in ds["turns"]:
        for q, ans in conv:
            texts += [q, ans]
    for t in texts:
        ws.update(t.split())
    bare = {"^" + conv[0][0].split()[0] for conv in ds["turns"]}  # first word of a question follows "<image>\n"
    return sorted(ws) + sorted(bare)


def cmd_data(a):
    import toy_tokenizer as tt
    from PIL import Image
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    ds = DATASETS[a.dataset]
    itok = cfg["image_token_index"]
    tok = tt.build(words_of(ds), image_token=True, vocab_size=itok + 1)
    assert tok["model"]["vocab"]["<image>"] == itok
    json.dump(tok, open(os.path.join(a.model, "tokenizer.json"), "w"), ensure_ascii=False, indent=1)
    json.dump(tt.tokenizer_config(True), open(os.path.join(a.model, "tokenizer_config.json"), "w"), indent=2)
    size = cfg["vision_config"]["image_size"]
    json.dump({"crop_size": {"height": size, "width": size}, "do_center_crop": True, "do_convert_rgb": True, "do_normalize": True,
               "do_rescale": True, "do_resize": True, "image_mean": ds["mean"], "image_std": ds["std"],
               "image_processor_type": "CLIPImageProcessor", "resample": 3, "rescale_factor": 1 / 255,
               "size": {"shortest_edge": size}}, open(os.path.join(a.model, "preprocessor_config.json"), "w"), indent=2)
    os.makedirs(os.path.join(a.out, "images"), exist_ok=True)
    rng = np.random.default_rng(ds["seed"])
    plain, v1 = [], []
    for i, (cap, turns) in enumerate(zip(ds["captions"], ds["turns"])):
        name = f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(os.path.join(a.out, "images", name))
        plain.append({"id": f"p{i}", "image": name, "conversations": [
            {"from": "human", "value": "Render a clear and concise summary of the photo.\n<image>" if i % 2 else "<image>\nDescribe the image briefly."},
            {"from": "gpt", "value": cap}]})
        conv = []
        for j, (q, ans) in enumerate(turns):
            conv += [{"from": "human", "value": ("<image>\n" + q) if j == 0 else q}, {"from": "gpt", "value": ans}]
        v1.append({"id": f"v{i}", "image": name, "conversations": conv})
    json.dump(plain, open(os.path.join(a.out, "pretrain.json"), "w"), indent=1)
    json.dump(v1, open(os.path.join(a.out, "finetune.json"), "w"), indent=1)
    print(f"wrote tokenizer ({len(tok['model']['vocab'])} entries) into {a.model}, data into {a.out}")


def load_image(path, pp):
    """CLIP preprocessing for an image already at the processor's size: RGB, rescale, normalize (resize and crop are identity)."""
    from PIL import Image
    img = Image.open(path).convert("RGB")
    size = pp["crop_size"]["height"]
    assert img.size == (size, size), "the reference only covers images already at the processor's size"
    x = np.asarray(img, dtype=np.float64) * pp["rescale_factor"]
    x = (x - np.array(pp["image_mean"])) / np.array(pp["image_std"])
    return torch.from_numpy(x.transpose(2, 0, 1).astype(np.float32))[None]


def image_token_ids(enc, prompt, itok):
    """LLaVA's tokenizer_image_token: one BOS, one image token per '<image>'."""
    chunks = [enc.encode(c) for c in prompt.split("<image>")]
    ids = [chunks[0][0]]
    for k, c in enumerate(chunks):
        if k:
            ids.append(itok)
        ids.extend(c[1:])
    return ids


def move_image_first(conv):
    out = []
    for s in conv:
        v = s["value"]
        if "<image>" in v:
            v = ("<image>\n" + v.replace("<image>", "").strip()).strip()
        out.append({"from": s["from"], "value": v})
    return out


def preprocess(rec, version, enc, itok):
    conv = move_image_first(rec["conversations"])
    if version == "plain":
        text = "<image>" + conv[1]["value"] + "\n"
        ids = image_token_ids(enc, text, itok)
        return ids, [IGNORE_INDEX] * 2 + ids[2:]
    prompt = SYSTEM_V1 + " "
    for i, s in enumerate(conv):
        role = "USER" if s["from"] == "human" else "ASSISTANT"
        prompt += role + ": " + s["value"] + (" " if i % 2 == 0 else "</s>")
    ids = image_token_ids(enc, prompt, itok)
    labels = list(ids)
    sep = " ASSISTANT: "
    cur = 1
    labels[0] = IGNORE_INDEX
    for rou in prompt.split("</s>"):
        if rou == "":
            break
        parts = rou.split(sep)
        assert len(parts) == 2
        parts[0] += sep
        rlen = len(image_token_ids(enc, rou, itok))
        ilen = len(image_token_ids(enc, parts[0], itok)) - 2
        labels[cur:cur + ilen] = [IGNORE_INDEX] * ilen
        cur += rlen
    labels[cur:] = [IGNORE_INDEX] * (len(labels) - cur)
    assert cur == len(ids), ("tokenization mismatch", cur, len(ids))
    return ids, labels


PROJ_KEYS = {"multi_modal_projector.linear_1.weight": "model.mm_projector.0.weight", "multi_modal_projector.linear_1.bias": "model.mm_projector.0.bias",
             "multi_modal_projector.linear_2.weight": "model.mm_projector.2.weight", "multi_modal_projector.linear_2.bias": "model.mm_projector.2.bias"}


def cmd_train(a):
    import toy_tokenizer as tt
    if a.float64:
        torch.set_default_dtype(torch.float64)
    m = load_model(a.model)
    if a.float64:
        m = m.double()
    cfg = m.cfg
    enc = tt.Encoder(json.load(open(os.path.join(a.model, "tokenizer.json"))))
    pp = json.load(open(os.path.join(a.model, "preprocessor_config.json")))
    data = json.load(open(a.data))
    if a.pretrain_mm_mlp_adapter:
        w = load_safetensors(a.pretrain_mm_mlp_adapter)
        sd = m.state_dict()
        with torch.no_grad():
            for hf, orig in PROJ_KEYS.items():
                sd[hf].copy_(torch.from_numpy(w[orig]))
    train_prefix = ("multi_modal_projector.",) if a.stage == "pretrain" else ("multi_modal_projector.", "language_model.")
    for n, p in m.named_parameters():
        p.requires_grad_(n.startswith(train_prefix))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    samples = []
    for rec in data:
        ids, labels = preprocess(rec, a.version, enc, cfg["image_token_index"])
        px = load_image(os.path.join(a.image_folder, rec["image"]), pp).to(torch.get_default_dtype())
        samples.append((px, torch.tensor(ids), labels))
    # LLaVA's optimizer groups (LLaVATrainer.create_optimizer with transformers 4.37): no weight decay on biases and on
    # LayerNorm / LlamaRMSNorm weights; everything else decays.
    named = [(n, p) for n, p in m.named_parameters() if p.requires_grad]
    no_decay = lambda n: n.endswith(".bias") or "norm" in n.split(".")[-2] or "layer_norm" in n or "layernorm" in n
    groups = [{"params": [p for n, p in named if not no_decay(n)], "weight_decay": a.weight_decay},
              {"params": [p for n, p in named if no_decay(n)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    total_steps, warm = a.steps, a.warmup_steps
    def factor(step):  # transformers' get_constant_schedule / get_cosine_schedule_with_warmup
        if a.lr_scheduler_type == "constant":
            return 1.0
        if step < warm:
            return step / max(1, warm)
        progress = (step - warm) / max(1, total_steps - warm)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    # one optimizer step = the samples in order, in micro-batches of a.micro_batch, each micro-batch's mean token loss
    # divided by the number of micro-batches (HF Trainer 4.37 gradient accumulation); one micro-batch = the whole set by default
    mb = a.micro_batch or len(samples)
    chunks = [samples[i:i + mb] for i in range(0, len(samples), mb)]
    losses, gnorms = [], []
    for step in range(a.steps):
        opt.zero_grad()
        step_loss = 0.0
        for chunk in chunks:
            total, count = 0.0, 0
            for px, ids, labels in chunk:
                feats = m.image_features(px)
                emb, lab = m.merge(ids, feats, labels)
                logits = m.language_model.lm_head(m.language_model.model(emb))
                total = total + F.cross_entropy(logits[0, :-1], lab[0, 1:], ignore_index=IGNORE_INDEX, reduction="sum")
                count += int((lab[0, 1:] != IGNORE_INDEX).sum())
            loss = total / count
            (loss / len(chunks)).backward()
            step_loss += loss.item() / len(chunks)
        # the total gradient norm before clipping, as HF Trainer logs it (grad_norm)
        gnorms.append(float(torch.nn.utils.clip_grad_norm_([p for _, p in named], a.max_grad_norm if a.max_grad_norm > 0 else float("inf"))))
        opt.step()
        sched.step()
        losses.append(step_loss)
    os.makedirs(a.out, exist_ok=True)
    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in m.state_dict().items() if "position_ids" not in k}
    for k in sd:  # frozen tensors must come out bit-identical
        if not k.startswith(train_prefix):
            assert torch.equal(before[k], m.state_dict()[k]), k
    save_safetensors(os.path.join(a.out, "mm_projector.safetensors"), {orig: sd[hf] for hf, orig in PROJ_KEYS.items()})
    if a.stage == "finetune":
        save_safetensors(os.path.join(a.out, "model.safetensors"), sd, {"format": "pt"})
    ex = [{"input_ids": ids.tolist(), "labels": labels} for _, ids, labels in samples]
    json.dump({"losses": losses, "grad_norms": gnorms, "samples": ex}, open(os.path.join(a.out, "reference.json"), "w"))
    print(f"{a.stage}: losses {['%.6f' % x for x in losses]} -> {a.out}")


# ----------------------------------------------------------------------------------------------- LoRA (PEFT's definition)

class LoraLinear(nn.Module):
    """peft.tuners.lora.layer.Linear with one adapter, bias none, no DoRA / rsLoRA / fan_in_fan_out."""
    def __init__(s, base, r, alpha, dropout):
        super().__init__()
        s.base_layer = base
        s.lora_A = nn.Linear(base.in_features, r, bias=False)
        s.lora_B = nn.Linear(r, base.out_features, bias=False)
        nn.init.kaiming_uniform_(s.lora_A.weight, a=math.sqrt(5))  # PEFT's reset_lora_parameters (init_lora_weights=True)
        nn.init.zeros_(s.lora_B.weight)
        s.lora_dropout = nn.Dropout(p=dropout) if dropout > 0 else nn.Identity()
        s.scaling = alpha / r

    def forward(s, x):
        return s.base_layer(x) + s.lora_B(s.lora_A(s.lora_dropout(x))) * s.scaling


LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def add_lora(m, r, alpha, dropout):
    """Wraps the LLM's targeted projections (by module path) and returns their paths."""
    paths = []
    for li, layer in enumerate(m.language_model.model.layers):
        for parent_name, parent in (("self_attn", layer.self_attn), ("mlp", layer.mlp)):
            for t in LORA_TARGETS:
                if hasattr(parent, t):
                    setattr(parent, t, LoraLinear(getattr(parent, t), r, alpha, dropout))
                    paths.append(f"language_model.model.layers.{li}.{parent_name}.{t}")
    return paths


def peft_state(m):
    """The adapters as PEFT saves them: base_model.model.<module path>.lora_{A,B}.weight."""
    return {"base_model.model." + k: v.detach().numpy().astype(np.float32).copy()
            for k, v in m.named_parameters() if ".lora_A." in k or ".lora_B." in k}


def cmd_lora(a):
    import toy_tokenizer as tt
    m = load_model(a.model)
    cfg = m.cfg
    torch.manual_seed(a.seed)
    paths = add_lora(m, a.lora_r, a.lora_alpha, a.lora_dropout)
    enc = tt.Encoder(json.load(open(os.path.join(a.model, "tokenizer.json"))))
    pp = json.load(open(os.path.join(a.model, "preprocessor_config.json")))
    data = json.load(open(a.data))
    # PEFT freezes the base model; LLaVA's initialize_vision_modules re-enables the projector
    for n, p in m.named_parameters():
        p.requires_grad_(".lora_A." in n or ".lora_B." in n or n.startswith("multi_modal_projector."))
    os.makedirs(os.path.join(a.out, "init"), exist_ok=True)
    save_safetensors(os.path.join(a.out, "init", "adapter_model.safetensors"), peft_state(m), {"format": "pt"})
    json.dump({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": a.lora_r, "lora_alpha": a.lora_alpha,
               "lora_dropout": a.lora_dropout, "bias": "none", "target_modules": list(LORA_TARGETS)},
              open(os.path.join(a.out, "init", "adapter_config.json"), "w"))
    samples = []
    for rec in data:
        ids, labels = preprocess(rec, a.version, enc, cfg["image_token_index"])
        px = load_image(os.path.join(a.image_folder, rec["image"]), pp)
        samples.append((px, torch.tensor(ids), labels))
    # LLaVATrainer.create_optimizer with mm_projector_lr: the projector in groups of its own lr; weight decay 0 here
    named = [(n, p) for n, p in m.named_parameters() if p.requires_grad]
    proj = [p for n, p in named if n.startswith("multi_modal_projector.")]
    rest = [p for n, p in named if not n.startswith("multi_modal_projector.")]
    opt = torch.optim.AdamW([{"params": rest, "weight_decay": 0.0}, {"params": proj, "weight_decay": 0.0, "lr": a.mm_projector_lr}],
                            lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    losses = []
    for step in range(a.steps):
        opt.zero_grad()
        total, count = 0.0, 0
        for px, ids, labels in samples:  # one batch of all samples: the mean over its supervised tokens
            feats = m.image_features(px)
            emb, lab = m.merge(ids, feats, labels)
            logits = m.language_model.lm_head(m.language_model.model(emb))
            total = total + F.cross_entropy(logits[0, :-1], lab[0, 1:], ignore_index=IGNORE_INDEX, reduction="sum")
            count += int((lab[0, 1:] != IGNORE_INDEX).sum())
        loss = total / count
        loss.backward()
        opt.step()
        losses.append(loss.item())
    trainable = {n for n, p in named}
    for k, v in m.state_dict().items():  # frozen tensors must come out bit-identical
        if k not in trainable:
            assert torch.equal(before[k], v), k
    save_safetensors(os.path.join(a.out, "adapter_model.safetensors"), peft_state(m), {"format": "pt"})
    save_safetensors(os.path.join(a.out, "non_lora.safetensors"),
                     {"base_model.model." + n: p.detach().numpy().astype(np.float32).copy() for n, p in named if n.startswith("multi_modal_projector.")})
    json.dump({"losses": losses, "adapted": paths, "scaling": a.lora_alpha / a.lora_r}, open(os.path.join(a.out, "reference.json"), "w"), indent=1)
    print(f"lora: losses {['%.6f' % x for x in losses]} -> {a.out}")


def cmd_generate(a):
    """Greedy decoding without a cache (a full forward per new token), LLaVA run_llava's prompt: the vicuna_v1 system
    prompt, 'USER: <image>\\n' + question, ' ASSISTANT:'. Records each step's top-2 logit margin."""
    import toy_tokenizer as tt
    m = load_model(a.model)
    cfg = m.cfg
    enc = tt.Encoder(json.load(open(os.path.join(a.model, "tokenizer.json"))))
    pp = json.load(open(os.path.join(a.model, "preprocessor_config.json")))
    itok = cfg["image_token_index"]
    prompt = SYSTEM_V1 + " USER: <image>\n" + a.prompt + " ASSISTANT:"
    ids = image_token_ids(enc, prompt, itok)
    px = load_image(a.image, pp)
    out, margins = [], []
    with torch.no_grad():
        feats = m.image_features(px)
        for _ in range(a.max_new_tokens):
            emb, _ = m.merge(torch.tensor(ids + out), feats, None)
            logits = m.language_model.lm_head(m.language_model.model(emb))[0, -1]
            top = torch.topk(logits, 2)
            out.append(int(top.indices[0]))
            margins.append(float(top.values[0] - top.values[1]))
    json.dump({"prompt_ids": ids, "tokens": out, "margins": margins}, open(a.out, "w"))
    print(f"generated {out} (smallest top-2 margin {min(margins):.2e}) -> {a.out}")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("make"); p.add_argument("--config", default="tiny"); p.add_argument("--seed", type=int, default=0); p.add_argument("--out", required=True)
    p = sub.add_parser("expect"); p.add_argument("--model", required=True); p.add_argument("--seed", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-2); p.add_argument("--steps", type=int, default=3); p.add_argument("--out", required=True)
    p = sub.add_parser("bench"); p.add_argument("--stage", default="pretrain"); p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=3); p.add_argument("--warmup", type=int, default=1); p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bf16", action="store_true", help="torch.autocast('cpu', bfloat16) around the forward, as --bf16 True trains")
    p.add_argument("--foreach", action="store_true", help="AdamW's multi-tensor (foreach) implementation")
    p = sub.add_parser("data"); p.add_argument("--model", required=True); p.add_argument("--dataset", default="tiny"); p.add_argument("--out", required=True)
    p = sub.add_parser("train"); p.add_argument("--model", required=True); p.add_argument("--data", required=True); p.add_argument("--image_folder", required=True)
    p.add_argument("--version", default="plain"); p.add_argument("--stage", default="pretrain"); p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--steps", type=int, default=3); p.add_argument("--pretrain_mm_mlp_adapter"); p.add_argument("--float64", action="store_true")
    p.add_argument("--weight_decay", type=float, default=0.0); p.add_argument("--max_grad_norm", type=float, default=0.0)
    p.add_argument("--micro_batch", type=int, default=0); p.add_argument("--lr_scheduler_type", default="constant", choices=["constant", "cosine"])
    p.add_argument("--warmup_steps", type=int, default=0)
    p.add_argument("--out", required=True)
    p = sub.add_parser("generate"); p.add_argument("--model", required=True); p.add_argument("--image", required=True)
    p.add_argument("--prompt", required=True); p.add_argument("--max_new_tokens", type=int, default=16); p.add_argument("--out", required=True)
    p = sub.add_parser("lora"); p.add_argument("--model", required=True); p.add_argument("--data", required=True); p.add_argument("--image_folder", required=True)
    p.add_argument("--version", default="v1"); p.add_argument("--lr", type=float, default=1e-2); p.add_argument("--mm_projector_lr", type=float, default=2e-3)
    p.add_argument("--steps", type=int, default=3); p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lora_r", type=int, default=4); p.add_argument("--lora_alpha", type=float, default=8.0); p.add_argument("--lora_dropout", type=float, default=0.0)
    p.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_default_dtype(torch.float32)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    {"make": cmd_make, "expect": cmd_expect, "bench": cmd_bench, "data": cmd_data, "train": cmd_train, "generate": cmd_generate, "lora": cmd_lora}[a.cmd](a)


if __name__ == "__main__":
    main()
