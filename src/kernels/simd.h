/* simd.h - private AVX-512 building blocks shared by matmul.c and ops.c.
 *
 * - kn_ukr: the register-blocked fp32 microkernel C[14 x 32] (+)= A[14 x k] . B[k x 32]
 *   (A broadcast one element at a time, B read as two 16-lane rows per k). The GEMM
 *   (matmul.c) feeds it packed panels; attention (ops.c) feeds it Q/P tiles and K^T/V.
 * - kn_exp512: vectorized expf (~1 ulp), used by softmax and SiLU.
 * - kn_transpose16: 16x16 float transpose used by the packing routines.
 * - kn_gemm_patches / kn_packw: the conv layer's implicit GEMM (defined in matmul.c).
 *
 * Not part of the public API: include only from the .c files in src/kernels/. Everything here is
 * compiled only when the compiler targets AVX-512F/BW/VL (-march=native here);
 * the .c files carry portable scalar fallbacks. */
#ifndef ZI_KERNELS_SIMD_H
#define ZI_KERNELS_SIMD_H

#include <stdint.h>

#include <stddef.h>

#include "kernels.h"

/* Scratch buffers (64-byte aligned) kept in a small process-wide pool and reused across
 * calls: fresh pages cost one page fault each, which is expensive (notably in VMs) when a
 * 65 MB attention buffer or 2 MB packing buffers are allocated per call. Thread-safe.
 * kn_scratch_get returns NULL when out of memory. Defined in matmul.c. */
void *kn_scratch_get(size_t n);
void kn_scratch_put(void *p);

/* Implicit GEMM for the convs (defined in matmul.c, used by conv.c). The A operand is the
 * patch matrix of a staged, already padded/transformed input, never materialized: row i
 * (output pixel oy = i / Wo, ox = i % Wo) at column k (tap ky = k / (kw*cin), then kx, cin
 * channel) reads x[((oy*s + ky)*sw + ox*s)*cin + k - ky*kw*cin], i.e. each kernel row
 * is one run of kw*cin contiguous floats of x[rows, sw, cin]. A 1x1 conv is kw = s = 1,
 * sw = Wo. */
typedef struct {
    const float *x; /* staged input [rows, sw, cin] */
    int64_t sw, cin, Wo;
    int kw, s;
} kn_patch_src;

/* Floats needed by kn_packw for W [N, K] (0 without AVX-512: the GEMM then takes W as is). */
size_t kn_packw_floats(int64_t N, int64_t K);
/* Pack all of W once (f32 panels, bf16/f16 converted) for kn_gemm_patches, K blocked
 * within runs of `run` = kw*cin columns (K must be a multiple of run); parallel. */
void kn_packw(float *bp, const kn_mat *W, int64_t run);
/* y[M, N] (row stride N) = patches(A)[M, K] . W[N, K]^T + bias (acc = 0), or
 * y += patches . W^T + bias (acc = 1). bpw: kn_packw(W) output, or NULL for the portable
 * path. Each output element is one fixed-order FMA chain: deterministic for any thread
 * count. */
void kn_gemm_patches(float *y, const kn_patch_src *A, int64_t M, const float *bpw, const kn_mat *W,
                     const float *bias, int acc);

#define KN_MR 14 /* microkernel rows (broadcast operand) */
#define KN_NR 32 /* microkernel columns (two 16-float vectors) */

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#define KN_HAVE_AVX512 1

#define KN_INLINE static inline __attribute__((always_inline))

/* C[i, 0..31] for i < mr:  mode 0: C = acc (+ bias[0..31] if bias), mode 1: C += acc,
 * mode 2: C += acc (+ bias) (the first K block of an accumulating GEMM), where
 *   acc[i, j] = sum_{k < kc} A(i, k) * B(k, j),  A(i, k) = a[i*a_rs + k*a_ks],  B(k, j) = b[k*ldb + j].
 * Rows i in [mr, 14) of A must be readable (packed panels are zero-padded there); their results
 * are dropped. Columns: m0/m1 mask the two 16-lane halves for C stores and bias loads; with
 * bmask set B rows are read with the same masks (B not padded, e.g. V rows), otherwise
 * 32 floats per B row must be readable. Summation order over k is sequential (deterministic).
 *
 * This is the fp32 FMA path: 28 accumulators, 2 B loads + 14 broadcasts per k step. A bf16
 * (vdpbf16ps) or int8 (vpdpbusd) microkernel would keep this interface but consume k in pairs
 * (quads) from a B panel packed as [k/2][32][2] by the packing routine in matmul.c. */
KN_INLINE void kn_ukr(int64_t kc, const float *a, int64_t a_rs, int64_t a_ks, const float *b, int64_t ldb, float *c,
                      int64_t ldc, int mr, __mmask16 m0, __mmask16 m1, int bmask, int mode, const float *bias) {
    __m512 x0[KN_MR], x1[KN_MR];
    /* the C tile is usually far away (L3/DRAM): start fetching it now, used after the k loop */
#ifndef KN_NO_PREFETCH_C
    for (int i = 0; i < mr; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 16), _MM_HINT_T0);
    }
