/* eltwise_impl.h - elementwise kernel template (SiLU/SwiGLU, the conv input transform of the VAE,
 * the sum of squares of RMSNorm), instantiated per ISA by eltwise_<isa>.c after vec_<isa>.h.
 * Single-threaded building blocks: ops.c and conv.c split the work into fixed chunks. */
#include "impl.h"

/* gate[i] = silu(gate[i]) * (up ? up[i] : 1); silu(v) = v / (1 + exp(-v)) */
void KN_FN(kn_silu_mul)(float *gate, const float *up, int64_t n) {
    const vf one = v_set1(1.0f);
    for (int64_t i = 0; i < n; i += KN_VW) {
        int64_t m = n - i;
        vf g = v_load_n(gate + i, m), u = up ? v_load_n(up + i, m) : one;
        vf e = v_exp(v_sub(v_zero(), g));
        v_store_n(gate + i, v_mul(v_div(g, v_add(one, e)), u), m);
    }
}

/* d[c] = silu?(s[c]*sc[c] + sh[c]) (sc NULL: no affine), the same formula as silu_mul */
void KN_FN(kn_affine_row)(float *d, const float *s, const float *sc, const float *sh, int cin, int silu) {
    const vf one = v_set1(1.0f);
    for (int c = 0; c < cin; c += KN_VW) {
        int64_t m = cin - c;
        vf v = v_load_n(s + c, m);
        if (sc) v = v_add(v_mul(v, v_load_n(sc + c, m)), v_load_n(sh + c, m));
        if (silu) v = v_div(v, v_add(one, v_exp(v_sub(v_zero(), v))));
        v_store_n(d + c, v, m);
    }
}

double KN_FN(kn_sumsq)(const float *x, int64_t n) { return v_sumsq_f64(x, n); }
