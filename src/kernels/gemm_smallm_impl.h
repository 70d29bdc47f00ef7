/* gemm_smallm_impl.h - the small-M GEMM template: y[M, N] (+)= x[M, K] . W[N, K]^T (+ bias) for a
 * few rows of x (the text encoder's ~20-token prompts, the DiT's timestep/adaLN rows: M = 1).
 * Instantiated once per ISA by gemm_smallm_<isa>.c after including vec_<isa>.h; kn_linear
 * (dispatch.c) takes it for M <= KN_SMALLM_MAX_M.
 *
 * Why: at small M each weight element is used only M times, so the packed GEMM (gemm_impl.h),
 * which converts W into f32 panels in a buffer and reads them back, spends most of its time on
 * that round trip (PERF.md entry 19: 59% at M = 20). Here W is streamed once and never packed:
 *
 *   threads take items of SM_NB weight rows (dynamic schedule)
 *     for each K chunk of SM_KC (256)                       (W chunk: SM_NB x 256, stays in L1)
 *       [non-direct or rounded weights: convert the chunk to f32 into an L1 buffer]
 *       for each block of SM_MB rows of x                   (x block: SM_MB x 256, stays in L1)
 *         for each block of SM_R weight rows
 *           SM_MB x SM_R vector accumulators (dot products along k, VW lanes each), resumed
 *           from / saved to a per-item buffer between K chunks (vectors, not sums)
 *     y[m, n] = horizontal sum of the accumulator (+ bias)
 *
 * F32/BF16/F16 weights are read in place and widened in registers (v_load_dt). Block-quantized,
 * fp8 and scaled weights are dequantized per chunk row by kn_wsrc_to_f32 (K chunks start at
 * multiples of 256, so block formats stay aligned). bf16 precision mode (rb): x is rounded to
 * bf16 once per call into a copy; bf16 weights are exact; other weights are rounded while
 * converting the chunk into the buffer.
 *
 * Determinism: every output element is VW lane chains of FMAs in k order (lane l takes k = l mod
 * VW), then one v_hsum, whatever the thread count, item split, K chunking or row blocking: the
 * bits do not depend on the thread count, and for M <= 4 they equal gemm_impl.h's GEMV path
 * (the same chains). */
#include <stdlib.h>
#include <string.h>

#include "../common/error.h"
#include "impl.h"

#define SM_KC 256                    /* K chunk (multiple of every block size and of VW) */
#define SM_R (KN_VW >= 16 ? 4 : 2)   /* weight rows per register tile */
#define SM_MB 6                      /* x rows per register tile: 6 x 2 (AVX2) / 6 x 4 (AVX-512) accumulators */
#define SM_NB 16                     /* weight rows per work item (a multiple of SM_R) */

/* One register tile: acc[m*SM_R + r] (+)= sum over k < kc of x[m][k] * w_r[k] for m < MR, r < SM_R,
 * as VW-lane chains. w[r]: weight row r at this chunk (dtype DT: 0 f32, 1 bf16, 2 f16), x rows ldx
 * apart. first: start from zero instead of acc. MR and DT are constants after inlining. */
KN_INLINE void sm_tile(const int MR, const int DT, const char *const *w, const float *x, int64_t ldx, int64_t kc,
                       vf *acc, int first) {
    const int es = DT == 0 ? 4 : 2;
    vf a[SM_MB][SM_R];
#pragma GCC unroll 8
    for (int m = 0; m < MR; m++)
#pragma GCC unroll 4
        for (int r = 0; r < SM_R; r++) a[m][r] = first ? v_zero() : acc[m * SM_R + r];
    int64_t k = 0;
    for (; k + KN_VW <= kc; k += KN_VW) {
        vf wv[SM_R];
#pragma GCC unroll 4
        for (int r = 0; r < SM_R; r++) wv[r] = v_load_dt(w[r] + k * es, DT);
#pragma GCC unroll 8
        for (int m = 0; m < MR; m++) {
            vf xv = v_load(x + m * ldx + k);
#pragma GCC unroll 4
            for (int r = 0; r < SM_R; r++) a[m][r] = v_fma(xv, wv[r], a[m][r]);
        }
    }
    if (k < kc) { /* the last, partial vector of K: zero lanes past it */
        vf wv[SM_R];
        for (int r = 0; r < SM_R; r++) wv[r] = v_load_dt_n(w[r] + k * es, DT, kc - k);
        for (int m = 0; m < MR; m++) {
            vf xv = v_load_n(x + m * ldx + k, kc - k);
            for (int r = 0; r < SM_R; r++) a[m][r] = v_fma(xv, wv[r], a[m][r]);
        }
    }
#pragma GCC unroll 8
    for (int m = 0; m < MR; m++)
#pragma GCC unroll 4
        for (int r = 0; r < SM_R; r++) acc[m * SM_R + r] = a[m][r];
}

