/* vec_generic.h - the portable vector vocabulary (GCC/Clang vector extensions, no intrinsics).
 *
 * Included only by the *_generic.c translation units, compiled without ISA flags: the compiler
 * maps the 4-float vectors to SSE2 on baseline x86-64 and to NEON on aarch64. Tile 6 x 8
 * (12 accumulators + 2 B + 1 broadcast = 15 of 16 xmm). This is the path for CPUs without AVX2
 * and for other architectures. */
#ifndef ZI_VEC_GENERIC_H
#define ZI_VEC_GENERIC_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../common/dtype.h"

#define KN_VW 4
#define KN_MR 6
#define KN_NR 8
#define KN_FN(name) name##_generic
#define KN_INLINE static inline __attribute__((always_inline))

typedef float vf __attribute__((vector_size(16), aligned(4)));

KN_INLINE vf v_zero(void) { return (vf){0}; }
KN_INLINE vf v_set1(float x) { return (vf){x, x, x, x}; }
KN_INLINE vf v_load(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}
KN_INLINE vf v_load_n(const float *p, int64_t n) {
    if (n >= 4) return v_load(p);
    vf v = {0};
    if (n > 0) memcpy(&v, p, (size_t)n * 4);
    return v;
}
KN_INLINE void v_store(float *p, vf v) { memcpy(p, &v, sizeof v); }
KN_INLINE void v_store_n(float *p, vf v, int64_t n) {
    if (n > 0) memcpy(p, &v, (size_t)(n < 4 ? n : 4) * 4);
}
KN_INLINE vf v_fma(vf a, vf b, vf c) { return a * b + c; }
KN_INLINE vf v_add(vf a, vf b) { return a + b; }
KN_INLINE vf v_sub(vf a, vf b) { return a - b; }
KN_INLINE vf v_mul(vf a, vf b) { return a * b; }
KN_INLINE vf v_div(vf a, vf b) { return a / b; }
/* max(a, b) with b returned when either is NaN (as maxps does) */
KN_INLINE vf v_max(vf a, vf b) {
    vf r;
    for (int i = 0; i < 4; i++) r[i] = a[i] > b[i] ? a[i] : b[i];
    return r;
}
KN_INLINE vf v_blend_n(vf a, vf b, int64_t n) {
    vf r = a;
    for (int i = 0; i < 4 && i < n; i++) r[i] = b[i];
    return r;
}
KN_INLINE float v_hsum(vf v) { return (v[0] + v[2]) + (v[1] + v[3]); }
KN_INLINE float v_hmax(vf v) {
    float m = v[0];
    for (int i = 1; i < 4; i++) m = v[i] > m ? v[i] : m;
    return m;
}
KN_INLINE void v_prefetch(const void *p) { __builtin_prefetch(p); }
KN_INLINE vf v_exp(vf x) {
    vf r;
    for (int i = 0; i < 4; i++) r[i] = expf(x[i]);
    return r;
}

KN_INLINE vf v_round_bf16(vf v) {
    vf r;
    for (int i = 0; i < 4; i++) r[i] = zi_bf16_to_f32(zi_f32_to_bf16(v[i]));
    return r;
}

KN_INLINE vf v_load_dt(const void *p, int dt) {
    if (dt == 0) return v_load(p);
    uint16_t h[4];
    memcpy(h, p, sizeof h);
    vf r;
    for (int i = 0; i < 4; i++) r[i] = dt == 1 ? zi_bf16_to_f32(h[i]) : zi_f16_to_f32(h[i]);
    return r;
}
KN_INLINE vf v_load_dt_n(const void *p, int dt, int64_t n) {
    if (n >= 4) return v_load_dt(p, dt);
    if (dt == 0) return v_load_n(p, n);
    uint16_t h[4] = {0};
    if (n > 0) memcpy(h, p, (size_t)n * 2);
    return v_load_dt(h, dt);
}

KN_INLINE void v_transpose(vf r[4]) {
    vf t[4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) t[j][i] = r[i][j];
    for (int i = 0; i < 4; i++) r[i] = t[i];
}

/* bf16 pairs (gemm_bf16_impl.h): an exact emulation of vdpbf16ps, so the bf16 GEMM's packing
 * and driver run (and are tested) on every CPU. Each bf16 product is exact in f32; like the
 * instruction, the odd product is added first, each addition rounded once. */
#define KN_HAVE_BF16PAIR 1
typedef struct {
    uint32_t p[4];
} vp;
KN_INLINE vp vp_load(const uint32_t *s) {
    vp v;
    memcpy(v.p, s, sizeof v.p);
    return v;
}
KN_INLINE vp vp_bcast(uint32_t x) { return (vp){{x, x, x, x}}; }
KN_INLINE vf v_dpbf16(vf acc, vp a, vp b) {
    for (int l = 0; l < 4; l++) {
        float a0 = zi_bf16_to_f32((uint16_t)(a.p[l] & 0xffff)), a1 = zi_bf16_to_f32((uint16_t)(a.p[l] >> 16));
        float b0 = zi_bf16_to_f32((uint16_t)(b.p[l] & 0xffff)), b1 = zi_bf16_to_f32((uint16_t)(b.p[l] >> 16));
        acc[l] = fmaf(a0, b0, fmaf(a1, b1, acc[l]));
    }
    return acc;
}

KN_INLINE double v_sumsq_f64(const float *x, int64_t n) {
    double ss = 0;
    for (int64_t j = 0; j < n; j++) ss += (double)x[j] * x[j];
    return ss;
}

#endif
