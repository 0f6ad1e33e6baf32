#!/usr/bin/python3
"""LLaVA-style mm_projector.bin (torch.save of a dict, DeepSpeed 'module.' prefix) from the stage-1 reference projector.
Run: /usr/bin/python3 make_bin.py ../reference/expected/stage1/mm_projector.safetensors"""
import json, struct, sys
import numpy as np, torch
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n)); data = f.read()
sd = {}
for k, d in h.items():
    if k == "__metadata__": continue
    b, e = d["data_offsets"]
    sd["module." + k] = torch.from_numpy(np.frombuffer(data[b:e], dtype=np.float32).reshape(d["shape"]).copy())
torch.save(sd, "mm_projector.bin")
