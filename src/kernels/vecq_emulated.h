/* vecq_emulated.h - the integer vocabulary of gemm_q8_impl.h as plain C: 16 int32 lanes and
 * vpdpbusd (u8 x s8 quads summed into int32) emulated exactly, with the blocking of the
 * AVX512-VNNI instance (8 x 32 tile). gemm_q8_generic.c uses it: the portable int8 path, and
 * the test of the VNNI kernel's packing and blocking on CPUs without VNNI. */
#ifndef ZI_VECQ_EMULATED_H
#define ZI_VECQ_EMULATED_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define KQ_VW 16
#define KQ_NV 2
#define KQ_MR 8
#define KQ_G 4
#define KQ_ABIAS 128
#define KN_FN(name) name##_generic

typedef struct { int32_t l[KQ_VW]; } qi;
typedef struct { float l[KQ_VW]; } qf;

static inline qi qi_zero(void) { qi r; memset(&r, 0, sizeof r); return r; }
static inline qi qi_bcast(uint32_t a) { qi r; for (int l = 0; l < KQ_VW; l++) r.l[l] = (int32_t)a; return r; }
static inline qi qi_loadw(const uint32_t *p) { qi r; memcpy(r.l, p, sizeof r.l); return r; }
static inline qi qi_sub(qi a, qi b) { for (int l = 0; l < KQ_VW; l++) a.l[l] -= b.l[l]; return a; }
/* vpdpbusd: acc[l] += sum over the 4 bytes e of u8(a[l].e) * s8(b[l].e) */
static inline qi qi_dot(qi acc, qi a, qi b) {
    for (int l = 0; l < KQ_VW; l++) {
        uint32_t x = (uint32_t)a.l[l], w = (uint32_t)b.l[l];
        for (int e = 0; e < 4; e++) acc.l[l] += (int32_t)(uint8_t)(x >> (8 * e)) * (int32_t)(int8_t)(uint8_t)(w >> (8 * e));
    }
    return acc;
}
static inline qf qf_load(const float *p) { qf r; memcpy(r.l, p, sizeof r.l); return r; }
static inline void qf_store(float *p, qf v) { memcpy(p, v.l, sizeof v.l); }
static inline qf qf_set1(float x) { qf r; for (int l = 0; l < KQ_VW; l++) r.l[l] = x; return r; }
static inline qf qf_mul(qf a, qf b) { for (int l = 0; l < KQ_VW; l++) a.l[l] = a.l[l] * b.l[l]; return a; }
static inline qf qf_fma(qf a, qf b, qf c) { for (int l = 0; l < KQ_VW; l++) c.l[l] = fmaf(a.l[l], b.l[l], c.l[l]); return c; }
/* c - a * b, rounded once */
static inline qf qf_fnma(qf a, qf b, qf c) { for (int l = 0; l < KQ_VW; l++) c.l[l] = fmaf(-a.l[l], b.l[l], c.l[l]); return c; }
static inline qf qf_cvt(qi a) { qf r; for (int l = 0; l < KQ_VW; l++) r.l[l] = (float)a.l[l]; return r; }

#endif