#define SM_CASE(mr)                                                                                        \
    case mr:                                                                                               \
        if (dt == 1)                                                                                       \
            sm_tile(mr, 1, w, x, ldx, kc, acc, first);                                                     \
        else if (dt == 2)                                                                                  \
            sm_tile(mr, 2, w, x, ldx, kc, acc, first);                                                     \
        else                                                                                               \
            sm_tile(mr, 0, w, x, ldx, kc, acc, first);                                                     \
        break;

static void sm_tile_any(int mr, int dt, const char *const *w, const float *x, int64_t ldx, int64_t kc, vf *acc,
                        int first) {
    switch (mr) {
        SM_CASE(1)
        SM_CASE(2)
        SM_CASE(3)
        SM_CASE(4)
        SM_CASE(5)
        SM_CASE(6)
    default: break;
    }
}
#undef SM_CASE

typedef struct {
    float *y;
    int64_t ldy;
    const float *x; /* rounded copy in bf16 mode */
    int64_t ldx, M, N, K;
    const kn_wsrc *B;
    const float *bias;
    int acc, rb, buffered; /* buffered: W chunks go through the f32 buffer */
} sm_call;

/* Weight rows [n0, n0 + nb) x columns [k0, k0 + kc) -> buf[i*SM_KC + k] as f32 (rounded if rb). */
static void sm_fill(const sm_call *c, int64_t n0, int64_t nb, int64_t k0, int64_t kc, float *buf) {
    const kn_wsrc *B = c->B;
    for (int64_t i = 0; i < nb; i++) {
        float *d = buf + i * SM_KC;
        if (B->direct) {
            const char *src = kn_wsrc_at(B, n0 + i, k0);
            for (int64_t k = 0; k < kc; k += KN_VW) {
                int64_t kk = kc - k < KN_VW ? kc - k : KN_VW;
                v_store_n(d + k, v_load_dt_n(src + k * (int64_t)B->es, (int)B->dt, kk), kk);
            }
        } else {
            kn_wsrc_to_f32(B, n0 + i, k0, kc, d);
        }
        if (c->rb)
            for (int64_t k = 0; k < kc; k += KN_VW) {
                int64_t kk = kc - k < KN_VW ? kc - k : KN_VW;
                v_store_n(d + k, v_round_bf16(v_load_n(d + k, kk)), kk);
            }
    }
}

/* One item: weight rows [n0, n0 + nb), nb <= SM_NB. acc: (SM_NB / SM_R) * M * SM_R vectors laid out
 * [row block][m][r]; buf: SM_NB * SM_KC floats (buffered calls). */
