#!/usr/bin/env bash
# check_peers.sh - do other GGUF readers load the files `zimage quantize` writes?
#
# Not part of `make test` or CI: it needs peer tools built by hand (llama.cpp, stable-diffusion.cpp)
# and full-size GGUFs. It builds nothing; it runs the checks whose tools it is given and prints
# PASS / FAIL / SKIP per check (exit 1 if any check failed). See tests/interop/README.md.
#
#   tests/interop/check_peers.sh --te te-q8_0.gguf --dit dit-q8_0.gguf \
#       [--zimage build/zimage] [--tokenizer tokenizer.json] [--python PY_WITH_gguf] \
#       [--llama-tokenize BIN] [--llama-simple BIN] \
#       [--sd BIN --vae ae.safetensors [--size 256] [--steps 1]] [--threads N] [--out DIR]
#
# Checks (each skipped when its tool is not given):
#   gguf-py     gguf-py's GGUFReader (llama.cpp's Python package) reads both files; the text
#               encoder has llama.cpp's qwen3 keys / tokenizer keys / tensor names, the DiT
#               ComfyUI-GGUF's lumina2 names without a prefix
#   tokenize    llama-tokenize on the text-encoder GGUF gives the same ids as `zimage tokenize`
#               (with --tokenizer tokenizer.json and with the GGUF's own vocabulary)
#   llama       llama-simple loads the text encoder as a qwen3 model and decodes a few tokens
#   sd          stable-diffusion.cpp's CLI loads the DiT (--diffusion-model) with the text encoder
#               (--llm) and a VAE, and writes an image: no unknown / missing / wrong-shape tensor
set -u
ZIMAGE=build/zimage TE="" DIT="" TOK="" PY="" LTOK="" LSIMPLE="" SD="" VAE="" SIZE=256 STEPS=1
THREADS=$(nproc) OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
    --zimage) ZIMAGE=$2; shift ;;
    --te) TE=$2; shift ;;
    --dit) DIT=$2; shift ;;
    --tokenizer) TOK=$2; shift ;;
    --python) PY=$2; shift ;;
    --llama-tokenize) LTOK=$2; shift ;;
    --llama-simple) LSIMPLE=$2; shift ;;
    --sd) SD=$2; shift ;;
    --vae) VAE=$2; shift ;;
    --size) SIZE=$2; shift ;;
    --steps) STEPS=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "check_peers.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$TE" ] && [ -n "$DIT" ] || { echo "check_peers.sh: --te and --dit are required" >&2; exit 2; }
for f in "$TE" "$DIT"; do [ -f "$f" ] || { echo "check_peers.sh: no file $f" >&2; exit 2; }; done
[ -n "$OUT" ] || OUT=$(mktemp -d /tmp/check_peers.XXXXXX)
mkdir -p "$OUT"
FAILS=0
pass() { echo "PASS  $1"; }
fail() { echo "FAIL  $1"; FAILS=$((FAILS + 1)); }
skip() { echo "SKIP  $1"; }

# ---- gguf-py ----------------------------------------------------------------------------------
if [ -n "$PY" ]; then
    if "$PY" - "$TE" "$DIT" > "$OUT/gguf-py.log" 2>&1 <<'EOF'
import sys
from gguf import GGUFReader, GGUFValueType
te, dit = GGUFReader(sys.argv[1]), GGUFReader(sys.argv[2])
def val(r, k):
    f = r.fields.get(k)
    if f is None: return None
    if f.types[0] == GGUFValueType.STRING: return bytes(f.parts[f.data[0]]).decode()
    if f.types[0] == GGUFValueType.ARRAY: return len(f.data)
    return f.parts[f.data[0]][0]
bad = []
if val(te, "general.architecture") != "qwen3": bad.append("te: general.architecture != qwen3")
for k in ["block_count", "context_length", "embedding_length", "feed_forward_length", "attention.head_count",
          "attention.head_count_kv", "rope.freq_base", "attention.layer_norm_rms_epsilon"]:
    if val(te, "qwen3." + k) is None: bad.append("te: no qwen3." + k)
if val(te, "tokenizer.ggml.model") != "gpt2" or val(te, "tokenizer.ggml.pre") != "qwen2":
    bad.append("te: tokenizer.ggml.model/pre not gpt2/qwen2")
for k in ["tokens", "token_type", "merges", "eos_token_id", "bos_token_id", "padding_token_id"]:
    if val(te, "tokenizer.ggml." + k) is None: bad.append("te: no tokenizer.ggml." + k)
tt = {t.name: t for t in te.tensors}
n_layer, n_embd = int(val(te, "qwen3.block_count")), int(val(te, "qwen3.embedding_length"))
emb = tt.get("token_embd.weight")
if emb is None or [int(x) for x in emb.shape] != [n_embd, val(te, "tokenizer.ggml.tokens")]:
    bad.append("te: token_embd.weight missing or not [n_embd, n_vocab]")
want = ["token_embd.weight", "output_norm.weight"] + ["blk.%d.%s.weight" % (i, n) for i in range(n_layer) for n in
        ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "attn_q_norm", "attn_k_norm", "ffn_norm",
         "ffn_gate", "ffn_up", "ffn_down"]]
