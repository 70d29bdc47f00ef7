/* golden.h - shared plumbing of the golden-test runner (zimage-golden).
 *
 * The runner scans <fixtures>/golden/<case>.json, dispatches each manifest on its
 * "kind" to a golden_run_<kind>() function (one file per kind, registered in the
 * table of golden_kinds.c), and counts results. A kind function compares every
 * output tensor it can produce with golden_check(), which prints one line per
 * tensor with the max error.
 *
 * The runner is strict (tests/golden/runner_test.py proves each rule):
 *   - an unknown kind, a manifest without a file, or a case that checked nothing FAILs;
 *   - every tensor of the case file must be touched through golden_tensor/golden_find/
 *     golden_input/golden_check*: anything left over is listed and FAILs the case;
 *   - a case runs exactly the precisions its manifest's "models" lists (c->variants);
 *   - NaN or Inf on either side of a comparison FAILs;
 *   - a sub-check that cannot be set up calls golden_fail();
 *   - zero cases run (empty folder, -k matching nothing) exits non-zero. */
#ifndef ZI_GOLDEN_H
#define ZI_GOLDEN_H

#include <jansson.h>
#include <stdint.h>

#include "../../src/io/safetensors.h"

enum { GOLDEN_PASS = 0, GOLDEN_FAIL = 1 };

/* --precision bf16: the text encoder, DiT and VAE run in the kernels' bf16 mode (inputs of every
 * matmul/attention/conv product rounded to bfloat16, f32 accumulation, as the pipeline runs them
 * with the default vae_precision). The goldens are f32 computations, so every float comparison
 * then takes the bf16 bound below in addition to the manifest tolerance, and uint8 images may
 * differ by up to ceil(255 * bound) levels. Derivation (docs/PRECISION.md): one bf16-rounded
 * product carries a relative error <= u = 2^-8 (2^-9 for each rounded input); errors of S
 * sequential rounded stages that mix into one output grow like sqrt(S) u relative to the tensor's
 * scale, so |got - want| <= sqrt(S) * 2^-8 * max|want|. S on the longest input-to-output path of
 * the tiny fixture models: <= 64 through the text encoder and DiT (embedders, 2 refiner + 2 main
 * layers of attention and FFN, or 2 Qwen3 layers, times at most 8 Euler steps through the latent);
 * 37 through the VAE decoder (conv_in, mid block 2 + 4 (attention q/k/v, QK^T, PV, out) + 2,
 * 4 up blocks x 3 resnets x 2 convs, 3 upsampler convs, conv_out) and 29 through the encoder
 * (conv_in, 4 x 2 resnets x 2 convs, 3 downsamplers, mid block 8, conv_out). So S = 64 for every
 * tensor but images decoded after the DiT (GOLDEN_BF16_S_IMAGE = 64 + 37 = 101), img2img latents
 * (GOLDEN_BF16_S_IMG2IMG = 29 + 64 = 93) and img2img images (29 + 64 + 37 = 130). A case sets
 * golden_case.bf16_stages (0: 64) around such checks. Fixed before running; not fitted. */
extern int golden_bf16;
#define GOLDEN_BF16_STAGES 64
#define GOLDEN_BF16_S_IMAGE 101
#define GOLDEN_BF16_S_IMG2IMG 93
#define GOLDEN_BF16_S_IMG2IMG_IMAGE 130
/* sqrt(S) * 2^-8 (S = 64: 2^-5) */
double golden_bf16_bound(int stages);
/* --precision int8 (only the GGUF DiT cases, gguf_dit_*): block-quantized matmuls on the int8
 * GEMM, everything else in bf16 (golden_bf16 is set too). The goldens are f32 computations on the
 * same dequantized weights, so the only new error is the int8 rounding of activations: per block
 * of 32, |x - d q| <= d / 2 = max|x_block| / 254, a relative error <= 1/254 of the block's scale
 * per matmul input (exact int32 products, f32 accumulation: nothing else changes); bf16-rounded
 * stages carry <= 2^-8 < 1/254. With the same S <= 64 stages as above, |got - want| <=
 * sqrt(64) / 254 * max|want| = 0.0315 * max|want| (docs/PRECISION.md). Not fitted to the results.
 * Each variant is also run in plain bf16 mode and must differ (proof that the int8 path ran). */