#endif
#pragma GCC unroll 14
    for (int i = 0; i < KN_MR; i++) x0[i] = x1[i] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; k++) {
        __m512 b0, b1;
        if (bmask) {
            b0 = _mm512_maskz_loadu_ps(m0, b);
            b1 = _mm512_maskz_loadu_ps(m1, b + 16);
        } else {
            b0 = _mm512_loadu_ps(b);
            b1 = _mm512_loadu_ps(b + 16);
        }
#pragma GCC unroll 14
        for (int i = 0; i < KN_MR; i++) {
            __m512 av = _mm512_set1_ps(a[i * a_rs]);
            x0[i] = _mm512_fmadd_ps(av, b0, x0[i]);
            x1[i] = _mm512_fmadd_ps(av, b1, x1[i]);
        }
        a += a_ks;
        b += ldb;
    }
    __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
    if (mode != 1 && bias) {
        bias0 = _mm512_maskz_loadu_ps(m0, bias);
        bias1 = _mm512_maskz_loadu_ps(m1, bias + 16);
    }
#pragma GCC unroll 14
    for (int i = 0; i < KN_MR; i++) {
        if (i >= mr) break;
        float *ci = c + i * ldc;
        if (mode == 0) {
            _mm512_mask_storeu_ps(ci, m0, _mm512_add_ps(x0[i], bias0));
            _mm512_mask_storeu_ps(ci + 16, m1, _mm512_add_ps(x1[i], bias1));
        } else if (mode == 1) {
            _mm512_mask_storeu_ps(ci, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, ci), x0[i]));
            _mm512_mask_storeu_ps(ci + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, ci + 16), x1[i]));
        } else {
            _mm512_mask_storeu_ps(ci, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, ci), _mm512_add_ps(x0[i], bias0)));
            _mm512_mask_storeu_ps(ci + 16, m1,
                                  _mm512_add_ps(_mm512_maskz_loadu_ps(m1, ci + 16), _mm512_add_ps(x1[i], bias1)));
        }
    }
}

/* Lane masks for the first n (0..32) columns of a 32-wide tile. */
KN_INLINE void kn_masks32(int64_t n, __mmask16 *m0, __mmask16 *m1) {
    *m0 = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
    *m1 = n >= 32 ? (__mmask16)0xFFFF : n <= 16 ? (__mmask16)0 : (__mmask16)((1u << (n - 16)) - 1u);
}

/* expf(x) for 16 lanes: range reduction x = n ln2 + r (|r| <= ln2/2), degree-7 Taylor on r,
 * scaled by 2^n with vscalefps (correct underflow to denormals/0, overflow to inf).
 * Max error ~1 ulp; NaN propagates; -inf -> 0. */
KN_INLINE __m512 kn_exp512(__m512 x) {
    x = _mm512_max_ps(_mm512_set1_ps(-110.0f), x); /* NaN in x propagates (second operand) */
    x = _mm512_min_ps(_mm512_set1_ps(89.0f), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* In-register transpose of 16 vectors of 16 floats: r[i][j] -> r[j][i]. */
KN_INLINE void kn_transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        __m512d a0 = _mm512_castps_pd(t[4 * i]), a1 = _mm512_castps_pd(t[4 * i + 1]);
        __m512d a2 = _mm512_castps_pd(t[4 * i + 2]), a3 = _mm512_castps_pd(t[4 * i + 3]);
        u[4 * i + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
        u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
        u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
        u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
    }
    /* u[4i + j] lane l holds column 4l + j of rows 4i..4i+3 */
    for (int j = 0; j < 4; j++) {
        __m512 v0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88), v1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xDD);
        __m512 w0 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
        __m512 w1 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xDD);
        r[0 + j] = _mm512_shuffle_f32x4(v0, w0, 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(v0, w0, 0xDD);
        r[4 + j] = _mm512_shuffle_f32x4(v1, w1, 0x88);
        r[12 + j] = _mm512_shuffle_f32x4(v1, w1, 0xDD);
    }
}

/* 16 elements of type dt (0 = F32, 1 = BF16, 2 = F16; matches zi_dtype) at p, as floats. */
KN_INLINE __m512 kn_load16(const void *p, int dt) {
    if (dt == 1)
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
    if (dt == 2) return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_loadu_ps(p);
}

/* Same with a lane mask (lanes outside are 0, memory outside not touched). */
KN_INLINE __m512 kn_load16_mask(const void *p, int dt, __mmask16 m) {
    if (dt == 1)
        return _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, (const __m256i *)p)), 16));
    if (dt == 2) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const __m256i *)p));
    return _mm512_maskz_loadu_ps(m, p);
}
/* Pack one panel of up to 14 rows for kn_ukr's A operand (a_rs = 1, a_ks = 14):
 *   dst[k*14 + i] = src[i*ld + k] for i < nrows (0 for nrows <= i < 14), k < kc. */
KN_INLINE void kn_pack_panel14(float *dst, const float *src, int64_t ld, int64_t nrows, int64_t kc) {
    for (int64_t k = 0; k < kc; k += 16) {
        int64_t kk = kc - k < 16 ? kc - k : 16;
        __mmask16 km = (__mmask16)(kk == 16 ? 0xFFFF : (1u << kk) - 1u);
        __m512 r[16];
        for (int i = 0; i < 16; i++) {
            if (i >= nrows) {
                r[i] = _mm512_setzero_ps();
                continue;
            }
            const float *p = src + i * ld + k;
            r[i] = kk == 16 ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(km, p);
        }
        kn_transpose16(r);
        for (int64_t q = 0; q < kk; q++) _mm512_mask_storeu_ps(dst + (k + q) * KN_MR, (__mmask16)0x3FFF, r[q]);
    }
}
#endif /* AVX-512 */

#endif
