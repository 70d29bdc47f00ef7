/* vec_avx2.h - the AVX2 + FMA vector vocabulary the kernel templates (*_impl.h) are written in.
 *
 * Included only by the *_avx2.c translation units, compiled with -mavx2 -mfma -mf16c (Makefile).
 * One vector = 8 floats; the GEMM microkernel is 6 rows x 16 columns (12 accumulators + 2 B +
 * 1 broadcast = 15 of the 16 ymm registers). AVX2 has no mask registers: partial loads and
 * stores use vmaskmovps with a lane-index compare (bf16/f16 tails go through a small copy). */
#ifndef ZI_VEC_AVX2_H
#define ZI_VEC_AVX2_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define KN_VW 8
#define KN_MR 6
#define KN_NR 16
#define KN_FN(name) name##_avx2
#define KN_INLINE static inline __attribute__((always_inline))

typedef __m256 vf;

/* all-ones in lanes < n */
KN_INLINE __m256i v_mask(int64_t n) {
    int32_t c = n < 0 ? 0 : n > 8 ? 8 : (int32_t)n;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(c), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
KN_INLINE vf v_zero(void) { return _mm256_setzero_ps(); }
KN_INLINE vf v_set1(float x) { return _mm256_set1_ps(x); }
KN_INLINE vf v_load(const float *p) { return _mm256_loadu_ps(p); }
KN_INLINE vf v_load_n(const float *p, int64_t n) {
    return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, v_mask(n));
}
KN_INLINE void v_store(float *p, vf v) { _mm256_storeu_ps(p, v); }
KN_INLINE void v_store_n(float *p, vf v, int64_t n) {
    if (n >= 8)
        _mm256_storeu_ps(p, v);
    else
        _mm256_maskstore_ps(p, v_mask(n), v);
}
KN_INLINE vf v_fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
KN_INLINE vf v_add(vf a, vf b) { return _mm256_add_ps(a, b); }
KN_INLINE vf v_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
KN_INLINE vf v_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
KN_INLINE vf v_div(vf a, vf b) { return _mm256_div_ps(a, b); }
KN_INLINE vf v_max(vf a, vf b) { return _mm256_max_ps(a, b); }
KN_INLINE vf v_blend_n(vf a, vf b, int64_t n) { return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(v_mask(n))); }
KN_INLINE float v_hsum(vf v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
KN_INLINE float v_hmax(vf v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
KN_INLINE void v_prefetch(const void *p) { _mm_prefetch((const char *)p, _MM_HINT_T0); }

/* expf(x): x = n ln2 + r (|r| <= ln2/2), degree-7 Taylor on r, times 2^n applied as two
 * factors 2^(n/2) 2^(n - n/2) built in the exponent field (so the result may be a denormal).
 * Below -104 the result is 0, above ln(FLT_MAX) +inf; max error ~1 ulp; NaN propagates. */
KN_INLINE vf v_exp(vf x) {
    vf tiny = _mm256_cmp_ps(x, _mm256_set1_ps(-104.0f), _CMP_LT_OQ);
    vf big = _mm256_cmp_ps(x, _mm256_set1_ps(88.72283935546875f), _CMP_GT_OQ);
    x = _mm256_max_ps(_mm256_set1_ps(-104.0f), x); /* NaN in x propagates (second operand) */
    x = _mm256_min_ps(_mm256_set1_ps(88.72283935546875f), x);
    vf n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    vf r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187045e-06f), r);
    vf p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i ni = _mm256_cvtps_epi32(n), n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    __m256i bias = _mm256_set1_epi32(127);
    vf s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    vf s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    vf res = _mm256_andnot_ps(tiny, _mm256_mul_ps(_mm256_mul_ps(p, s1), s2));
    return _mm256_blendv_ps(res, _mm256_set1_ps(__builtin_inff()), big);
}

/* Round to bfloat16 (nearest even), kept as f32 with zero low bits; NaN stays NaN. */
KN_INLINE vf v_round_bf16(vf v) {
    __m256i b = _mm256_castps_si256(v);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(b, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_and_si256(_mm256_add_epi32(b, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))),
                                 _mm256_set1_epi32((int)0xffff0000u));
    return _mm256_blendv_ps(_mm256_castsi256_ps(r), v, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
}

KN_INLINE vf v_load_dt(const void *p, int dt) {
    if (dt == 1)
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
    if (dt == 2) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    return _mm256_loadu_ps(p);
}
KN_INLINE vf v_load_dt_n(const void *p, int dt, int64_t n) {
    if (n >= 8) return v_load_dt(p, dt);
    if (dt == 0) return v_load_n(p, n);
    uint16_t tmp[8] = {0};
    if (n > 0) memcpy(tmp, p, (size_t)n * 2);
    __m128i h = _mm_loadu_si128((const __m128i *)tmp);
    return dt == 1 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)) : _mm256_cvtph_ps(h);
}

/* In-register transpose of 8 vectors of 8 floats. */
KN_INLINE void v_transpose(vf r[8]) {
    vf t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int j = 0; j < 4; j++) {
        r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
        r[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
    }
}

KN_INLINE double v_sumsq_f64(const float *x, int64_t n) {
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256d x0 = _mm256_cvtps_pd(_mm_loadu_ps(x + j)), x1 = _mm256_cvtps_pd(_mm_loadu_ps(x + j + 4));
        a0 = _mm256_fmadd_pd(x0, x0, a0);
        a1 = _mm256_fmadd_pd(x1, x1, a1);
    }
    __m256d a = _mm256_add_pd(a0, a1);
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    double ss = _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
    for (; j < n; j++) ss += (double)x[j] * x[j];
    return ss;
}

#endif
