#!/usr/bin/python3
"""The tiny reference LLaVA as original LLaVA ships checkpoints: torch.save shards (pytorch_model-0000k-of-00002.bin +
pytorch_model.bin.index.json, keys model.* / lm_head / model.mm_projector.{0,2}) and a CLIP folder with
pytorch_model.bin (vision_model.*). Run: /usr/bin/python3 make_original_bin.py ../reference/tiny-llava"""
import json, os, shutil, struct, sys
from collections import OrderedDict
import numpy as np, torch

src = sys.argv[1]
with open(os.path.join(src, "model.safetensors"), "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n)); data = f.read()
sd = {k: torch.from_numpy(np.frombuffer(data[d["data_offsets"][0]:d["data_offsets"][1]], dtype=np.float32).reshape(d["shape"]).copy())
      for k, d in h.items() if k != "__metadata__"}
cfg = json.load(open(os.path.join(src, "config.json")))
proj = {"multi_modal_projector.linear_1.": "model.mm_projector.0.", "multi_modal_projector.linear_2.": "model.mm_projector.2."}
llm, clip = OrderedDict(), OrderedDict()
for k, v in sd.items():
    if k.startswith("vision_tower."):
        clip[k[len("vision_tower."):]] = v
    elif k.startswith("language_model.lm_head."):
        llm["lm_head." + k[len("language_model.lm_head."):]] = v
    elif k.startswith("language_model.model."):
        llm["model." + k[len("language_model.model."):]] = v
    else:
        for a, b in proj.items():
            if k.startswith(a):
                llm[b + k[len(a):]] = v
keys = list(llm)
shards = [OrderedDict((k, llm[k]) for k in keys[: len(keys) // 2]), OrderedDict((k, llm[k]) for k in keys[len(keys) // 2:])]
wm = {}
for i, s in enumerate(shards):
    name = f"pytorch_model-{i + 1:05d}-of-00002.bin"
    torch.save(s, name)
    wm.update({k: name for k in s})
json.dump({"metadata": {"total_size": sum(v.numel() * 4 for v in llm.values())}, "weight_map": wm}, open("pytorch_model.bin.index.json", "w"), indent=1)
text = dict(cfg["text_config"]); text.update(model_type="llava_llama", architectures=["LlavaLlamaForCausalLM"], mm_vision_tower="clip",
    mm_projector_type="mlp2x_gelu", mm_vision_select_layer=-2, mm_vision_select_feature="patch", mm_hidden_size=cfg["vision_config"]["hidden_size"],
    use_mm_proj=True, image_aspect_ratio="square")
json.dump(text, open("config.json", "w"), indent=1)
for f in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(os.path.join(src, f), f)
os.makedirs("clip", exist_ok=True)
torch.save(clip, "clip/pytorch_model.bin")
json.dump(cfg["vision_config"], open("clip/config.json", "w"), indent=1)
shutil.copy(os.path.join(src, "preprocessor_config.json"), "clip/preprocessor_config.json")