miss = [n for n in want if n not in tt]
extra = [n for n in tt if n not in want and n != "output.weight"]
if miss: bad.append("te: missing %s" % miss[:5])
if extra: bad.append("te: unexpected %s" % extra[:5])
if val(dit, "general.architecture") != "lumina2": bad.append("dit: general.architecture != lumina2")
dn = {t.name for t in dit.tensors}
for n in ["cap_embedder.0.weight", "x_embedder.weight", "final_layer.linear.weight", "x_pad_token", "cap_pad_token",
          "layers.0.attention.qkv.weight", "layers.0.attention.out.weight", "layers.0.attention.q_norm.weight",
          "noise_refiner.0.adaLN_modulation.0.weight", "context_refiner.0.feed_forward.w2.weight",
          "t_embedder.mlp.0.weight"]:
    if n not in dn: bad.append("dit: missing " + n)
if any(n.startswith(("model.", "diffusion_model.")) or ".to_q." in n for n in dn):
    bad.append("dit: prefixed or unfused (to_q) names")
print("te: %d tensors, %d kv; dit: %d tensors, %d kv" % (len(te.tensors), len(te.fields), len(dit.tensors), len(dit.fields)))
for b in bad: print(b)
sys.exit(1 if bad else 0)
EOF
    then pass "gguf-py reads both; llama.cpp qwen3 keys/names, ComfyUI lumina2 names ($(tail -n 1 "$OUT/gguf-py.log"))"
    else fail "gguf-py: $(tail -n 5 "$OUT/gguf-py.log")"; fi
else skip "gguf-py (no --python)"; fi

# ---- llama-tokenize vs zimage tokenize --------------------------------------------------------
zi_ids() { # zimage tokenize ... TEXT -> "[a, b, c]"
    "$ZIMAGE" tokenize "$@" 2>/dev/null | awk 'NR > 1 { printf "%s%s", (n++ ? ", " : "["), $2 } END { print "]" }'
}
if [ -n "$LTOK" ]; then
    NL=$'\n'
    PROMPTS=("a red fox in the snow, watercolor" "Hello   world!  123 4567 ünïcode 日本語 😀 don't <think>"
        "<|im_start|>user${NL}a cat<|im_end|>${NL}<|im_start|>assistant${NL}" "  leading spaces,	tab and trailing  ")
    ok=1 n=0
    for p in "${PROMPTS[@]}"; do
        l=$("$LTOK" -m "$TE" --ids --log-disable --no-escape -p "$p" 2>>"$OUT/tokenize.log" | tail -n 1)
        a=$(zi_ids --tokenizer "$TE" "$p")
        b=$([ -n "$TOK" ] && zi_ids --tokenizer "$TOK" "$p" || echo "$a")
        printf '%s\n llama-tokenize %s\n zimage (gguf)  %s\n zimage (json)  %s\n' "$p" "$l" "$a" "$b" >> "$OUT/tokenize.log"
        [ "$l" = "$a" ] && [ "$l" = "$b" ] && [ "$l" != "[]" ] || ok=0
        n=$((n + 1))
    done
    if [ $ok = 1 ]; then pass "llama-tokenize ids == zimage tokenize ids ($n prompts)"
    else fail "llama-tokenize vs zimage tokenize differ: see $OUT/tokenize.log"; fi
else skip "tokenize (no --llama-tokenize)"; fi

# ---- llama-simple: load as qwen3 + decode ---------------------------------------------------
if [ -n "$LSIMPLE" ]; then
    if "$LSIMPLE" -m "$TE" -n 4 "a red fox in the snow" > "$OUT/llama-simple.log" 2>&1 \
       && grep -q "arch *= qwen3" "$OUT/llama-simple.log" && grep -q "decoded 4 tokens" "$OUT/llama-simple.log"; then
        pass "llama-simple loads the text encoder (qwen3, $(grep -m1 -o 'model type *= .*' "$OUT/llama-simple.log")) and decodes 4 tokens"
    else fail "llama-simple: $(grep -i -m3 'error\|failed' "$OUT/llama-simple.log"; tail -n 2 "$OUT/llama-simple.log")"; fi
else skip "llama (no --llama-simple)"; fi

# ---- stable-diffusion.cpp: DiT + text encoder + VAE -> image --------------------------------
if [ -n "$SD" ] && [ -n "$VAE" ]; then
    "$SD" --diffusion-model "$DIT" --llm "$TE" --vae "$VAE" -p "a red fox in the snow" -W "$SIZE" -H "$SIZE" \
        --steps "$STEPS" --cfg-scale 1.0 --seed 42 -t "$THREADS" --mmap -v -o "$OUT/sd.png" > "$OUT/sd.log" 2>&1
    rc=$?
    probs=$(grep -i -E "unknown tensor|not in model file|wrong shape|shape mismatch|gguf_init_from_file|error" "$OUT/sd.log" | head -n 5)
    if [ $rc = 0 ] && [ -s "$OUT/sd.png" ] && [ -z "$probs" ]; then
        pass "stable-diffusion.cpp: $(grep -m1 -o 'Version: [^ ]*.*' "$OUT/sd.log") ${SIZE}x$SIZE, $STEPS step(s) -> $OUT/sd.png"
    else fail "stable-diffusion.cpp (rc $rc): ${probs:-$(tail -n 3 "$OUT/sd.log")}"; fi
else skip "sd (no --sd / --vae)"; fi

echo "logs in $OUT"
[ $FAILS = 0 ]
