/* kernels.h - the compute layer: matmul, attention, norms, RoPE, activations.
 *
 * This is the only place with SIMD and threads (OpenMP). Model code (dit/, text/, vae/) calls
 * these on plain row-major float32 activations; weights are views (kn_mat) on mmapped data of
 * any stored format, converted on the fly inside the matmul, so a CUDA or other backend can
 * slot in behind the same calls. The implementation is chosen at run time per instruction set
 * (cpu.c; files gemm_<isa>.c, attention_<isa>.c, eltwise_<isa>.c). Threads and instruction set
 * are settings of the calling thread (set by the API entry points from the model's settings),
 * never process-wide state. Results are deterministic for a given instruction set.
 * Functions returning int return 0, or -1 with a message (zi_err) when out of memory. */
#ifndef ZI_KERNELS_H
#define ZI_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "../common/dtype.h"

/* A low-rank adapter applied at run time: W_eff = W + scale * B . A, with A [rank, cols] and
 * B [rows, rank] in float32 (LoRA on weights that cannot be merged densely, e.g. quantized). */
typedef struct kn_lowrank {
    const float *a, *b;
    int rank;
    float scale;
} kn_lowrank;

/* A weight matrix W [rows = out features, cols = in features], row-major. The one weight type of
 * model code: dtype is F32/BF16/F16 or a block-quantized type (dtype.h); rows are
 * zi_dtype_row_bytes(dtype, cols) apart. scale (0 = none) multiplies every element (scaled fp8);
 * lora/n_lora: run-time low-rank adapters added to x . W^T. */
typedef struct {
    zi_dtype dtype;
    int64_t rows, cols;
    const void *data;
    float scale;
    const kn_lowrank *lora;
    int n_lora;
} kn_mat;

/* Instruction-set paths, worst to best (cpu.c). */
typedef enum { KN_ISA_C = 0, KN_ISA_AVX2, KN_ISA_AVX512, KN_ISA_AVX512BF16, KN_ISA_AMX, KN_ISA_COUNT } kn_isa;
const char *kn_isa_name(kn_isa isa); /* "c", "avx2", "avx512", "avx512bf16", "amx" */
int kn_isa_parse(const char *s, kn_isa *out);
/* 1 if this CPU/OS can run the path; otherwise 0 and *why (if why) says what is missing. */
int kn_isa_supported(kn_isa isa, const char **why);
kn_isa kn_isa_best(void);
/* 1 if the CPU has AVX512-VNNI (the int8 precision mode's matmuls use vpdpbusd on AVX-512 paths). */
int kn_cpu_has_avx512vnni(void);
/* 1 if the amx path is usable and the CPU has AMX-INT8 (the int8 mode then runs on TDPBSSD tiles). */
int kn_cpu_has_amx_int8(void);
/* The process default: ZIMAGE_ISA if set and supported, else the best. -1 (with the reason,
 * *out = best) when ZIMAGE_ISA names an unknown or unsupported path. */
int kn_isa_default(kn_isa *out);
/* CPU name, features found and every path's availability, one per line. */
void kn_cpu_describe(char *buf, size_t n);

/* Settings of the calling thread (the API sets them from the model on every call). */
void kn_set_threads(int n); /* <= 0: all cores */
int kn_get_threads(void);
void kn_set_isa(kn_isa isa); /* must be supported; default: kn_isa_default */
kn_isa kn_get_isa(void);
/* Arithmetic of matmuls and attention on this thread: f32 (inputs as stored/computed), or bf16
 * (inputs of every product rounded to bfloat16, accumulation, softmax and everything else in
 * f32: the numerics of a bf16 Linear / attention with f32 accumulation). Convs ignore it. */
typedef enum { KN_PREC_F32 = 0, KN_PREC_BF16, KN_PREC_INT8 } kn_precision;
/* KN_PREC_INT8: matmuls whose weights are block-quantized (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K,
 * Q3_K, Q4_K, Q5_K, Q6_K) run on int8 units with activations quantized per block of 32 (gemm_q8.h); everything
 * else as in bf16. */
