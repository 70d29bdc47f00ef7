#!/usr/bin/python3
"""make_corpus.py - (re)generate the seed corpus of the libFuzzer targets.

Writes tests/fuzz/corpus/<target>/ from the fixtures: small safetensors files, PNGs of
every color type (needs python3-pil), a miniature tokenizer.json with the real
structure, the tokenizer test strings and the tiny model's config files.
Run from the repository root: /usr/bin/python3 tests/fuzz/make_corpus.py (Debian python3-pil)"""
import json, os, struct, io

FX = "tests/fixtures"
OUT = "tests/fuzz/corpus"


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def safetensors(tensors, meta=None, pad=True):
    hdr, blob = {}, b""
    if meta is not None:
        hdr["__metadata__"] = meta
    for name, (dt, shape, raw) in tensors.items():
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    h = json.dumps(hdr, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob


def corpus_safetensors():
    f32 = struct.pack("<6f", 1, 2, 3, 4, 5, 6)
    put("safetensors", "mixed", safetensors({
        "a.weight": ("F32", [2, 3], f32), "b.bias": ("BF16", [4], b"\x80\x3f" * 4),
        "c.ids": ("I32", [3], struct.pack("<3i", 7, 8, 9)), "d.mask": ("U8", [5], bytes(5)),
        "e.half": ("F16", [2], b"\x00\x3c\x00\xc0")}, meta={"format": "pt"}))
    put("safetensors", "empty", safetensors({}))
    put("safetensors", "scalar_unpadded", safetensors({"s": ("F32", [], struct.pack("<f", 3.5))}, pad=False))
    put("safetensors", "zero_dim", safetensors({"z": ("F32", [0, 4], b""), "i64": ("I64", [1], bytes(8))}))


def corpus_png():
    from PIL import Image
    img = Image.new("RGB", (7, 5))
    img.putdata([((x * 37) % 256, (y * 51) % 256, (x * y * 13) % 256) for y in range(5) for x in range(7)])
    for mode in ["RGB", "RGBA", "L", "LA", "P", "1", "I;16"]:
        b = io.BytesIO()
        im = img.convert(mode) if mode != "I;16" else img.convert("I").point(lambda v: v * 200).convert("I;16")
        im.save(b, "PNG")
        put("png", "mode_" + mode.replace(";", ""), b.getvalue())
    b = io.BytesIO()
    img.save(b, "PNG", interlace=1)
    put("png", "interlaced", b.getvalue())
    b = io.BytesIO()
    img.convert("P").save(b, "PNG", transparency=3)
    put("png", "palette_trns", b.getvalue())


def corpus_tokenizer():
    real = json.load(open(f"{FX}/tiny-zimage/tokenizer/tokenizer.json", encoding="utf-8"))
    model = dict(real["model"])
    vocab = {}
    for tok, i in real["model"]["vocab"].items():
        if i < 300:
            vocab[tok] = i
    merges = [m for m in real["model"]["merges"][:400] if all(p in vocab for p in (m if isinstance(m, list) else m.split(" ")))]
    merges = [m for m in merges if "".join(m if isinstance(m, list) else m.split(" ")) in vocab]
    model["vocab"], model["merges"] = vocab, merges
    mini = dict(real)
    mini["model"] = model
    mini["added_tokens"] = [dict(t, id=300 + k) for k, t in enumerate(real["added_tokens"][:4])]
    put("tokenizer_json", "mini_list_merges", json.dumps(mini, ensure_ascii=False))
    mini2 = dict(mini)
    mini2["model"] = dict(model, merges=[" ".join(m) if isinstance(m, list) else m for m in merges])
    mini2["normalizer"] = None
    put("tokenizer_json", "mini_string_merges", json.dumps(mini2, ensure_ascii=False))


def corpus_prompt():
    cases = json.load(open(f"{FX}/tokenizer_cases.json", encoding="utf-8"))["cases"]
    for k, c in enumerate(cases):
        put("prompt", f"case{k:02d}", c["text"])
    put("prompt", "bad_utf8", b"abc\xff\xfe def \xc3")
    put("prompt", "added_tokens", "<|im_start|>user\nhi<|im_end|><think></think><|endoftext|>")


def corpus_config():
    files = ["transformer/config.json", "text_encoder/config.json", "vae/config.json",
             "scheduler/scheduler_config.json", "transformer/diffusion_pytorch_model.safetensors.index.json"]
    for k, rel in enumerate(files):
        put("config", f"{k}_" + rel.replace("/", "_"), bytes([k]) + open(f"{FX}/tiny-zimage/{rel}", "rb").read())


if __name__ == "__main__":
    corpus_safetensors()
    corpus_png()
    corpus_tokenizer()
    corpus_prompt()
    corpus_config()
