#!/usr/bin/python3
"""Generates the torch.save fixtures read by TorchPickleReaderTest (kept for reference; the outputs are committed).

Run from the repository root with Debian's PyTorch:  /usr/bin/python3 src/test/resources/io/make_pickle_fixtures.py
Writes into src/test/resources/io/:
  projector_f32.bin      plain dict of fp32 tensors, like LLaVA's mm_projector.bin
  projector_f16.bin      the same tensors in fp16
  state_dict_bf16.bin    nn.Sequential(...).state_dict() in bf16: an OrderedDict with a _metadata attribute (BUILD)
  views_and_params.bin   storage offsets, two tensors sharing one storage, int64/int32, a 0-dim tensor,
                         an empty tensor and an nn.Parameter (torch._utils._rebuild_parameter)
  noncontiguous.bin      a transposed (non-contiguous) tensor: must be refused
  whole_module.bin       torch.save(nn.Linear) (pickles the module class): must be refused
  malicious.bin          a dict holding an object whose __reduce__ is os.system: must be refused, nothing run
  expected.json          {fixture: {tensor: {"dtype", "shape", "values"}}} for the readable fixtures
"""
import json
import os

import torch

OUT = os.path.dirname(os.path.abspath(__file__))
MARKER = "llava4j_malicious_pickle_ran"  # relative: the working directory of whoever would run it

DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
          torch.int64: "I64", torch.int32: "I32", torch.float64: "F64"}


def describe(tensors):
    out = {}
    for name, t in tensors.items():
        out[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                     "values": [float(v) for v in t.detach().reshape(-1).to(torch.float64).tolist()]}
    return out


def save(name, obj):
    torch.save(obj, os.path.join(OUT, name))


class Evil:
    def __reduce__(self):
        return (os.system, ("touch " + MARKER,))


def main():
    torch.manual_seed(1234)
    expected = {}

    projector = {
        "model.mm_projector.0.weight": torch.randn(4, 3),
        "model.mm_projector.0.bias": torch.randn(4),
        "model.mm_projector.2.weight": torch.randn(4, 4),
        "model.mm_projector.2.bias": torch.randn(4),
    }
    save("projector_f32.bin", projector)
    expected["projector_f32.bin"] = describe(projector)

    projector16 = {k: v.half() for k, v in projector.items()}
    save("projector_f16.bin", projector16)
    expected["projector_f16.bin"] = describe(projector16)

    seq = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.GELU(), torch.nn.Linear(4, 2)).to(torch.bfloat16)
    sd = seq.state_dict()
    save("state_dict_bf16.bin", sd)
    expected["state_dict_bf16.bin"] = describe(sd)

    base = torch.arange(12, dtype=torch.float32) * 0.5
    views = {
        "offset_view": base[2:8].view(2, 3),         # storage_offset 2 into a 12-element storage
        "shared_tail": base[8:],                     # same storage, offset 8
        "ids": torch.tensor([[1, -2, 3], [2**40, 0, -(2**35)]], dtype=torch.int64),
        "counts": torch.tensor([7, -8, 9], dtype=torch.int32),
        "scalar": torch.tensor(3.25),
        "empty": torch.zeros(0, 3),
        "param": torch.nn.Parameter(torch.tensor([[0.5, -1.5]]), requires_grad=True),
        "doubles": torch.tensor([1.0 / 3.0, -2.5], dtype=torch.float64),
    }
    save("views_and_params.bin", views)
    expected["views_and_params.bin"] = describe(views)

    save("noncontiguous.bin", {"transposed": torch.randn(3, 4).t()})
    save("whole_module.bin", torch.nn.Linear(2, 2))
    save("malicious.bin", {"w": torch.ones(2), "evil": Evil()})

    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=False)
        f.write("\n")


if __name__ == "__main__":
    main()