static void sm_item(const sm_call *c, int64_t n0, int64_t nb, vf *acc, float *buf) {
    const kn_wsrc *B = c->B;
    int64_t M = c->M, K = c->K;
    int dt = c->buffered ? 0 : (int)B->dt;
    for (int64_t k0 = 0; k0 < K; k0 += SM_KC) {
        int64_t kc = K - k0 < SM_KC ? K - k0 : SM_KC;
        if (c->buffered) sm_fill(c, n0, nb, k0, kc, buf); // W[n0.., k0..] -> buf [nb][SM_KC] f32
        if (!c->buffered && k0 + SM_KC < K) /* the next chunk of these rows from DRAM meanwhile (PERF.md 22) */
            for (int64_t i = 0; i < nb; i++) {
                const char *p = kn_wsrc_at(B, n0 + i, k0 + SM_KC);
                int64_t nbytes = (K - k0 - SM_KC < SM_KC ? K - k0 - SM_KC : SM_KC) * (int64_t)B->es;
                for (int64_t o = 0; o < nbytes; o += 64) v_prefetch(p + o);
            }
        for (int64_t m0 = 0; m0 < M; m0 += SM_MB) {
            int mr = (int)(M - m0 < SM_MB ? M - m0 : SM_MB);
            for (int64_t r0 = 0; r0 < nb; r0 += SM_R) {
                const char *w[SM_R];
                for (int r = 0; r < SM_R; r++) { /* rows past nb repeat the last one (results dropped) */
                    int64_t i = r0 + r < nb ? r0 + r : nb - 1;
                    w[r] = c->buffered ? (const char *)(buf + i * SM_KC) : kn_wsrc_at(B, n0 + i, k0);
                }
                // x[m0.., k0..k0+kc] . W[n0+r0.., k0..]^T -> acc [mr][SM_R] vectors
                sm_tile_any(mr, dt, w, c->x + m0 * c->ldx + k0, c->ldx, kc, acc + ((r0 / SM_R) * M + m0) * SM_R, k0 == 0);
            }
        }
    }
    for (int64_t r0 = 0; r0 < nb; r0 += SM_R)
        for (int64_t m = 0; m < M; m++)
            for (int64_t r = 0; r < SM_R && r0 + r < nb; r++) {
                int64_t n = n0 + r0 + r;
                float v = v_hsum(acc[((r0 / SM_R) * M + m) * SM_R + r]) + (c->bias ? c->bias[n] : 0.0f);
                float *yo = c->y + m * c->ldy + n;
                *yo = c->acc ? *yo + v : v;
            }
}

/* y[M, N] (+)= x[M, K] . W^T (+ bias); bf16: inputs of the products rounded to bfloat16. -1: out of memory. */
int KN_FN(kn_gemm_smallm)(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M, int64_t N, int64_t K,
                          const kn_wsrc *B, const float *bias, int acc, int bf16, int T) {
    if (M <= 0 || N <= 0) return 0;
    if (K <= 0) {
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                float b = bias ? bias[j] : 0.0f;
                y[i * ldy + j] = acc ? y[i * ldy + j] + b : b;
            }
        return 0;
    }
    if ((double)M * (double)N * (double)K < 65536.0) T = 1;
    sm_call c = {y, ldy, x, ldx, M, N, K, B, bias, acc, bf16, !B->direct || (bf16 && B->dt != ZI_BF16)};
    float *xr = NULL;
    if (bf16) { /* x rounded once: [M, K] */
        xr = kn_scratch_get(sizeof(float) * (size_t)M * (size_t)K);
        if (!xr) return zi_err("out of memory for the small-M GEMM's rounded x (M=%lld, K=%lld)", (long long)M, (long long)K);
        for (int64_t i = 0; i < M; i++)
            for (int64_t k = 0; k < K; k += KN_VW) {
                int64_t kk = K - k < KN_VW ? K - k : KN_VW;
                v_store_n(xr + i * K + k, v_round_bf16(v_load_n(x + i * ldx + k, kk)), kk);
            }
        c.x = xr, c.ldx = K;
    }
    int64_t nitem = (N + SM_NB - 1) / SM_NB;
    if (T > nitem) T = (int)nitem;
    int failed = 0;
#pragma omp parallel num_threads(T) if (T > 1)
    {
        vf *accb = kn_scratch_get(sizeof(vf) * (size_t)(SM_NB / SM_R) * (size_t)M * SM_R);
        float *buf = c.buffered ? kn_scratch_get(sizeof(float) * SM_NB * SM_KC) : NULL;
        int ok = accb && (buf || !c.buffered);
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < nitem; it++) {
            int64_t n0 = it * SM_NB;
            if (ok) sm_item(&c, n0, N - n0 < SM_NB ? N - n0 : SM_NB, accb, buf);
        }
        kn_scratch_put(accb);
        kn_scratch_put(buf);
    }
    kn_scratch_put(xr);
    if (failed)
        return zi_err("out of memory for small-M GEMM scratch (M=%lld, N=%lld, K=%lld)", (long long)M, (long long)N,
                      (long long)K);
    return 0;
}
