/* ukr_bf16_impl.h - the register-blocked microkernel on bf16 pairs (vdpbf16ps or its exact
 * emulation), shared by the bf16 GEMM (gemm_bf16_impl.h) and the bf16 attention
 * (attention_bf16_impl.h). A "pair" is two bfloat16 values of consecutive k in one 32-bit lane
 * (even k in the low half); the instruction multiplies lane-wise pairs and adds both products
 * to an f32 lane: acc[l] += a.lo * b[l].lo + a.hi * b[l].hi. Needs vec_<isa>.h with
 * KN_HAVE_BF16PAIR. */
#ifndef ZI_UKR_BF16_IMPL_H
#define ZI_UKR_BF16_IMPL_H

#include "impl.h"
#include "ukr_impl.h"

static inline uint32_t mb_pair(float lo, float hi) {
    return (uint32_t)zi_f32_to_bf16(lo) | ((uint32_t)zi_f32_to_bf16(hi) << 16);
}

/* MR x NR tile (C modes of mm_tile_store) from kc2 pairs of A and a pair B panel:
 *   A pair (i, kp) = a[i*a_rs + kp*a_ks]  (a packed panel: a_rs = 1, a_ks = MR; a row-major
 *   pair matrix: a_rs = its row length, a_ks = 1), B pair (kp, j) = b[kp*NR + j].
 * Rows [mr, MR) of A must be readable; their results are dropped. */
KN_INLINE void mb_ukr(int64_t kc2, const uint32_t *a, int64_t a_rs, int64_t a_ks, const uint32_t *b, float *c,
                      int64_t ldc, int mr, int64_t n, int mode, const float *bias) {
    vf x0[KN_MR], x1[KN_MR];
#pragma GCC unroll 16
    for (int i = 0; i < KN_MR; i++) x0[i] = x1[i] = v_zero();
    for (int64_t kp = 0; kp < kc2; kp++) {
        vp b0 = vp_load(b), b1 = vp_load(b + KN_VW);
#pragma GCC unroll 16
        for (int i = 0; i < KN_MR; i++) {
            vp av = vp_bcast(a[i * a_rs]);
            x0[i] = v_dpbf16(x0[i], av, b0);
            x1[i] = v_dpbf16(x1[i], av, b1);
        }
        a += a_ks;
        b += KN_NR;
    }
    mm_tile_store(c, ldc, mr, n, mode, bias, x0, x1);
}

#endif
