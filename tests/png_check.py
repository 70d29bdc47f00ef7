#!/usr/bin/python3
"""png_check.py PNG GOLDEN.safetensors TENSOR [max_diff] [max_frac]

Compares a PNG written by zimage with a uint8 golden tensor [1,H,W,3] and prints
its metadata. Uses PIL (python3-pil) as an independent, standard PNG reader.
Exit 0 when pixels match within tolerance and the A1111 'parameters' text exists."""
import json
import struct
import sys

from PIL import Image


def read_tensor(path, name):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        t = hdr[name]
        b, e = t["data_offsets"]
        f.seek(8 + n + b)
        return t["shape"], f.read(e - b)


def main():
    png, golden, name = sys.argv[1:4]
    max_diff = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    max_frac = float(sys.argv[5]) if len(sys.argv) > 5 else 0.01
    im = Image.open(png)
    im.load()
    shape, want = read_tensor(golden, name)
    h, w = shape[1], shape[2]
    if im.size != (w, h) or im.mode != "RGB":
        print(f"FAIL size/mode {im.size} {im.mode}, want {(w, h)} RGB")
        return 1
    got = im.tobytes()
    diffs = [abs(a - b) for a, b in zip(got, want)]
    md, nd = max(diffs), sum(1 for d in diffs if d)
    print(f"pixels: max diff {md}, {nd} of {len(diffs)} values differ")
    text = getattr(im, "text", {})
    print("metadata keys:", sorted(text.keys()))
    params = text.get("parameters", "")
    print("parameters:", params.replace("\n", " | "))
    ok = md <= max_diff and nd <= max_frac * len(diffs) and "Seed:" in params and "Steps:" in params
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
