/* dispatch.c - the kernel entry points of kernels.h that depend on the instruction set:
 * matmul (kn_linear, kn_gemm_nt), attention, SiLU/SwiGLU. Each picks the implementation table
 * (impl.h) of the calling thread's path and passes it the thread count; the tables come from
 * the per-ISA files gemm_<isa>.c, attention_<isa>.c, eltwise_<isa>.c.
 *
 * Paths: avx512 -> 14x32 zmm fp32 microkernel; avx2 -> 6x16 ymm; c -> portable 4-float vectors.
 * kn_linear with few rows (M <= KN_SMALLM_MAX_M) runs the small-M GEMM (gemm_smallm_<isa>.c) instead.
 * In the bf16 precision mode, kn_linear runs on AMX tiles on amx, on vdpbf16ps on avx512bf16,
 * on an exact emulation of vdpbf16ps on c, and on the fp32 kernels with rounded
 * inputs on avx2/avx512 (no bf16 units there). Attention in bf16 mode runs on AMX tiles on amx,
 * on vdpbf16ps on avx512bf16 (its emulation on c), on the fp32 kernels with rounded inputs on
 * avx2/avx512. In the int8 precision mode, kn_linear on block-quantized weights (M > 4) runs the
 * int8-activation GEMM (gemm_q8.h: amx-int8 / avx512vnni / avx2 / portable), everything else as bf16. */
#include <stdlib.h>
#include <string.h>

#include "../common/error.h"
#include "gemm_q8.h"
#include "impl.h"

#define KN_TABLE(isa, bf16, att_bf16, conv_bf16_fn)                                                           \
    {                                                                                                         \
        .name = #isa, .gemm = kn_gemm_##isa, .gemm_bf16 = bf16, .attention_bf16 = att_bf16, .conv_bf16 = conv_bf16_fn, .packw_floats = kn_packw_floats_##isa, .packw = kn_packw_##isa, \
        .gemm_patches = kn_gemm_patches_##isa, .attention = kn_attention_##isa, .silu_mul = kn_silu_mul_##isa, \
        .affine_row = kn_affine_row_##isa, .sumsq = kn_sumsq_##isa,                                            \
        .gemm_smallm = kn_gemm_smallm_##isa                                                                   \
    }

static const kn_impl kn_impl_generic = KN_TABLE(generic, kn_gemm_bf16_generic, kn_attention_bf16_generic, NULL);
#if defined(__x86_64__)
static const kn_impl kn_impl_avx2 = KN_TABLE(avx2, NULL, NULL, NULL);
static const kn_impl kn_impl_avx512 = KN_TABLE(avx512, NULL, NULL, NULL);
static const kn_impl kn_impl_avx512bf16 = KN_TABLE(avx512, kn_gemm_bf16_avx512bf16, kn_attention_bf16_avx512bf16, NULL);
static const kn_impl kn_impl_amx = KN_TABLE(avx512, kn_gemm_bf16_amx, kn_attention_bf16_amx, kn_conv_bf16_amx);
#endif

const kn_impl *kn_impl_get(void) {
#if defined(__x86_64__)
    switch (kn_get_isa()) {
    case KN_ISA_AMX: return &kn_impl_amx;
    case KN_ISA_AVX512BF16: return &kn_impl_avx512bf16;
    case KN_ISA_AVX512: return &kn_impl_avx512;
    case KN_ISA_AVX2: return &kn_impl_avx2;
    default: break;
    }
#endif
    return &kn_impl_generic;
}

const char *kn_kernel_name(void) { return kn_impl_get()->name; }

int kn_has_bf16_units(void) {
#if defined(__x86_64__)
    const kn_impl *im = kn_impl_get();
    return im == &kn_impl_avx512bf16 || im == &kn_impl_amx;
#else
    return 0;
#endif
}

