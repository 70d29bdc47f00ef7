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


def read_safetensors(path):
    """{name: (dtype, shape, raw bytes)} of a safetensors file (metadata dropped)."""
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    hdr = json.loads(b[8:8 + n])
    hdr.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
            for k, v in hdr.items()}


def corpus_lora():
    """LoRA seeds: a few small modules of each fixture format; first byte = setting (fuzz_lora.c)."""
    def pick(name, subs):
        t = read_safetensors(f"{FX}/lora/{name}.safetensors")
        return {k: v for k, v in t.items() if any(s in k for s in subs)}
    peft = pick("lora_peft", ["cap_embedder.1.", "layers.0.attention.to_q."])
    kohya = pick("lora_kohya", ["cap_embedder_1.", "layers_1_attention_to_out_0."])
    comfy = pick("lora_comfy", ["cap_embedder.1.", "layers.0.attention.qkv.", "layers.0.attention.out."])
    lokr = pick("lokr", ["layers.1.attention.to_q.", "noise_refiner.1.feed_forward.w1."])
    put("lora", "peft_f32", bytes([0]) + safetensors(peft))
    put("lora", "peft_bf16_model", bytes([1]) + safetensors(peft))
    put("lora", "kohya_q8_runtime", bytes([2]) + safetensors(kohya))
    put("lora", "kohya_runtime_twice", bytes([8 | 16]) + safetensors(kohya))
    put("lora", "comfy_qkv", bytes([0]) + safetensors(comfy))
    put("lora", "comfy_qkv_q8", bytes([2]) + safetensors(comfy))
    put("lora", "lokr", bytes([0]) + safetensors(lokr))
    put("lora", "lokr_bf16_twice", bytes([1 | 16]) + safetensors(lokr))
    # LoHa: to_q (runtime rank 6 on Q8_0) and a lycoris_-named ffn w1 (dequantize + merge on Q8_0)
    loha = pick("loha", ["layers.1.attention.to_q.", "lycoris_noise_refiner_1_feed_forward_w1."])
    put("lora", "loha", bytes([0]) + safetensors(loha))
    put("lora", "loha_q8", bytes([2]) + safetensors(loha))
    # PEFT adapter names (.default.), half-precision factors, a text-encoder key and an unknown key (lenient)
    f16 = {k.replace(".lora_A.weight", ".lora_A.default.weight").replace(".lora_B.weight", ".lora_B.default.weight"):
           ("F16", v[1], struct.pack(f"<{len(v[2]) // 4}e", *struct.unpack(f"<{len(v[2]) // 4}f", v[2])))
           for k, v in peft.items()}
    f16["lora_te_text_model_encoder_layers_0_mlp_fc1.alpha"] = ("F32", [], struct.pack("<f", 4))
    f16["unrelated.weight"] = ("BF16", [2], b"\x80\x3f" * 2)
    put("lora", "peft_default_f16_lenient", bytes([4]) + safetensors(f16, meta={"format": "pt"}))
    # regressions (FUZZING.md, Findings): rank 0 (alpha / 0), LoKr sides whose product overflows int64
    put("lora", "rank0", bytes([0]) + safetensors({
        "layers.0.attention.to_q.lora_A.weight": ("F32", [0, 64], b""),
        "layers.0.attention.to_q.lora_B.weight": ("F32", [64, 0], b""),
        "layers.0.attention.to_q.alpha": ("F32", [], struct.pack("<f", 1))}))
    put("lora", "lokr_huge_sides", bytes([0]) + safetensors({
        "layers.0.attention.to_q.lokr_w1": ("F32", [1 << 59, 0], b""),
        "layers.0.attention.to_q.lokr_w2": ("F32", [1 << 59, 0], b"")}))
    put("lora", "loha_rank0_tucker", bytes([4]) + safetensors({
        "layers.0.attention.to_q.hada_w1_a": ("F32", [64, 0], b""),
        "layers.0.attention.to_q.hada_w1_b": ("F32", [0, 64], b""),
        "layers.0.attention.to_q.hada_w2_a": ("F32", [64, 0], b""),
        "layers.0.attention.to_q.hada_w2_b": ("F32", [0, 64], b""),
        "layers.1.attention.to_k.hada_t1": ("F32", [1, 1], struct.pack("<f", 1))}))


GGML = {  # name: (ggml type, block elements, block bytes)
    "F32": (0, 1, 4), "F16": (1, 1, 2), "Q4_0": (2, 32, 18), "Q4_1": (3, 32, 20), "Q5_0": (6, 32, 22),
    "Q5_1": (7, 32, 24), "Q8_0": (8, 32, 34), "Q2_K": (10, 256, 84), "Q3_K": (11, 256, 110),
    "Q4_K": (12, 256, 144), "Q5_K": (13, 256, 176), "Q6_K": (14, 256, 210), "I32": (26, 1, 4), "BF16": (30, 1, 2)}