extern int golden_int8;
#define GOLDEN_INT8_BOUND (8.0 / 254.0)

#define GOLDEN_MAX_VARIANTS 8

typedef struct {
    const char *fixtures; /* fixtures root directory */
    const char *name;     /* case name */
    json_t *manifest;
    zi_st_file st;        /* the case's tensors */
    unsigned char *used;  /* [st.n_tensors]: compared or declared an input */
    const char *variants[GOLDEN_MAX_VARIANTS]; /* keys of manifest "models", in file order */
    int n_variants;
    int n_checked, n_failed;
    int bf16_stages; /* rounded stages behind the tensors checked now (bf16 mode; 0: GOLDEN_BF16_STAGES) */
} golden_case;

typedef struct {
    const char *kind;
    int (*run)(golden_case *);
} golden_kind;

/* The registry (golden_kinds.c): one row per kind, terminated by {NULL, NULL}. */
extern const golden_kind golden_kinds[];

/* Path of the model folder a variant ("f32"/"bf16"/"any") used, resolved against the fixtures dir. */
int golden_model_path(golden_case *c, const char *variant, char *out, size_t cap);
/* The tensor `name` of the case (NULL + message if missing); marks it used. */
const zi_tensor *golden_tensor(golden_case *c, const char *name);
/* Optional tensor: NULL (no message) if absent; marks it used when present. */
const zi_tensor *golden_find(golden_case *c, const char *name);
/* Declare `name` an input of the computation (same as golden_tensor, reads clearer). */
const zi_tensor *golden_input(golden_case *c, const char *name);
/* A sub-check could not be set up (or failed outside golden_check*): prints a FAIL
 * line "label: message" and counts a failed check. Returns GOLDEN_FAIL. */
int golden_fail(golden_case *c, const char *label, const char *fmt, ...);
/* Same, converted to a new f32 array; optionally returns numel. */
float *golden_f32(golden_case *c, const char *name, int64_t *numel);
/* Manifest tolerance {atol, rtol} when numeric; leaves the defaults passed in otherwise. */
void golden_tol(golden_case *c, double *atol, double *rtol);
/* Numbers from manifest params. */
json_t *golden_param(golden_case *c, const char *key);
/* Integer param in [lo, hi] (an array element when index >= 0); golden_fail + -1 otherwise. */
int golden_param_int(golden_case *c, const char *key, int index, long long lo, long long hi, long long *out);

/* Compare got[n] with tensor `name`: |got-want| <= atol + rtol*|want| everywhere.
 * Prints a PASS/FAIL line with max abs error and returns 0 (pass) or 1 (fail). */
int golden_check(golden_case *c, const char *name, const float *got, int64_t n, double atol, double rtol);
/* Compare two arrays directly (label is printed). */
int golden_check_vals(golden_case *c, const char *label, const float *got, const float *want, int64_t n,
                      double atol, double rtol);
/* uint8 image check: max |diff| <= max_diff and at most frac of values differing. */
int golden_check_u8(golden_case *c, const char *name, const uint8_t *got, int64_t n, int max_diff, double frac);
/* Exact integer check. */
int golden_check_i32(golden_case *c, const char *name, const int32_t *got, int64_t n);
/* Print a note line for the case. */
void golden_note(golden_case *c, const char *fmt, ...);

/* One entry per kind; a kind returns GOLDEN_PASS/FAIL. */
int golden_run_dit_forward(golden_case *c);
int golden_run_rope(golden_case *c);
int golden_run_qwen3(golden_case *c);
int golden_run_scheduler(golden_case *c);
int golden_run_torch_randn(golden_case *c);
int golden_run_vae_decode(golden_case *c);
int golden_run_vae_encode(golden_case *c);
int golden_run_end_to_end(golden_case *c);
int golden_run_img2img(golden_case *c); /* golden_img2img.c */
int golden_run_inpaint(golden_case *c); /* golden_img2img.c (same runner, with a mask) */
int golden_run_gguf_dequant(golden_case *c);
/* tokenizer_cases.json (not a manifest; absent: FAIL): returns GOLDEN_* and prints per-case lines. */
int golden_run_tokenizer(const char *fixtures, int *n_pass, int *n_fail);

#endif
