#!/usr/bin/env python3
"""runner_test.py - proves each strictness rule of zimage-golden on crafted mini cases.

usage: python3 tests/golden/runner_test.py BUILD/zimage-golden FIXTURES_DIR

Each test builds a mini fixtures folder in a temporary directory (symlinks to the tiny
models, a few golden files cut from the real ones and edited), runs the runner on it
and checks its exit status and output. Every rule has a control that must PASS, so a
runner that fails everything cannot pass this test either. Python standard library only."""
import json, math, os, shutil, struct, subprocess, sys, tempfile

RUNNER, FX = sys.argv[1], os.path.abspath(sys.argv[2])
DT = {"F32": ("<f", 4), "I32": ("<i", 4), "U8": ("<B", 1)}
passed = failed = 0


def read_st(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        out[k] = [v["dtype"], v["shape"], bytearray(data[b:e])]
    return out


def write_st(path, tensors):
    hdr, blob = {}, b""
    for k in sorted(tensors):
        dt, shape, raw = tensors[k]
        hdr[k] = {"dtype": dt, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += bytes(raw)
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + blob)


def set_f32(t, i, value):
    struct.pack_into("<f", t[2], 4 * i, value)


class Mini:
    """A fixtures folder: tiny models linked, golden/ empty, optional tokenizer_cases.json."""

    def __init__(self, tokenizer_cases=True):
        self.dir = tempfile.mkdtemp(prefix="zimage-golden-mini-")
        os.makedirs(f"{self.dir}/golden")
        for m in ("tiny-zimage", "tiny-zimage-bf16"):
            os.symlink(f"{FX}/{m}", f"{self.dir}/{m}")
        if tokenizer_cases:
            doc = json.load(open(f"{FX}/tokenizer_cases.json", encoding="utf-8"))
            doc["cases"] = doc["cases"][:2]
            json.dump(doc, open(f"{self.dir}/tokenizer_cases.json", "w"))

    def case(self, name, base, edit_manifest=None, edit_tensors=None):
        """golden/<name>.{json,safetensors} from the real case `base`, edited."""
        m = json.load(open(f"{FX}/golden/{base}.json"))
        t = read_st(f"{FX}/golden/{m['file']}")
        m["name"], m["file"] = name, name + ".safetensors"
        if edit_manifest:
            edit_manifest(m)
        if edit_tensors:
            edit_tensors(t)
        json.dump(m, open(f"{self.dir}/golden/{name}.json", "w"))
        write_st(f"{self.dir}/golden/{name}.safetensors", t)

    def run(self, *args):
        p = subprocess.run([RUNNER, *args, self.dir], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return p.returncode, p.stdout

    def close(self):
        shutil.rmtree(self.dir)


def check(label, mini, args, want_rc_zero, must=(), must_not=()):
    global passed, failed
    rc, out = mini.run(*args)
    ok = (rc == 0) == want_rc_zero and all(s in out for s in must) and not any(s in out for s in must_not)
    if ok:
        passed += 1
        print(f"  ok   {label}")
    else:
        failed += 1
        print(f"  FAIL {label}: exit {rc} (want {'0' if want_rc_zero else 'non-zero'}); "
              f"must contain {list(must)}, must not contain {list(must_not)}\n--- output ---\n{out}--------------")


def randn_only(keep):
    def edit(t):
        for k in list(t):
            if k != keep:
                del t[k]
    return edit


def drop_prefix(prefix):
    def edit(t):
        for k in list(t):
            if k.startswith(prefix):
                del t[k]
    return edit


def models(**kw):
    def edit(m):
        m["models"] = {k: v for k, v in kw.items()}
    return edit


def both(*fns):
    def edit(x):
        for f in fns:
            f(x)
    return edit


F32_VAE, BF16_VAE = "tiny-zimage/vae", "tiny-zimage-bf16/vae"
R = "seed42_1x16x8x8"

# -- zero cases / -k / tokenizer_cases.json -------------------------------------------
m = Mini()
check("empty golden/ folder: no case ran -> non-zero", m, ["-k", "mini"], False, ["no case ran"])
m.case("mini_randn", "torch_randn", edit_tensors=randn_only(R))
check("control: one good case passes", m, ["-k", "mini_randn"], True, ["PASS mini_randn"])
check("-k matching nothing -> non-zero", m, ["-k", "no_such_case"], False, ["no case ran", "-k matched nothing"])
check("control: whole folder with tokenizer_cases.json passes", m, [], True, ["PASS tokenizer", "PASS mini_randn"])
os.unlink(f"{m.dir}/tokenizer_cases.json")
check("missing tokenizer_cases.json -> FAIL", m, [], False, ["FAIL tokenizer_cases"])
m.close()

# -- kinds ------------------------------------------------------------------------------
m = Mini()
m.case("mini_kind", "torch_randn", lambda mf: mf.update(kind="torch_randm"), randn_only(R))
check("misspelled kind -> FAIL", m, ["-k", "mini_kind"], False, ["FAIL mini_kind: unknown kind 'torch_randm'"])
m.case("mini_nokind", "torch_randn", lambda mf: mf.pop("kind"), randn_only(R))
check("no kind -> FAIL", m, ["-k", "mini_nokind"], False, ["unknown kind '(none)'"])
m.case("mini_nofile", "torch_randn", lambda mf: mf.pop("file"), randn_only(R))
check("manifest without file -> FAIL", m, ["-k", "mini_nofile"], False, ["manifest has no \"file\""])
m.case("mini_badtol", "torch_randn", lambda mf: mf.update(tolerance={"atol": -1}), randn_only(R))
check("negative tolerance -> FAIL", m, ["-k", "mini_badtol"], False, ["FAIL mini_badtol"])
m.close()

# -- every tensor compared or declared an input -------------------------------------------
m = Mini()
def add_junk(t):
    t["unexpected.extra"] = ["F32", [2], bytearray(8)]
m.case("mini_leftover", "torch_randn", edit_tensors=both(randn_only(R), add_junk))
check("tensor nobody compares -> FAIL naming it", m, ["-k", "mini_leftover"], False,
      ["neither compared nor declared inputs", "unexpected.extra", "FAIL mini_leftover"])
def add_stage(t):
    t["f32/inter/decoder.no_such_stage"] = ["F32", [4], bytearray(16)]
m.case("mini_vae_stage", "vae_decode_4x4", models(f32=F32_VAE), both(drop_prefix("bf16/"), add_stage))
check("intermediate the library does not emit -> FAIL", m, ["-k", "mini_vae_stage"], False,
      ["f32/inter/decoder.no_such_stage", "FAIL mini_vae_stage"])
m.close()

# -- precisions: exactly the listed models ---------------------------------------------------
m = Mini()
m.case("mini_f32only", "vae_decode_4x4", models(f32=F32_VAE), drop_prefix("bf16/"))
check("models lists only f32 -> runs f32 only and passes", m, ["-k", "mini_f32only"], True,
      ["PASS mini_f32only", "f32/image"], ["bf16/", "no models.bf16"])
m.case("mini_bf16only", "vae_decode_4x4", models(bf16=BF16_VAE), drop_prefix("f32/"))
check("models lists only bf16 -> runs bf16 only and passes", m, ["-k", "mini_bf16only"], True,
      ["PASS mini_bf16only", "bf16/image"], ["f32/"])
m.case("mini_unlisted", "vae_decode_4x4", models(f32=F32_VAE))
check("bf16 goldens present but bf16 not listed -> FAIL (leftovers)", m, ["-k", "mini_unlisted"], False,
      ["bf16/image", "neither compared nor declared inputs"])
m.case("mini_listed_missing", "vae_decode_4x4", models(f32=F32_VAE, bf16=BF16_VAE), drop_prefix("bf16/"))
check("bf16 listed but its goldens missing -> FAIL", m, ["-k", "mini_listed_missing"], False,
      ["FAIL mini_listed_missing", "bf16/image"])
m.case("mini_nomodels", "vae_decode_4x4", models())
check("no models listed for a model kind -> FAIL", m, ["-k", "mini_nomodels"], False, ["FAIL mini_nomodels"])
m.close()

# -- setup failures of sub-checks ----------------------------------------------------------
m = Mini()
m.case("mini_badpath", "vae_decode_4x4", models(f32=F32_VAE, bf16="no/such/vae"))
check("a variant whose model cannot load -> FAIL", m, ["-k", "mini_badpath"], False, ["FAIL mini_badpath"])
m.case("mini_sched", "scheduler_turbo")
check("scheduler euler sub-check without its e2e golden -> FAIL", m, ["-k", "mini_sched"], False,
      ["euler_step(e2e_turbo_fox)", "FAIL mini_sched"])
m.case("mini_dit_nocap", "dit_8x8_cap20", edit_tensors=lambda t: t.pop("cap_feats.0"))
check("dit case missing an input -> FAIL", m, ["-k", "mini_dit_nocap"], False, ["FAIL mini_dit_nocap"])
m.close()

# -- NaN / Inf on either side ---------------------------------------------------------------
m = Mini()
for name, val in (("mini_nan", math.nan), ("mini_inf", math.inf), ("mini_ninf", -math.inf)):
    m.case(name, "torch_randn", edit_tensors=both(randn_only(R), lambda t, v=val: set_f32(t[R], 5, v)))
    check(f"{val} in the golden -> FAIL", m, ["-k", name], False, ["NaN/Inf", f"FAIL {name}"])
def nan_latents_and_image(t):
    set_f32(t["latents"], 0, math.nan)
    n = len(t["f32/image"][2]) // 4
    for i in range(n):
        set_f32(t["f32/image"], i, math.nan)
m.case("mini_nan_both", "vae_decode_4x4", models(f32=F32_VAE), both(drop_prefix("bf16/"), drop_prefix("f32/inter/"),
                                                                      nan_latents_and_image))
check("NaN on both sides (NaN latents, NaN golden image) -> FAIL", m, ["-k", "mini_nan_both"], False,
      ["NaN/Inf", "FAIL mini_nan_both"])
m.case("mini_nan_got", "vae_decode_4x4", models(f32=F32_VAE),
       both(drop_prefix("bf16/"), lambda t: set_f32(t["latents"], 0, math.nan)))
check("NaN in the computed values only -> FAIL", m, ["-k", "mini_nan_got"], False, ["NaN/Inf", "FAIL mini_nan_got"])
m.close()

print(f"golden runner rules: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
