#!/usr/bin/python3
"""Second parity fixture: a tiny LLaVA with other shapes than ../reference/tiny-llava, made with llava_ref.py.

GQA (4 heads, 2 KV heads, head_dim 12), rope_theta 500000, gelu CLIP activation, vision feature layer 1 with the
'full' strategy (CLS kept), another image mean/std. Run from this folder:
  /usr/bin/python3 make_gqa.py REFERENCE_DIR   (the folder holding llava_ref.py; see CONTRIBUTING.md)
"""
import json, os, subprocess, sys

ref = os.path.abspath(sys.argv[1])
sys.path.insert(0, ref)
import llava_ref as R

R.CONFIGS["gqa"] = dict(
    vision=dict(hidden_size=24, intermediate_size=40, num_hidden_layers=2, num_attention_heads=2, image_size=16, patch_size=8,
                num_channels=3, hidden_act="gelu", layer_norm_eps=1e-6),
    text=dict(hidden_size=48, intermediate_size=80, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=1024,
              rms_norm_eps=1e-5, rope_theta=500000.0, max_position_embeddings=256),
    image_token_index=1023, vision_feature_layer=1, strategy="full")
R.DATASETS["tiny"]["mean"] = [0.5, 0.45, 0.4]
R.DATASETS["tiny"]["std"] = [0.25, 0.3, 0.2]
R.DATASETS["tiny"]["seed"] = 11

here = os.path.dirname(os.path.abspath(__file__))
model, data, exp = (os.path.join(here, d) for d in ("model", "data", "expected"))
os.makedirs(exp, exist_ok=True)
for argv in (["make", "--config", "gqa", "--seed", "5", "--out", model],
             ["data", "--model", model, "--out", data],
             ["expect", "--model", model, "--seed", "3", "--out", os.path.join(exp, "forward-and-grads.safetensors")],
             ["train", "--model", model, "--data", os.path.join(data, "pretrain.json"), "--image_folder", os.path.join(data, "images"),
              "--version", "plain", "--stage", "pretrain", "--steps", "2", "--out", os.path.join(exp, "stage1")]):
    sys.argv = ["llava_ref.py"] + argv
    R.main()
