/* vec_avx512.h - the AVX-512 vector vocabulary the kernel templates (*_impl.h) are written in.
 *
 * Included only by the *_avx512.c translation units, which are compiled with
 * -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mf16c (Makefile). One vector = 16 floats;
 * the GEMM microkernel is 14 rows x 32 columns (28 accumulators + 2 B + 1 broadcast = 31 zmm).
 * The same names exist in vec_avx2.h (8 floats, 6 x 16 tile) and vec_generic.h (portable). */
#ifndef ZI_VEC_AVX512_H
#define ZI_VEC_AVX512_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define KN_VW 16 /* floats per vector */
#define KN_MR 14 /* microkernel rows (broadcast operand) */
#define KN_NR 32 /* microkernel columns (two vectors) */
#define KN_FN(name) name##_avx512
#define KN_INLINE static inline __attribute__((always_inline))

typedef __m512 vf;

KN_INLINE __mmask16 v_mask(int64_t n) {
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}
KN_INLINE vf v_zero(void) { return _mm512_setzero_ps(); }
KN_INLINE vf v_set1(float x) { return _mm512_set1_ps(x); }
KN_INLINE vf v_load(const float *p) { return _mm512_loadu_ps(p); }
/* first n lanes from p (memory past them untouched), the rest 0 */
KN_INLINE vf v_load_n(const float *p, int64_t n) { return _mm512_maskz_loadu_ps(v_mask(n), p); }
KN_INLINE void v_store(float *p, vf v) { _mm512_storeu_ps(p, v); }
KN_INLINE void v_store_n(float *p, vf v, int64_t n) { _mm512_mask_storeu_ps(p, v_mask(n), v); }
KN_INLINE vf v_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
KN_INLINE vf v_add(vf a, vf b) { return _mm512_add_ps(a, b); }
KN_INLINE vf v_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
KN_INLINE vf v_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
KN_INLINE vf v_div(vf a, vf b) { return _mm512_div_ps(a, b); }
KN_INLINE vf v_max(vf a, vf b) { return _mm512_max_ps(a, b); }
/* lanes < n from b, the others from a */
KN_INLINE vf v_blend_n(vf a, vf b, int64_t n) { return _mm512_mask_mov_ps(a, v_mask(n), b); }
KN_INLINE float v_hsum(vf v) { return _mm512_reduce_add_ps(v); }
KN_INLINE float v_hmax(vf v) { return _mm512_reduce_max_ps(v); }
KN_INLINE void v_prefetch(const void *p) { _mm_prefetch((const char *)p, _MM_HINT_T0); }

/* expf(x): x = n ln2 + r (|r| <= ln2/2), degree-7 Taylor on r, scaled by 2^n with vscalefps
 * (correct underflow to denormals/0, overflow to inf). Max error ~1 ulp; NaN propagates. */
KN_INLINE vf v_exp(vf x) {
    x = _mm512_max_ps(_mm512_set1_ps(-110.0f), x); /* NaN in x propagates (second operand) */
    x = _mm512_min_ps(_mm512_set1_ps(89.0f), x);
    vf n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    vf r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
    vf p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* Round to bfloat16 (nearest even), kept as f32 with zero low bits; NaN stays NaN. */
KN_INLINE vf v_round_bf16(vf v) {
    __m512i b = _mm512_castps_si512(v);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_and_si512(_mm512_add_epi32(b, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))),
                                 _mm512_set1_epi32((int)0xffff0000u));
    __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    return _mm512_mask_mov_ps(_mm512_castsi512_ps(r), nan, v);
}

/* 16 elements of dtype dt (0 = F32, 1 = BF16, 2 = F16; matches zi_dtype) as floats. */
KN_INLINE vf v_load_dt(const void *p, int dt) {
    if (dt == 1)
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
    if (dt == 2) return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_loadu_ps(p);
}
/* the first n elements (others 0, memory past them untouched) */
KN_INLINE vf v_load_dt_n(const void *p, int dt, int64_t n) {
    __mmask16 m = v_mask(n);
    if (dt == 1)
        return _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, (const __m256i *)p)), 16));
    if (dt == 2) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const __m256i *)p));
    return _mm512_maskz_loadu_ps(m, p);
}

/* In-register transpose of 16 vectors of 16 floats: r[i][j] -> r[j][i]. */
KN_INLINE void v_transpose(vf r[16]) {
    vf t[16], u[16];
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
        vf v0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88), v1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xDD);
        vf w0 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
        vf w1 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xDD);
        r[0 + j] = _mm512_shuffle_f32x4(v0, w0, 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(v0, w0, 0xDD);
        r[4 + j] = _mm512_shuffle_f32x4(v1, w1, 0x88);
        r[12 + j] = _mm512_shuffle_f32x4(v1, w1, 0xDD);
    }
}

/* sum of x[j]^2 over j < n in double (two fixed 8-lane partial sums, then the tail). */
KN_INLINE double v_sumsq_f64(const float *x, int64_t n) {
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        __m512d x0 = _mm512_cvtps_pd(_mm256_loadu_ps(x + j)), x1 = _mm512_cvtps_pd(_mm256_loadu_ps(x + j + 8));
        a0 = _mm512_fmadd_pd(x0, x0, a0);
        a1 = _mm512_fmadd_pd(x1, x1, a1);
    }
    double ss = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
    for (; j < n; j++) ss += (double)x[j] * x[j];
    return ss;
}

#endif
