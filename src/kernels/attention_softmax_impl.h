/* attention_softmax_impl.h - the tile sizes and the online-softmax row update shared by the
 * fp32 (attention_impl.h) and bf16 (attention_bf16_impl.h) flash-attention templates; needs
 * vec_<isa>.h first. */
#ifndef ZI_ATTENTION_SOFTMAX_IMPL_H
#define ZI_ATTENTION_SOFTMAX_IMPL_H

#include <math.h>

#define ATT_FBQ (KN_MR * 8) /* queries per work item (8 microkernel row panels) */
#define ATT_FBK 128          /* keys per tile (a multiple of KN_NR) */

/* Online-softmax update of score row s[0..nk) whose first `lim` entries are visible:
 * s <- exp(scale*s - new_max) (0 past lim); rescales the output row o[0..hd). rb: store s as bf16. */
static void att_softmax_row(float *s, int64_t nk, int64_t lim, float scale, float *mx, float *sum, float *o, int hd,
                            int rb) {
    const vf vs = v_set1(scale), ninf = v_set1(-INFINITY);
    vf vmax = ninf;
    for (int64_t j = 0; j < lim; j += KN_VW) {
        vf x = v_mul(v_load_n(s + j, lim - j), vs);
        v_store(s + j, x); /* s has FBK >= j + VW floats */
        vmax = v_max(vmax, v_blend_n(ninf, x, lim - j));
    }
    float bmax = v_hmax(vmax);
    float nmax = bmax > *mx ? bmax : *mx;
    float corr = *mx == -INFINITY ? 0.0f : expf(*mx - nmax);
    const vf vn = v_set1(nmax);
    vf vsum = v_zero();
    for (int64_t j = 0; j < nk; j += KN_VW) {
        vf p = v_blend_n(v_zero(), v_exp(v_sub(v_load(s + j), vn)), lim - j);
        vsum = v_add(vsum, p);
        v_store(s + j, rb ? v_round_bf16(p) : p); /* bf16 mode: P enters P.V as bf16, the sum stays f32 */
    }
    *sum = *sum * corr + v_hsum(vsum);
    *mx = nmax;
    if (corr != 1.0f) {
        const vf vc = v_set1(corr);
        for (int e = 0; e < hd; e += KN_VW) v_store_n(o + e, v_mul(v_load_n(o + e, hd - e), vc), hd - e);
    }
}

#endif