void kn_set_precision(kn_precision p);
kn_precision kn_get_precision(void);
/* Name of the fp32 kernel family actually used for GEMM/attention/conv on this thread. */
const char *kn_kernel_name(void);
/* 1 if this thread's path runs the bf16 mode's matmuls on bf16 dot-product units (faster than
 * f32), 0 if the bf16 mode would only round inputs on the f32 units. */
int kn_has_bf16_units(void);
/* Where the bf16 precision mode's GEMM and attention run on the calling thread's path, in words. */
const char *kn_bf16_describe(void);
/* Where the int8 precision mode's quantized matmuls run on the calling thread's path, in words. */
const char *kn_int8_describe(void);

/* y[M, N] = x[M, K] . W[N, K]^T (+ bias[N] if not NULL) (+ W's low-rank adapters).
 * N = W->rows, K = W->cols. */
int kn_linear(float *y, const float *x, int64_t M, const kn_mat *W, const float *bias);
/* Same, for x rows with a stride (elements between rows) and y rows with a stride. */
int kn_linear_strided(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M, const kn_mat *W,
                      const float *bias);
/* Plain f32 GEMM: C[M, N] = A[M, K] . B[N, K]^T (row-major, leading dims lda/ldb/ldc), in f32
 * whatever the precision mode (LoRA merges: a one-off product that must not round to bf16). */
int kn_gemm_nt(float *C, int64_t ldc, const float *A, int64_t lda, const float *B, int64_t ldb, int64_t M,
               int64_t N, int64_t K);
/* Scratch buffers: the library's one pool of big temporary buffers (scratch.c), used by the
 * kernels inside a call and by model code for activations (the VAE). kn_scratch_get: n bytes,
 * 64-byte aligned, reused across calls; NULL with a message ("out of memory allocating 64.0 MiB
 * for scratch") when out of memory. kn_scratch_put (NULL ok) hands it back. kn_scratch_trim
 * releases every idle buffer (between pipeline stages, at the end of a VAE call). */
void *kn_scratch_get(size_t n);
void kn_scratch_put(void *p);
void kn_scratch_trim(void);
/* Bytes of pooled buffers now handed out (busy) and kept idle (tests: nothing stays busy). */
void kn_scratch_stats(size_t *busy, size_t *idle);

/* RMSNorm over rows of length D: y = x * rsqrt(mean(x^2) + eps) * g  (g may be NULL). In-place ok. */
void kn_rmsnorm(float *y, const float *x, int64_t M, int64_t D, const float *g, float eps);
/* LayerNorm without affine over rows of length D (biased variance). In-place ok. */
void kn_layernorm(float *y, const float *x, int64_t M, int64_t D, float eps);

/* Elementwise */
void kn_silu(float *x, int64_t n);
/* gate[i] = silu(gate[i]) * up[i] */
void kn_swiglu(float *gate, const float *up, int64_t n);

/* RoPE on L rows of n_heads heads of dim hd, row stride ld (elements).
 * Interleaved pairs (x[2p], x[2p+1]) - the DiT layout; cos/sin are [L, hd/2]. */
void kn_rope_interleaved(float *x, int64_t L, int n_heads, int hd, int64_t ld, const float *cos, const float *sin);
/* Half-split "rotate_half" (x[p], x[p+hd/2]) - the Qwen3 layout; cos/sin are [L, hd/2]. */
void kn_rope_halfsplit(float *x, int64_t L, int n_heads, int hd, int64_t ld, const float *cos, const float *sin);

/* Multi-head attention, flash-style (online softmax over key tiles; never an L x L matrix).
 * q: [Lq, *] with head h at columns h*hd (row stride ldq); k, v: [Lk, *] with kv head g at
 * columns g*hd (row strides ldk, ldv); out: [Lq, n_heads*hd] (row stride ldo).
 * Query head h uses kv head h / (n_heads / n_kv_heads). causal: query i sees keys <= i. */
int kn_attention(float *out, int64_t ldo, const float *q, int64_t ldq, const float *k, int64_t ldk,
                  const float *v, int64_t ldv, int64_t Lq, int64_t Lk, int n_heads, int n_kv_heads, int hd,
                  float scale, int causal);

#endif