GV = {"u8": 0, "i8": 1, "u16": 2, "i16": 3, "u32": 4, "i32": 5, "f32": 6, "bool": 7, "str": 8, "arr": 9,
      "u64": 10, "i64": 11, "f64": 12}
GFMT = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def gg_str(s):
    s = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(s)) + s


def gg_value(t, v):
    if t == GV["str"]:
        return gg_str(v)
    if t == GV["arr"]:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(gg_value(et, x) for x in items)
    return struct.pack(GFMT[t], v)


def gguf(kvs, tensors, version=3, alignment=32):
    """kvs: [(key, type, value)]; tensors: [(name, ggml type name, ne (innermost first), raw)]."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for k, t, v in kvs:
        out += gg_str(k) + struct.pack("<I", t) + gg_value(t, v)
    blob = b""
    for name, ty, ne, raw in tensors:
        blob += b"\0" * (-len(blob) % alignment)
        out += gg_str(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        out += struct.pack("<IQ", GGML[ty][0], len(blob))
        blob += raw
    return out + b"\0" * (-len(out) % alignment) + blob


def gg_blocks(ty, ne, seed):
    """Deterministic bytes for a tensor; fp16 scales of the block types kept small and finite."""
    import random
    rnd = random.Random(seed)
    n = 1
    for x in ne:
        n *= x
    _, be, bb = GGML[ty]
    if ty == "F32":
        return struct.pack(f"<{n}f", *[rnd.uniform(-2, 2) for _ in range(n)])
    if ty == "I32":
        return struct.pack(f"<{n}i", *[rnd.randrange(-1000, 1000) for _ in range(n)])
    raw = bytearray(rnd.getrandbits(8) for _ in range(n // be * bb))
    if be > 1:  # d (and m/dmin) fields: the half 0x2c00 = 0.0625
        pos = {"Q2_K": [80, 82], "Q3_K": [108], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208]}.get(ty, [0, 2] if ty in ("Q4_1", "Q5_1") else [0])
        for b in range(n // be):
            for p in pos:
                raw[b * bb + p:b * bb + p + 2] = b"\x00\x2c"
    elif ty in ("F16", "BF16"):
        for i in range(0, len(raw), 2):
            raw[i + 1] = 0x3c if ty == "F16" else 0x3f
    return bytes(raw)


def corpus_gguf():
    all_types = [(f"t.{ty.lower()}", ty, [GGML[ty][1] if GGML[ty][1] > 1 else 4, 2], None) for ty in GGML]
    all_types = [(n, ty, ne, gg_blocks(ty, ne, k)) for k, (n, ty, ne, _) in enumerate(all_types)]
    kvs = [("general.architecture", GV["str"], "zimage"), ("general.alignment", GV["u32"], 32),
           ("k.u8", GV["u8"], 200), ("k.i8", GV["i8"], -5), ("k.u16", GV["u16"], 65000), ("k.i16", GV["i16"], -300),
           ("k.i32", GV["i32"], -7), ("k.f32", GV["f32"], 0.5), ("k.bool", GV["bool"], True),
           ("k.u64", GV["u64"], 1 << 40), ("k.i64", GV["i64"], -(1 << 40)), ("k.f64", GV["f64"], 2.5),
           ("k.arr_u8", GV["arr"], (GV["u8"], [1, 2, 3])), ("k.arr_str", GV["arr"], (GV["str"], ["a", "bc", ""])),
           ("k.arr_arr", GV["arr"], (GV["arr"], [(GV["i16"], [1, -1]), (GV["str"], ["x"])]))]
    put("gguf", "all_types_v3", gguf(kvs, all_types))
    put("gguf", "v2_align64", gguf([("general.alignment", GV["u32"], 64)],
                                  [("a.weight", "Q8_0", [64, 2], gg_blocks("Q8_0", [64, 2], 1)),
                                   ("b.bias", "F32", [3], gg_blocks("F32", [3], 2))], version=2, alignment=64))
    put("gguf", "empty", gguf([], []))
    put("gguf", "comfy_orig_shape", gguf([("comfy.gguf.orig_shape.x.weight", GV["arr"], (GV["i32"], [4, 8, 8]))],
                                         [("x.weight", "Q4_K", [256, 1], gg_blocks("Q4_K", [256, 1], 3))]))
    put("gguf", "llama_names", gguf([("general.architecture", GV["str"], "qwen3")], [
        ("token_embd.weight", "Q6_K", [256, 2], gg_blocks("Q6_K", [256, 2], 4)),
        ("blk.0.attn_q.weight", "BF16", [4, 4], gg_blocks("BF16", [4, 4], 5)),
        ("blk.0.ffn_down.weight", "Q5_0", [32, 1], gg_blocks("Q5_0", [32, 1], 6)),
        ("output_norm.weight", "F32", [4], gg_blocks("F32", [4], 7))]))
    # a GGUF text encoder vocabulary (tokenizer.ggml.*): the mini tokenizer of corpus_tokenizer
    real = json.load(open(f"{FX}/tiny-zimage/tokenizer/tokenizer.json", encoding="utf-8"))
    vocab = sorted((i, t) for t, i in real["model"]["vocab"].items() if i < 300)
    assert [i for i, _ in vocab] == list(range(300))
    toks = [t for _, t in vocab] + [t["content"] for t in real["added_tokens"][:4]] + ["[PAD0]"]
    types = [1] * 300 + [3] * 4 + [5]
    have = set(toks[:300])
    merges = [m if isinstance(m, str) else " ".join(m) for m in real["model"]["merges"][:400]]
    merges = [m for m in merges if all(p in have for p in m.split(" ")) and m.replace(" ", "") in have]
    tok_kvs = [("tokenizer.ggml.model", GV["str"], "gpt2"), ("tokenizer.ggml.pre", GV["str"], "qwen2"),
               ("tokenizer.ggml.tokens", GV["arr"], (GV["str"], toks)),
               ("tokenizer.ggml.token_type", GV["arr"], (GV["i32"], types)),
               ("tokenizer.ggml.merges", GV["arr"], (GV["str"], merges))]
    put("gguf", "tokenizer", gguf(tok_kvs, [("token_embd.weight", "F16", [4, 305], gg_blocks("F16", [4, 305], 8))]))


def corpus_jpeg():
    from PIL import Image
    img = Image.new("RGB", (9, 7))
    img.putdata([((x * 37) % 256, (y * 51) % 256, (x * y * 13) % 256) for y in range(7) for x in range(9)])
    variants = {"baseline_420": dict(quality=80), "baseline_444": dict(quality=90, subsampling=0),
                "progressive": dict(quality=75, progressive=True), "optimized_422": dict(quality=60, subsampling=1, optimize=True)}
    for name, kw in variants.items():
        b = io.BytesIO()
        img.save(b, "JPEG", **kw)
        put("jpeg", name, b.getvalue())
    for mode in ["L", "CMYK"]:
        b = io.BytesIO()
        img.convert(mode).save(b, "JPEG", quality=70)
        put("jpeg", "mode_" + mode, b.getvalue())
    big = img.resize((40, 24))
    b = io.BytesIO()
    big.save(b, "JPEG", quality=50, progressive=True)
    put("jpeg", "progressive_40x24", b.getvalue())
    b = io.BytesIO()
    img.save(b, "PNG")
    put("jpeg", "png_by_magic", b.getvalue())  # zi_image_read picks the format by magic


def corpus_request():
    """Request seeds: first byte = endpoint (0 OpenAI generations, 1 A1111 txt2img / jobs, 2 base64)."""
    put("request", "openai_full", b"\0" + json.dumps({"prompt": "a cat", "n": 2, "size": "512x768",
        "response_format": "b64_json", "seed": 42, "steps": 8, "guidance_scale": 0.0, "negative_prompt": "blur",
        "model": "z-image", "user": "u"}).encode())
    put("request", "openai_min", b"\0" + b'{"prompt":"x","size":"auto","seed":-1}')
    put("request", "a1111_full", b"\1" + json.dumps({"prompt": "a dog", "negative_prompt": "", "width": 1024,
        "height": 512.0, "steps": 9, "cfg_scale": 3.5, "seed": 4294967295, "batch_size": 2, "n_iter": 2,
        "sampler_name": "Euler", "override_settings": {}}).encode())
    put("request", "a1111_null", b"\1" + b'{"prompt":null,"width":null,"cfg_scale":1e300}')
    put("request", "base64_png", b"\2" + "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==".encode())
    put("request", "base64_unpadded", b"\2" + b"YWJjZA")


if __name__ == "__main__":
    corpus_safetensors()
    corpus_png()
    corpus_tokenizer()
    corpus_prompt()
    corpus_config()
    corpus_lora()
    corpus_gguf()
    corpus_jpeg()
    corpus_request()
