#!/usr/bin/env bash
# cli_test.sh ZIMAGE FIXTURES - end-to-end checks of the zimage CLI:
# the tiny model's PNG equals the golden image, its metadata is readable by PIL,
# and every invalid input gets a clear message and a non-zero exit.
set -u
ZIMAGE=$1
FIX=$2
TMP=$(mktemp -d /tmp/zimage-cli-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0
unset ZIMAGE_MODEL

ok() { pass=$((pass + 1)); echo "  ok   $1"; }
bad() { fail=$((fail + 1)); echo "  FAIL $1"; }

# expect_fail NAME PATTERN ARGS... : non-zero exit and stderr matching PATTERN
expect_fail() {
  local name=$1 pat=$2
  shift 2
  local err rc
  err=$("$ZIMAGE" "$@" 2>&1 >/dev/null)
  rc=$?
  if [ $rc -ne 0 ] && printf '%s' "$err" | grep -q -- "$pat"; then ok "$name: $err"
  else bad "$name: rc=$rc, stderr: $err (wanted /$pat/)"; fi
}

M=$FIX/tiny-zimage

# help and version
if "$ZIMAGE" --help | grep -q "usage: zimage"; then ok "--help"; else bad "--help"; fi
if "$ZIMAGE" --version | grep -q "zimage [0-9]"; then ok "--version"; else bad "--version"; fi

# the tiny model reproduces the golden e2e_turbo_fox_64x64 image (seed 42, 8 steps). The goldens
# are f32 runs: runs compared with them say --precision f32 (the default, auto, is bf16 on CPUs
# with bf16 units; the check after the ISA loop holds the default to what `info` says it is)
out=$TMP/fox.png
if "$ZIMAGE" -m "$M" -p "a red fox in the snow, watercolor" -W 64 -H 64 --seed 42 --precision f32 -o "$out" > "$TMP/log" 2>&1 \
   && /usr/bin/python3 tests/png_check.py "$out" "$FIX/golden/e2e_turbo_fox_64x64.safetensors" f32/image_u8 1 0.01 > "$TMP/chk" 2>&1; then
  ok "fox PNG equals golden image_u8; $(head -1 "$TMP/chk")"
else
  bad "fox PNG vs golden: $(cat "$TMP/log" "$TMP/chk" 2>/dev/null)"
fi
if grep -q "seed 42" "$TMP/log" && grep -q "peak memory" "$TMP/log" && grep -q "text encoder" "$TMP/log"; then
  ok "summary printed (seed, timings, peak memory)"
else bad "summary: $(cat "$TMP/log")"; fi
if grep -q "a red fox in the snow, watercolor" "$TMP/chk" && grep -q "Seed: 42" "$TMP/chk"; then
  ok "PNG metadata readable by PIL"
else bad "PNG metadata: $(cat "$TMP/chk")"; fi

# GGUF components without a diffusers folder: the tiny DiT and text encoder written by
# `zimage quantize` as F32 GGUFs (ComfyUI / llama.cpp layouts; the text encoder carries the
# vocabulary, so no --tokenizer) reproduce the golden fox image
if "$ZIMAGE" quantize -i "$M" -o "$TMP/dit.gguf" --type f32 2>"$TMP/qlog" \
   && "$ZIMAGE" quantize -i "$M" -o "$TMP/te.gguf" --type f32 --component text-encoder 2>>"$TMP/qlog" \
   && grep -q "100%" "$TMP/qlog"; then ok "quantize writes DiT and text encoder GGUFs with a progress bar"
else bad "quantize: $(cat "$TMP/qlog")"; fi
expect_fail "quantize refuses to overwrite" "use --force" quantize -i "$M" -o "$TMP/dit.gguf" --type q8_0
expect_fail "quantize unknown type" "unknown type 'q9_9'" quantize -i "$M" -o "$TMP/x.gguf" --type q9_9
if "$ZIMAGE" quantize -i "$M" -o "$TMP/dit2.gguf" --type q4_k 2>/dev/null \
   && "$ZIMAGE" quantize -i "$M" -o "$TMP/dit2.gguf" --type q4_k --force --fast 2>/dev/null; then ok "quantize --force (--fast) overwrites"
else bad "quantize --force"; fi
if "$ZIMAGE" quantize -i "$M" -o "$TMP/t1.gguf" --type q5_1 -t 1 2>/dev/null \
   && "$ZIMAGE" quantize -i "$M" -o "$TMP/t3.gguf" --type q5_1 --threads 3 2>/dev/null \
   && cmp -s "$TMP/t1.gguf" "$TMP/t3.gguf"; then ok "quantize -t 1 and -t 3 write the same bytes"
else bad "quantize -t: outputs differ or failed"; fi
expect_fail "quantize bad thread count" "unknown or incomplete option '-t'" quantize -i "$M" -o "$TMP/t4.gguf" --type q8_0 -t 0
out=$TMP/fox-gguf.png
if "$ZIMAGE" --transformer "$TMP/dit.gguf" --text-encoder "$TMP/te.gguf" --vae "$M/vae" --precision f32 \
     -p "a red fox in the snow, watercolor" -W 64 -H 64 --seed 42 -o "$out" > "$TMP/log" 2>&1 \
   && /usr/bin/python3 tests/png_check.py "$out" "$FIX/golden/e2e_turbo_fox_64x64.safetensors" f32/image_u8 1 0.01 > "$TMP/chk" 2>&1; then
  ok "fox from --transformer X.gguf --text-encoder Y.gguf (no -m, no --tokenizer) equals golden image_u8"
else
  bad "fox from GGUF components: $(cat "$TMP/log" "$TMP/chk" 2>/dev/null)"
fi
# Q8_0 DiT + Q8_0 text encoder, weights kept quantized through the GEMM: not a golden (the
# weights differ by ~0.4%), a quality bound: measured max 2/255 vs the f32 image; a broken
# block layout or scale gives an unrelated image
out=$TMP/fox-q8.png
if "$ZIMAGE" quantize -i "$M" -o "$TMP/dit-q8.gguf" --type q8_0 2>/dev/null \
   && "$ZIMAGE" quantize -i "$M" -o "$TMP/te-q8.gguf" --type q8_0 --component text-encoder 2>/dev/null \
   && "$ZIMAGE" --transformer "$TMP/dit-q8.gguf" --text-encoder "$TMP/te-q8.gguf" --vae "$M/vae" \
     -p "a red fox in the snow, watercolor" -W 64 -H 64 --seed 42 -o "$out" > "$TMP/log" 2>&1 \
   && /usr/bin/python3 tests/png_check.py "$out" "$FIX/golden/e2e_turbo_fox_64x64.safetensors" f32/image_u8 6 0.5 > "$TMP/chk" 2>&1; then
  ok "fox from Q8_0 GGUFs within 6/255 of the f32 golden; $(head -1 "$TMP/chk")"
else
  bad "fox from Q8_0 GGUFs: $(cat "$TMP/log" "$TMP/chk" 2>/dev/null)"
fi
if "$ZIMAGE" tokenize --tokenizer "$TMP/te.gguf" "hello world" | grep -q "^2 tokens"; then ok "tokenize with a GGUF vocabulary"
else bad "tokenize --tokenizer te.gguf"; fi

# default seed is random and printed
if "$ZIMAGE" -m "$M" -p "x" -W 32 -H 32 -o "$TMP/r.png" 2>/dev/null | grep -Eq "seed [0-9]+"; then ok "random seed printed"
else bad "random seed not printed"; fi

# tokenize aid
if "$ZIMAGE" tokenize -m "$M" "hello world" | grep -q "^2 tokens"; then ok "tokenize"; else bad "tokenize"; fi

# prompt longer than the token limit: generated with a clear warning (upstream truncates silently)
long=$(printf 'word %.0s' $(seq 1 700))
if "$ZIMAGE" -m "$M" -p "$long" -W 32 -H 32 --seed 1 -o "$TMP/long.png" 2>&1 | grep -q "only the first 512 were used"; then
  ok "long prompt truncated with a warning"
else bad "long prompt: no truncation warning"; fi

# encode aid: template (8 tokens) + "a" + "cat"
if "$ZIMAGE" encode -m "$M" "a cat" | grep -q "^features \[10, 8\]"; then ok "encode"; else bad "encode"; fi
if ZIMAGE_MODEL=$M "$ZIMAGE" tokenize "a cat" | grep -q "8251"; then ok "ZIMAGE_MODEL default"; else bad "ZIMAGE_MODEL default"; fi

# img2img and inpainting reproduce diffusers' pipelines (goldens from tests/fixtures/make_imgcond_goldens.py)
IC=$FIX/imgcond
if "$ZIMAGE" -m "$M" -p "a red fox in the snow, watercolor" --init-img "$IC/init_64x64.png" --strength 0.6 --seed 42 \
     -t 1 --precision f32 -o "$TMP/i2i.png" > "$TMP/log" 2>&1 \
   && /usr/bin/python3 tests/png_check.py "$TMP/i2i.png" "$FIX/golden/img2img_fox_64x64.safetensors" f32/image_u8 1 0.01 > "$TMP/chk" 2>&1; then
  ok "img2img PNG equals golden; $(head -1 "$TMP/chk")"
else bad "img2img: $(cat "$TMP/log" "$TMP/chk" 2>/dev/null)"; fi
if "$ZIMAGE" -m "$M" -p "a red fox in the snow, watercolor" --init-img "$IC/init_64x64.png" --mask "$IC/mask_disc_64x64.png" \
     --seed 42 -t 1 --precision f32 -o "$TMP/inp.png" > "$TMP/log" 2>&1 \
   && /usr/bin/python3 tests/png_check.py "$TMP/inp.png" "$FIX/golden/inpaint_fox_64x64.safetensors" f32/image_u8 1 0.01 > "$TMP/chk" 2>&1; then
  ok "inpainting PNG equals golden; $(head -1 "$TMP/chk")"
else bad "inpainting: $(cat "$TMP/log" "$TMP/chk" 2>/dev/null)"; fi
if "$ZIMAGE" -m "$M" -p x --init-img "$IC/init_64x64.jpg" --strength 0.5 --seed 1 -t 1 -o "$TMP/jpg.png" 2>&1 | grep -q "64x64"; then
  ok "JPEG init image"
else bad "JPEG init image"; fi
if "$ZIMAGE" -m "$M" -p x --init-img "$IC/init_64x48.png" -W 32 -H 32 --seed 1 -t 1 -o "$TMP/fit.png" 2>&1 | grep -q "32x32"; then
  ok "init image resized/cropped to -W x -H"
else bad "init image fit"; fi
echo "not an image" > "$TMP/garbage.png"
expect_fail "init image missing" "cannot open" -m "$M" -p x --init-img "$TMP/none.png" -o "$TMP/a.png"
expect_fail "init image garbage" "not a PNG or JPEG" -m "$M" -p x --init-img "$TMP/garbage.png" -o "$TMP/a.png"
head -c 1000 "$IC/init_64x64.jpg" > "$TMP/trunc.jpg"
expect_fail "init image truncated JPEG" "corrupt JPEG" -m "$M" -p x --init-img "$TMP/trunc.jpg" -o "$TMP/a.png"
expect_fail "strength zero" "greater than 0" -m "$M" -p x --init-img "$IC/init_64x64.png" --strength 0
expect_fail "strength above 1" "between 0 and 1" -m "$M" -p x --init-img "$IC/init_64x64.png" --strength 1.5
expect_fail "strength without init image" "needs --init-img" -m "$M" -p x --strength 0.5
expect_fail "mask without init image" "needs --init-img" -m "$M" -p x --mask "$IC/mask_disc_64x64.png"
expect_fail "mask size mismatch" "must have the same size" -m "$M" -p x --init-img "$IC/init_64x64.png" --mask "$IC/mask_rect_64x48.png"
expect_fail "mask missing" "cannot open" -m "$M" -p x --init-img "$IC/init_64x64.png" --mask "$TMP/none.png"
expect_fail "mask blur without mask" "needs --mask" -m "$M" -p x --init-img "$IC/init_64x64.png" --mask-blur 4
expect_fail "mask blur negative" "between 0 and 256" -m "$M" -p x --init-img "$IC/init_64x64.png" --mask "$IC/mask_disc_64x64.png" --mask-blur -1

# LoRA: every key format built from the same factors gives the same image; scale 0 = no LoRA
L=$FIX/lora
lora_run() { "$ZIMAGE" -m "$M" -p "a red fox" -W 64 -H 64 --seed 3 -t 1 -o "$1" "${@:2}" > /dev/null 2>&1; }
if lora_run "$TMP/l_none.png" && lora_run "$TMP/l_zero.png" --lora "$L/lora_kohya.safetensors:0" \
   && lora_run "$TMP/l_peft.png" --lora "$L/lora_peft.safetensors" && lora_run "$TMP/l_kohya.png" --lora "$L/lora_kohya.safetensors:1.0" \
   && lora_run "$TMP/l_comfy.png" --lora "$L/lora_comfy.safetensors"; then
  if cmp -s "$TMP/l_none.png" "$TMP/l_zero.png"; then ok "LoRA scale 0 = no LoRA"; else bad "LoRA scale 0 changed the image"; fi
  if cmp -s "$TMP/l_peft.png" "$TMP/l_kohya.png" && cmp -s "$TMP/l_peft.png" "$TMP/l_comfy.png"; then ok "LoRA PEFT = kohya = ComfyUI"
  else bad "LoRA formats give different images"; fi
  if ! cmp -s "$TMP/l_none.png" "$TMP/l_peft.png"; then ok "LoRA changes the image"; else bad "LoRA had no effect"; fi
else bad "LoRA runs failed"; fi
if lora_run "$TMP/l_two.png" --lora "$L/lora_peft.safetensors:0.5" --lora "$L/lokr.safetensors"; then ok "two adapters (LoRA + LoKr)"
else bad "two adapters"; fi
expect_fail "LoRA missing" "cannot read" -m "$M" -p x --lora "$TMP/none.safetensors"
expect_fail "LoRA scale out of range" "between -100 and 100" -m "$M" -p x --lora "$L/lora_peft.safetensors:500"
expect_fail "LoRA for another model" "match no weight.*all_x_embedder.2-1.weight" -m "$M" -p x -W 32 -H 32 -o "$TMP/a.png" --lora "$L/merged_lora_f32.safetensors"
expect_fail "LoRA not a safetensors file" "LoRA" -m "$M" -p x -W 32 -H 32 -o "$TMP/a.png" --lora "$IC/init_64x64.png"
if "$ZIMAGE" -m "$M" -p x -W 32 -H 32 -t 1 -o "$TMP/len.png" --lora "$L/merged_lora_f32.safetensors" --lora-lenient 2>&1 | grep -q "warning: .*skipped 14 unmatched"; then
  ok "--lora-lenient warns and generates"
else bad "--lora-lenient"; fi
# text-encoder LoRAs (tiny Qwen3): scale 0 = none; PEFT keys = kohya keys (same factors); DiT + TE files together
if lora_run "$TMP/t_zero.png" --lora "$L/te_lora_kohya.safetensors:0" && lora_run "$TMP/t_kohya.png" --lora "$L/te_lora_kohya.safetensors" \
   && lora_run "$TMP/t_peft.png" --lora "$L/te_lora_peft.safetensors" \
   && lora_run "$TMP/t_both.png" --lora "$L/lora_kohya.safetensors" --lora "$L/te_lora_kohya.safetensors"; then
  if cmp -s "$TMP/l_none.png" "$TMP/t_zero.png"; then ok "TE LoRA scale 0 = no LoRA"; else bad "TE LoRA scale 0 changed the image"; fi
  if cmp -s "$TMP/t_kohya.png" "$TMP/t_peft.png"; then ok "TE LoRA PEFT = kohya"; else bad "TE LoRA formats give different images"; fi
  if ! cmp -s "$TMP/l_none.png" "$TMP/t_kohya.png" && ! cmp -s "$TMP/t_both.png" "$TMP/t_kohya.png" \
     && ! cmp -s "$TMP/t_both.png" "$TMP/l_kohya.png"; then ok "TE LoRA changes the image, DiT + TE adapters combine"
  else bad "TE LoRA had no effect"; fi
else bad "TE LoRA runs failed"; fi
# mk_lora OUT NAME:ROWS,COLS ... : a float32 safetensors file (python3 stdlib only)
mk_lora() {
  /usr/bin/python3 - "$@" <<'PY'
import json, struct, sys
hdr, off, blobs = {}, 0, []
for a in sys.argv[2:]:
    name, shp = a.rsplit(":", 1)
    shape = [int(x) for x in shp.split(",")]
    n = 1
    for d in shape: n *= d
    blobs.append(struct.pack("<%df" % n, *[0.01 * (i % 5) for i in range(n)]))
    hdr[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + 4 * n]}
    off += 4 * n
h = json.dumps(hdr).encode()
h += b" " * (-len(h) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
PY
}
mk_lora "$TMP/te_shape.safetensors" lora_te_layers_0_self_attn_q_proj.lora_down.weight:4,2560 lora_te_layers_0_self_attn_q_proj.lora_up.weight:4096,4
mk_lora "$TMP/te_other.safetensors" text_encoder.layers.30.mlp.up_proj.lora_A.weight:4,8 text_encoder.layers.30.mlp.up_proj.lora_B.weight:24,4
expect_fail "TE LoRA shape of another model" "lora_te_layers_0_self_attn_q_proj.lora_down.weight.*does not fit the text encoder.s weight layers.0.self_attn.q_proj" -m "$M" -p x -W 32 -H 32 -o "$TMP/a.png" --lora "$TMP/te_shape.safetensors"
expect_fail "TE LoRA for a deeper encoder" "match no weight.*text_encoder.layers.30.mlp.up_proj" -m "$M" -p x -W 32 -H 32 -o "$TMP/a.png" --lora "$TMP/te_other.safetensors"
# text-encoder LoRA on a Q8_0 GGUF text encoder (its o_proj is Q8_0): scale 0 = none, 1 changes the image
if "$ZIMAGE" quantize -i "$M" --component text-encoder --type q8_0 -o "$TMP/te_q8.gguf" > /dev/null 2>&1 \
   && lora_run "$TMP/q_none.png" --text-encoder "$TMP/te_q8.gguf" && lora_run "$TMP/q_zero.png" --text-encoder "$TMP/te_q8.gguf" --lora "$L/te_lora_kohya.safetensors:0" \
   && lora_run "$TMP/q_te.png" --text-encoder "$TMP/te_q8.gguf" --lora "$L/te_lora_kohya.safetensors"; then
  if cmp -s "$TMP/q_none.png" "$TMP/q_zero.png" && ! cmp -s "$TMP/q_none.png" "$TMP/q_te.png"; then ok "TE LoRA on a Q8_0 GGUF text encoder (scale 0 = none)"
  else bad "TE LoRA on a GGUF encoder: scale 0 differs or scale 1 had no effect"; fi
else bad "TE LoRA on a GGUF text encoder failed"; fi
# LoKr on a quantized (Q8_0 GGUF) transformer: scale 0 = none, scale 1 changes the image
G=$FIX/gguf/gguf_dit_q8_0_sdcpp.gguf
if lora_run "$TMP/g_none.png" --transformer "$G" && lora_run "$TMP/g_zero.png" --transformer "$G" --lora "$L/lokr.safetensors:0" \
   && lora_run "$TMP/g_lokr.png" --transformer "$G" --lora "$L/lokr.safetensors"; then
  if cmp -s "$TMP/g_none.png" "$TMP/g_zero.png" && ! cmp -s "$TMP/g_none.png" "$TMP/g_lokr.png"; then ok "LoKr on a Q8_0 GGUF (scale 0 = none)"
  else bad "LoKr on GGUF: scale 0 differs or scale 1 had no effect"; fi
else bad "LoKr on a GGUF transformer failed"; fi

# previews: a small PNG of the current estimate (1/8 size with the linear projection)
if "$ZIMAGE" -m "$M" -p x -W 64 -H 48 --seed 1 -t 1 --preview "$TMP/pv.png" --preview-every 2 -o "$TMP/pvo.png" 2>&1 | grep -q "previews: 4" \
   && /usr/bin/python3 -c "import sys; from PIL import Image; im = Image.open(sys.argv[1]); sys.exit(0 if im.size == (8, 6) else 1)" "$TMP/pv.png"; then
  ok "preview PNG written (8x6 for 64x48, 4 previews)"
else bad "preview"; fi
expect_fail "preview-every zero" "between 1 and 1000" -m "$M" -p x --preview "$TMP/p.png" --preview-every 0
expect_fail "preview-every without preview" "need --preview" -m "$M" -p x --preview-every 2
expect_fail "preview unwritable" "does not exist" -m "$M" -p x --preview /nonexistent-dir/p.png

# Ctrl-C stops cleanly between steps (exit 130, no output file)
"$ZIMAGE" -m "$M" -p x -W 1024 -H 1024 --steps 1000 -o "$TMP/int.png" > /dev/null 2> "$TMP/int.err" &
zpid=$!
sleep 3
kill -INT $zpid
wait $zpid
rc=$?
if [ $rc -eq 130 ] && grep -q interrupted "$TMP/int.err" && [ ! -e "$TMP/int.png" ]; then ok "Ctrl-C interrupts cleanly"
else bad "Ctrl-C: rc=$rc $(cat "$TMP/int.err")"; fi

# invalid inputs
expect_fail "width not multiple of 16" "multiple of 16" -m "$M" -p x -W 100
expect_fail "height not a number" "not an integer" -m "$M" -p x -H abc
expect_fail "size too large" "between 16 and 8192" -m "$M" -p x -W 9000
expect_fail "steps zero" "between 1 and 1000" -m "$M" -p x --steps 0
expect_fail "steps garbage" "not an integer" -m "$M" -p x --steps 3x
expect_fail "guidance negative" "between 0 and 100" -m "$M" -p x --guidance -1
expect_fail "seed negative" "non-negative integer" -m "$M" -p x --seed -5
expect_fail "max tokens zero" "between 1 and 1024" -m "$M" -p x --max-tokens 0
expect_fail "threads zero" "between 1 and 1024" -m "$M" -p x -t 0
expect_fail "bad precision" "not one of auto, f32, bf16, int8" -m "$M" -p x --precision f16
ZIMAGE_ISA=vax expect_fail "unknown ZIMAGE_ISA" "ZIMAGE_ISA=vax: unknown instruction set" -m "$M" -p x -o "$TMP/isa.png"
if "$ZIMAGE" info | grep -q "^path: "; then ok "info names the kernel path"; else bad "info names the kernel path"; fi
# every path this CPU supports (a SKIP names the others) gives a picture within 1 level of the default path's
for isa in c avx2 avx512 avx512bf16 amx; do
  if "$ZIMAGE" info | grep -Eq "^  $isa +available"; then
    if ZIMAGE_ISA=$isa "$ZIMAGE" -m "$M" -p "a red fox in the snow, watercolor" -W 64 -H 64 --seed 42 --precision f32 -o "$TMP/isa-$isa.png" >/dev/null 2>&1 &&
       /usr/bin/python3 - "$TMP/isa-$isa.png" "$TMP/fox.png" <<'PY'
import sys
from PIL import Image
a = Image.open(sys.argv[1]).tobytes(); b = Image.open(sys.argv[2]).tobytes()
sys.exit(0 if len(a) == len(b) and max(abs(x - y) for x, y in zip(a, b)) <= 1 else 1)
PY
    then ok "ZIMAGE_ISA=$isa: same picture (within 1 level)"; else bad "ZIMAGE_ISA=$isa: picture differs"; fi
  else
    echo "  SKIP ZIMAGE_ISA=$isa: not available on this CPU"
  fi
done
# no --precision: the mode `info` names for auto, byte for byte
auto=$("$ZIMAGE" info | sed -n 's/.*--precision auto = \([a-z0-9]*\).*/\1/p')
if [ -n "$auto" ] && "$ZIMAGE" -m "$M" -p "a red fox in the snow, watercolor" -W 64 -H 64 --seed 42 -o "$TMP/auto.png" >/dev/null 2>&1 &&
   "$ZIMAGE" -m "$M" -p "a red fox in the snow, watercolor" -W 64 -H 64 --seed 42 --precision "$auto" -o "$TMP/auto-x.png" >/dev/null 2>&1 &&
   /usr/bin/python3 -c 'import sys; from PIL import Image; sys.exit(Image.open(sys.argv[1]).tobytes() != Image.open(sys.argv[2]).tobytes())' "$TMP/auto.png" "$TMP/auto-x.png"
then ok "default precision is auto = $auto (info), same picture as --precision $auto"; else bad "default precision ('$auto' per info)"; fi
if "$ZIMAGE" -m "$M" -p "a red fox in the snow, watercolor" -W 64 -H 64 --seed 42 --precision bf16 -o "$TMP/bf16.png" >/dev/null 2>&1 &&
   /usr/bin/python3 - "$TMP/bf16.png" "$TMP/fox.png" <<'PY'
import sys
from PIL import Image
a = Image.open(sys.argv[1]).tobytes(); b = Image.open(sys.argv[2]).tobytes()
d = max(abs(x - y) for x, y in zip(a, b))
sys.exit(0 if len(a) == len(b) and 0 < d <= 10 else 1)  # bf16 differs from f32, within the docs/PRECISION.md bound (S = 101)
PY
then ok "--precision bf16: a different picture within 10 levels of f32"; else bad "--precision bf16"; fi
# the VAE's own setting: bf16 DiT + f32 VAE (the official inference.py) differs from all-bf16, and within 8 levels of f32
if "$ZIMAGE" -m "$M" -p "a red fox in the snow, watercolor" -W 64 -H 64 --seed 42 --precision bf16 --vae-precision f32 \
     -o "$TMP/bf16-vae32.png" >/dev/null 2>&1 &&
   /usr/bin/python3 - "$TMP/bf16-vae32.png" "$TMP/fox.png" "$TMP/bf16.png" <<'PY'
import sys
from PIL import Image
a, b, c = (Image.open(p).tobytes() for p in sys.argv[1:4])
d = max(abs(x - y) for x, y in zip(a, b))
sys.exit(0 if len(a) == len(b) and 0 < d <= 8 and a != c else 1)
PY
then ok "--vae-precision f32: the VAE leaves bf16 mode (differs from all-bf16, within 8 levels of f32)"; else bad "--vae-precision f32"; fi
expect_fail "bad vae precision" "not one of auto, f32, bf16" -m "$M" -p x --vae-precision f16
expect_fail "vae precision int8 refused" "not one of auto, f32, bf16" -m "$M" -p x --vae-precision int8
# int8 mode on a Q8_0 GGUF transformer: runs and writes a 64x64 picture (its numerics: golden-int8)
if "$ZIMAGE" -m "$M" --transformer "$FIX/gguf/gguf_dit_q8_0_sdcpp.gguf" -p "a red fox" -W 64 -H 64 --seed 42 \
     --precision int8 -o "$TMP/int8.png" >/dev/null 2>&1 &&
   /usr/bin/python3 -c 'import sys; from PIL import Image; sys.exit(0 if Image.open(sys.argv[1]).size == (64, 64) else 1)' "$TMP/int8.png"
then ok "--precision int8 on a Q8_0 GGUF transformer writes a 64x64 picture"; else bad "--precision int8"; fi
if "$ZIMAGE" info | grep -q "^--precision int8: "; then ok "info names the int8 GEMM"; else bad "info names the int8 GEMM"; fi
expect_fail "unwritable output" "does not exist" -m "$M" -p x -o /nonexistent-dir/x.png
expect_fail "no prompt" "no prompt" -m "$M"
expect_fail "no model" "no model" -p x
expect_fail "unknown option" "unknown option" -m "$M" -p x --frobnicate
expect_fail "missing value" "needs a value" -m "$M" -p
expect_fail "model folder missing" "does not exist" -m "$TMP/nope" -p x -o "$TMP/a.png"
mkdir -p "$TMP/partial" && cp -r "$M/transformer" "$TMP/partial/"
expect_fail "missing components listed" "text encoder: .*text_encoder" -m "$TMP/partial" -p x -o "$TMP/a.png"
mkdir -p "$TMP/broken" && cp -r "$M"/* "$TMP/broken/" && echo '{"dim": 64,' > "$TMP/broken/transformer/config.json"
expect_fail "corrupt config.json" "config.json: invalid JSON" -m "$TMP/broken" -p x -o "$TMP/a.png"
mkdir -p "$TMP/te" && cp -r "$M"/* "$TMP/te/"
head -c 40 "$M/text_encoder/config.json" > "$TMP/te/text_encoder/config.json"
expect_fail "truncated text encoder config.json" "text_encoder/config.json: invalid JSON" encode -m "$TMP/te" "a cat"
echo '{"hidden_size": "eight"}' > "$TMP/te/text_encoder/config.json"
expect_fail "malformed text encoder config.json" "hidden_size" encode -m "$TMP/te" "a cat"
cp "$M/text_encoder/config.json" "$TMP/te/text_encoder/config.json"
head -c 100000 "$M/tokenizer/tokenizer.json" > "$TMP/te/tokenizer/tokenizer.json"
expect_fail "truncated tokenizer.json" "tokenizer.json" tokenize -m "$TMP/te" "a cat"
echo '{"model": {"type": "BPE", "vocab": 5}}' > "$TMP/te/tokenizer/tokenizer.json"
expect_fail "malformed tokenizer.json" "vocab" tokenize -m "$TMP/te" "a cat"
echo '{"num_train_timesteps": 1000, "shift": -3}' > "$TMP/broken/scheduler/scheduler_config.json"
cp "$M/transformer/config.json" "$TMP/broken/transformer/config.json"
expect_fail "bad scheduler shift" "shift" -m "$TMP/broken" -p x -o "$TMP/a.png"
expect_fail "invalid UTF-8 prompt" "UTF-8" -m "$M" -p $'\xff\xfe' -W 32 -H 32 -o "$TMP/a.png"

echo "cli: $pass passed, $fail failed"
[ $fail -eq 0 ]