const char *kn_bf16_describe(void) {
    switch (kn_get_isa()) {
    case KN_ISA_AMX:
        return "GEMM and attention on AMX tiles (TDPBF16PS); stride-1 VAE convs with channels in multiples of 32\n"
               "  as one implicit GEMM on the tiles, the other convs as row GEMMs";
    case KN_ISA_AVX512BF16: return "GEMM and attention on vdpbf16ps";
    case KN_ISA_C: return "GEMM and attention on an exact emulation of vdpbf16ps";
    default: return "GEMM and attention on the fp32 kernels with bf16-rounded inputs (no bf16 units)";
    }
}

const char *kn_int8_describe(void) {
    const char *name;
    kn_gemm_q8_get(ZI_Q4_K, &name);
    return name;
}

/* ---------------------------------------------------------------- weight sources */

kn_wsrc kn_wsrc_of_mat(const kn_mat *W) {
    kn_wsrc B = {W->data, W->dtype, zi_dtype_row_bytes(W->dtype, W->cols), W->scale, 0, 0};
    int native = W->dtype == ZI_F32 || W->dtype == ZI_BF16 || W->dtype == ZI_F16;
    B.direct = native && (W->scale == 0.0f || W->scale == 1.0f);
    B.es = native ? zi_dtype_size(W->dtype) : 0;
    return B;
}

kn_wsrc kn_wsrc_f32(const float *B, int64_t ldb) {
    kn_wsrc s = {B, ZI_F32, (size_t)ldb * sizeof(float), 0.0f, 1, sizeof(float)};
    return s;
}

void kn_wsrc_to_f32(const kn_wsrc *B, int64_t row, int64_t col, int64_t n, float *dst) {
    zi_convert_to_f32(dst, kn_wsrc_at(B, row, col), B->dt, (size_t)n);
    if (B->scale != 0.0f && B->scale != 1.0f)
        for (int64_t i = 0; i < n; i++) dst[i] *= B->scale;
}

/* ---------------------------------------------------------------- matmul */

/* Rows of x up to which kn_linear takes the small-M GEMM (gemm_smallm_impl.h: W streamed once, no
 * packing) instead of the packed GEMM. Measured (PERF.md entry 22, Zen 3 avx2, BF16 and Q8_0 weights at
 * the text encoder's shapes): 2-3x faster at M = 1 (adaLN, timestep), 1.2-1.8x at M = 4..16, a tie at
 * M = 20 (both reach the same FMA rate: compute-bound there), 5-30% slower from M = 24 (the packed
 * microkernel's 6 x 16 tile reuses more per load). In bf16 mode on paths with bf16 units (gemm_bf16)
 * the small-M kernel is only used up to M = 4, as before. */
#define KN_SMALLM_MAX_M 20

/* y += scale * (x . A^T) . B^T for each low-rank adapter of W */
static int kn_lowrank_apply(const kn_impl *im, float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M,
                            const kn_mat *W, int T) {
    for (int l = 0; l < W->n_lora; l++) {
        const kn_lowrank *lr = &W->lora[l];
        if (lr->rank <= 0 || lr->scale == 0.0f) continue;
        float *t = kn_scratch_get(sizeof(float) * (size_t)M * (size_t)lr->rank);
        if (!t) return zi_err("out of memory for a LoRA product (%lld x %d)", (long long)M, lr->rank);
        kn_wsrc A = kn_wsrc_f32(lr->a, W->cols), Bm = kn_wsrc_f32(lr->b, lr->rank);
        int rc = im->gemm(t, lr->rank, x, ldx, M, lr->rank, W->cols, &A, NULL, 0, 0, T); // [M, K] x [r, K]^T
        if (!rc) {
            for (int64_t i = 0; i < M * lr->rank; i++) t[i] *= lr->scale;
            rc = im->gemm(y, ldy, t, lr->rank, M, W->rows, lr->rank, &Bm, NULL, 1, 0, T); // += [M, r] x [N, r]^T
        }
        kn_scratch_put(t);
        if (rc) return -1;
    }
    return 0;
}

