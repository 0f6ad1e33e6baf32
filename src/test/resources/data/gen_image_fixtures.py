#!/usr/bin/python3
"""Generates the image-processor fixtures of io.llava4j.data.ImageProcessorTest.

Run with Debian's Python (PIL 9.4, numpy): /usr/bin/python3 gen_image_fixtures.py (from this folder).
It writes small PNGs under images/ and image_cases.json holding, for each case, the CLIP preprocessing output computed
the way transformers' CLIPImageProcessor (slow, PIL-based) does it, and LLaVA's expand2square for aspect ratio 'pad':
  Image.open(p).convert('RGB') -> [expand2square] -> PIL resize (size computed as get_resize_output_image_size)
  -> center_crop (transformers.image_transforms semantics, zero padding when the crop is larger)
  -> rescale: float64 multiply, cast to float32 -> normalize in float32 -> CHW.
It also records Image.open(p).convert('RGB') of images in other modes (L, P, RGBA, LA, I;16).
"""
import json
import math
import os

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
IMG = os.path.join(HERE, "images")
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]


def expand2square(pil_img, background_color):  # LLaVA's train.py
    width, height = pil_img.size
    if width == height:
        return pil_img
    elif width > height:
        result = Image.new(pil_img.mode, (width, width), background_color)
        result.paste(pil_img, (0, (width - height) // 2))
        return result
    else:
        result = Image.new(pil_img.mode, (height, height), background_color)
        result.paste(pil_img, ((height - width) // 2, 0))
        return result


def output_size(h, w, size):  # transformers get_resize_output_image_size (+ CLIPImageProcessor.resize)
    if "shortest_edge" in size:
        s = size["shortest_edge"]
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = s, int(s * long / short)
        return (new_long, new_short) if w <= h else (new_short, new_long)
    return size["height"], size["width"]


def center_crop(image, ch, cw):  # transformers.image_transforms.center_crop, channels last
    oh, ow = image.shape[:2]
    top = (oh - ch) // 2
    bottom = top + ch
    left = (ow - cw) // 2
    right = left + cw
    if top >= 0 and bottom <= oh and left >= 0 and right <= ow:
        return image[top:bottom, left:right]
    nh, nw = max(ch, oh), max(cw, ow)
    new = np.zeros_like(image, shape=(nh, nw) + image.shape[2:])
    tp = math.ceil((nh - oh) / 2)
    lp = math.ceil((nw - ow) / 2)
    new[tp:tp + oh, lp:lp + ow] = image
    top += tp
    bottom += tp
    left += lp
    right += lp
    return new[max(0, top):min(nh, bottom), max(0, left):min(nw, right)]


def clip(path, cfg, aspect):
    img = Image.open(path).convert("RGB")
    if aspect == "pad":
        img = expand2square(img, tuple(int(x * 255) for x in cfg["image_mean"]))
    size, crop = cfg.get("size"), cfg.get("crop_size")
    if isinstance(size, int):
        size = {"shortest_edge": size}
    if isinstance(crop, int):
        crop = {"height": crop, "width": crop}
    arr = np.asarray(img)
    if cfg.get("do_resize", True):
        oh, ow = output_size(arr.shape[0], arr.shape[1], size)
        arr = np.array(Image.fromarray(arr).resize((ow, oh), resample=cfg.get("resample", 3)))
    if cfg.get("do_center_crop", True):
        arr = center_crop(arr, crop["height"], crop["width"])
    x = arr
    if cfg.get("do_rescale", True):
        x = (x.astype(np.float64) * cfg.get("rescale_factor", 1 / 255)).astype(np.float32)
    if cfg.get("do_normalize", True):
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float32)
        x = (x - np.array(cfg["image_mean"], dtype=x.dtype)) / np.array(cfg["image_std"], dtype=x.dtype)
    return x.transpose(2, 0, 1)


def main():
    os.makedirs(IMG, exist_ok=True)
    rng = np.random.default_rng(2024)
    rgb = lambda h, w: Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    rgb(17, 23).save(os.path.join(IMG, "rgb23x17.png"))
    rgb(29, 13).save(os.path.join(IMG, "rgb13x29.png"))
    rgb(7, 5).save(os.path.join(IMG, "rgb5x7.png"))
    Image.fromarray(rng.integers(0, 256, (6, 9), dtype=np.uint8)).save(os.path.join(IMG, "gray9x6.png"))
    pal = Image.fromarray(rng.integers(0, 12, (5, 7), dtype=np.uint8), mode="P")
    pal.putpalette([int(v) for v in rng.integers(0, 256, 12 * 3)])
    pal.save(os.path.join(IMG, "palette7x5.png"))
    Image.fromarray(rng.integers(0, 256, (4, 6, 4), dtype=np.uint8), mode="RGBA").save(os.path.join(IMG, "rgba6x4.png"))
    Image.fromarray(rng.integers(0, 256, (5, 5, 2), dtype=np.uint8), mode="LA").save(os.path.join(IMG, "la5x5.png"))
    g16 = np.array([[0, 1, 100, 254, 255, 256], [1000, 4096, 30000, 65535, 7, 300], [12, 13, 14, 255, 256, 257]], dtype=np.uint16)
    Image.fromarray(g16).save(os.path.join(IMG, "gray16_6x3.png"))

    base = {"crop_size": {"height": 8, "width": 8}, "do_center_crop": True, "do_convert_rgb": True, "do_normalize": True,
            "do_rescale": True, "do_resize": True, "image_mean": MEAN, "image_std": STD, "resample": 3,
            "rescale_factor": 1 / 255, "size": {"shortest_edge": 8}, "image_processor_type": "CLIPImageProcessor"}
    cases = []

    def case(name, image, aspect="square", **over):
        cfg = dict(base, **over)
        x = clip(os.path.join(IMG, image), cfg, aspect)
        cases.append({"name": name, "image": image, "aspect": aspect, "config": cfg, "shape": list(x.shape),
                      "pixels": [float(v) for v in x.reshape(-1)]})

    case("bicubic_wide", "rgb23x17.png")
    case("bicubic_wide_pad", "rgb23x17.png", "pad")
    case("bicubic_tall", "rgb13x29.png")
    case("bicubic_tall_pad", "rgb13x29.png", "pad")
    case("bicubic_upscale", "rgb5x7.png")
    case("bilinear_wide", "rgb23x17.png", resample=2)
    case("box_tall", "rgb13x29.png", resample=4)
    case("hamming_wide", "rgb23x17.png", resample=5)
    case("lanczos_tall", "rgb13x29.png", resample=1)
    case("crop_larger_than_image", "rgb5x7.png", do_resize=False, crop_size={"height": 8, "width": 10})
    case("size_height_width", "rgb23x17.png", size={"height": 9, "width": 11})
    case("int_sizes", "rgb13x29.png", size=8, crop_size=8)
    case("no_rescale", "rgb23x17.png", do_rescale=False)
    case("gray_bicubic", "gray9x6.png")
    case("rgba_bicubic_pad", "rgba6x4.png", "pad")
    case("big_downscale", "rgb13x29.png", size={"shortest_edge": 3}, crop_size={"height": 3, "width": 3})

    decoded = []
    for name in ["gray9x6.png", "palette7x5.png", "rgba6x4.png", "la5x5.png", "gray16_6x3.png", "rgb5x7.png"]:
        im = Image.open(os.path.join(IMG, name))
        rgb_arr = np.asarray(im.convert("RGB"))
        decoded.append({"image": name, "mode": im.mode, "width": im.size[0], "height": im.size[1],
                        "rgb": [int(v) for v in rgb_arr.reshape(-1)]})
    with open(os.path.join(HERE, "image_cases.json"), "w") as f:
        json.dump({"generator": "gen_image_fixtures.py", "cases": cases, "decoded": decoded}, f)
    print(f"wrote {len(cases)} cases, {len(decoded)} decodings")


if __name__ == "__main__":
    main()
