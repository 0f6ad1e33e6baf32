#!/usr/bin/python3
"""PyTorch baseline for llava4j's decode benchmark: the same KV-cache greedy loop on the PyTorch reference llava_ref.py's
model (not part of this repository; see bench/README.md). The prompt is BOS + one image (its feature rows merged in) + 32 text ids; then new tokens one at a time against
cached keys/values, never stopping early. Reports time to first token (image encoding + prefill + first pick) and
decode tokens/s over the remaining tokens, median (and best) of --runs after --warmup.

  OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=2 /usr/bin/python3 bench/generate_ref.py --ref REF_DIR \\
      --model MODEL_DIR [--bf16]
"""
import argparse, json, math, os, resource, sys, time


def inputs(cfg):
    """Deterministic prompt ids and pixels, computed the same way by llava4j's DecodeBench."""
    itok = cfg["image_token_index"]
    text = [(i * 7919) % (itok - 3) + 3 for i in range(32)]
    size = cfg["vision_config"]["image_size"]
    n = 3 * size * size
    px = [math.sin(0.001 * i) for i in range(n)]
    return [1, itok] + text, px, size


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", required=True, help="folder of llava_ref.py")
    ap.add_argument("--model", required=True, help="model folder made by llava_ref.py make --config bench")
    ap.add_argument("--new_tokens", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16", action="store_true", help="torch.autocast('cpu', bfloat16), as llava4j --bf16 True")
    a = ap.parse_args()
    sys.path.insert(0, os.path.abspath(a.ref))
    import torch
    import llava_ref as R

    torch.set_num_threads(a.threads)
    m = R.load_model(a.model).eval()
    cfg = m.cfg
    tc = cfg["text_config"]
    lm = m.language_model
    nh, nkv = tc["num_attention_heads"], tc.get("num_key_value_heads", tc["num_attention_heads"])
    hd = tc.get("head_dim", tc["hidden_size"] // nh)
    inv = 1.0 / (tc.get("rope_theta", 10000.0) ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    ids, px, size = inputs(cfg)
    px = torch.tensor(px, dtype=torch.float32).view(1, 3, size, size)

    def rope(x, pos):  # x [B, n, T, hd], pos [T]
        fr = pos[:, None].float() * inv[None]
        emb = torch.cat([fr, fr], -1)
        return x * emb.cos() + R.rotate_half(x) * emb.sin()

    def step(x, cache, past):
        """x [1, T, h] at positions past..past+T-1; cache: per layer [k, v] of [1, nkv, capacity, hd]."""
        b, t, _ = x.shape
        pos = torch.arange(past, past + t)
        for layer, (kc, vc) in zip(lm.model.layers, cache):
            at = layer.self_attn
            y = layer.input_layernorm(x)
            q = rope(at.q_proj(y).view(b, t, nh, hd).transpose(1, 2), pos)
            kc[:, :, past:past + t] = rope(at.k_proj(y).view(b, t, nkv, hd).transpose(1, 2), pos)
            vc[:, :, past:past + t] = at.v_proj(y).view(b, t, nkv, hd).transpose(1, 2)
            k, v = kc[:, :, :past + t], vc[:, :, :past + t]
            # attention in fp32 with an fp32 cache, as llava4j runs it (autocast casts only the GEMMs of linear
            # layers); written out as HF's eager attention (Debian's torch 1.13 has no scaled_dot_product_attention)
            if nkv != nh:
                k, v = k.repeat_interleave(nh // nkv, 1), v.repeat_interleave(nh // nkv, 1)
            sc = (q.float() @ k.transpose(-1, -2)) / math.sqrt(hd)
            if t > 1:
                sc = sc + torch.full((t, past + t), float("-inf")).triu(past + 1)
            a = torch.softmax(sc, -1) @ v
            x = x + at.o_proj(a.transpose(1, 2).reshape(b, t, nh * hd))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return lm.lm_head(lm.model.norm(x[:, -1:]))[0, -1]

    def run():
        t0 = time.perf_counter()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            feats = m.image_features(px)
            emb, _ = m.merge(torch.tensor(ids), feats)
            length = emb.shape[1]
            cache = [[torch.zeros(1, nkv, length + a.new_tokens, hd) for _ in range(2)] for _ in lm.model.layers]
            out = [int(step(emb, cache, 0).float().argmax())]
            t1 = time.perf_counter()
            for i in range(a.new_tokens - 1):
                e = lm.model.embed_tokens(torch.tensor([[out[-1]]]))
                out.append(int(step(e, cache, length + i).float().argmax()))
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1, out, length

    for _ in range(a.warmup):
        run()
    res = [run() for _ in range(a.runs)]
    ttft = sorted(r[0] for r in res)[len(res) // 2]
    dec = sorted(r[1] for r in res)[len(res) // 2]
    print(json.dumps({"engine": f"pytorch-{torch.__version__}", "bf16": a.bf16, "threads": a.threads,
                      "prompt_positions": res[0][3], "new_tokens": a.new_tokens,
                      "time_to_first_token_s": round(ttft, 4), "decode_tokens_per_s": round((a.new_tokens - 1) / dec, 2),
                      "best_time_to_first_token_s": round(min(r[0] for r in res), 4),
                      "best_decode_tokens_per_s": round((a.new_tokens - 1) / min(r[1] for r in res), 2),
                      "first_tokens": res[0][2][:8],
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


if __name__ == "__main__":
    main()