int kn_linear_strided(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M, const kn_mat *W,
                      const float *bias) {
    const kn_impl *im = kn_impl_get();
    int T = kn_get_threads();
    kn_wsrc B = kn_wsrc_of_mat(W);
    kn_precision prec = kn_get_precision();
    int bf16 = prec == KN_PREC_BF16 || prec == KN_PREC_INT8;
    if (prec == KN_PREC_INT8 && M > 4 && kn_q8_kind(W->dtype) && W->cols % 32 == 0 &&
        (W->scale == 0.0f || W->scale == 1.0f)) { /* int8 mode: block-quantized W on int8 units */
        if (kn_gemm_q8_get(W->dtype, NULL)(y, ldy, x, ldx, M, W->rows, W->cols, &B, bias, 0, T)) return -1;
    } else if (bf16 && im->gemm_bf16 && M > 4) {
        if (im->gemm_bf16(y, ldy, x, ldx, M, W->rows, W->cols, &B, bias, 0, T)) return -1;
    } else if (M <= KN_SMALLM_MAX_M) {
        if (im->gemm_smallm(y, ldy, x, ldx, M, W->rows, W->cols, &B, bias, 0, bf16, T)) return -1;
    } else if (im->gemm(y, ldy, x, ldx, M, W->rows, W->cols, &B, bias, 0, bf16, T)) {
        return -1;
    }
    return W->n_lora > 0 ? kn_lowrank_apply(im, y, ldy, x, ldx, M, W, T) : 0;
}

int kn_linear(float *y, const float *x, int64_t M, const kn_mat *W, const float *bias) {
    return kn_linear_strided(y, W->rows, x, W->cols, M, W, bias);
}

int kn_gemm_nt(float *C, int64_t ldc, const float *A, int64_t lda, const float *B, int64_t ldb, int64_t M,
               int64_t N, int64_t K) {
    kn_wsrc src = kn_wsrc_f32(B, ldb);
    return kn_impl_get()->gemm(C, ldc, A, lda, M, N, K, &src, NULL, 0, 0, kn_get_threads()); /* 0: f32 */
}

/* ---------------------------------------------------------------- attention, activations */

int kn_attention(float *out, int64_t ldo, const float *q, int64_t ldq, const float *k, int64_t ldk, const float *v,
                 int64_t ldv, int64_t Lq, int64_t Lk, int n_heads, int n_kv_heads, int hd, float scale, int causal) {
    if (Lq <= 0) return 0;
    if (n_heads <= 0 || hd <= 0 || n_kv_heads <= 0 || n_heads % n_kv_heads)
        return zi_err("attention: %d heads, %d kv heads, head dim %d: invalid", n_heads, n_kv_heads, hd);
    const kn_impl *im = kn_impl_get();
    int bf16 = kn_get_precision() != KN_PREC_F32; /* bf16 and int8 modes */
    if (bf16 && im->attention_bf16)
        return im->attention_bf16(out, ldo, q, ldq, k, ldk, v, ldv, Lq, Lk, n_heads, n_kv_heads, hd, scale, causal,
                                  kn_get_threads());
    return im->attention(out, ldo, q, ldq, k, ldk, v, ldv, Lq, Lk, n_heads, n_kv_heads, hd, scale, causal, bf16,
                         kn_get_threads());
}

/* Elementwise ops run over 4096-element chunks so chunk boundaries (and results) don't
 * depend on the thread count. */
#define OPS_CHUNK 4096

static void kn_silu_mul(float *gate, const float *up, int64_t n) {
    const kn_impl *im = kn_impl_get();
    int64_t nch = (n + OPS_CHUNK - 1) / OPS_CHUNK;
#pragma omp parallel for num_threads(kn_get_threads()) schedule(static) if (n > 65536)
    for (int64_t c = 0; c < nch; c++) {
        int64_t i = c * OPS_CHUNK, len = n - i < OPS_CHUNK ? n - i : OPS_CHUNK;
        im->silu_mul(gate + i, up ? up + i : NULL, len);
    }
}

void kn_silu(float *x, int64_t n) { kn_silu_mul(x, NULL, n); }

void kn_swiglu(float *gate, const float *up, int64_t n) { kn_silu_mul(gate, up, n); }
