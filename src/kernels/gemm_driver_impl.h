/* gemm_driver_impl.h - the packed-x GEMM driver shared by the fp32 (gemm_impl.h), vdpbf16ps
 * (gemm_bf16_impl.h) and AMX (gemm_amx_impl.h) templates: y[M, N] (+)= x[M, K] . W[N, K]^T.
 *
 * Rows go in super-blocks whose packed copy of x stays <= ~64 MiB; within one, x is packed
 * once (shared by all threads, one panel of `mr` rows per K block at a time), then the threads
 * take (column chunk, row range) work items dynamically, so a thread slowed down by other jobs
 * does not hold the others up at the end. Each item packs its slice of W into a per-thread
 * buffer and runs the template's microkernel or tiles. Results never depend on the split.
 * A template describes itself in a kn_gemm_plan: its panel sizes, element size and callbacks. */
#ifndef ZI_GEMM_DRIVER_IMPL_H
#define ZI_GEMM_DRIVER_IMPL_H

#include "../common/error.h"
#include "impl.h"

/* The operands of one call, as the callbacks see them. rb: round inputs to bf16 (fp32 template). */
typedef struct {
    float *y;
    int64_t ldy;
    const float *x;
    int64_t ldx, K;
    const kn_wsrc *B;
    const float *bias;
    int acc, rb;
} kn_gemm_call;

/* Packed x of rows [m0, m0 + ms), ms_pad = ms rounded up to the panel rows; layout: template's. */
typedef struct {
    void *ap;
    int64_t m0, ms, ms_pad;
} kn_apack;

typedef struct {
    const char *name;            /* for the out-of-memory message */
    int64_t mr, nr;              /* rows per packed x panel, output columns per W panel */
    int64_t kc, mc;              /* K block; super-block rows are a multiple of mc */
    int64_t nc_max, rows_max;    /* at most this many columns / rows per work item */
    int64_t elem_bytes;          /* bytes per packed element (x and W) */
    size_t tmp_bytes;            /* extra per-thread scratch (0: none) */
    /* pack x rows [i0, i0 + mr) (relative to A->m0; fewer at the end) of K block kb */
    void (*pack_a)(const kn_gemm_call *c, const kn_apack *A, int64_t kb, int64_t i0);
    /* columns [n0, n0 + nc) x rows [r0, r1) (relative to A->m0); bp: W buffer, tmp: extra */
    void (*item)(const kn_gemm_call *c, const kn_apack *A, int64_t n0, int64_t nc, int64_t r0, int64_t r1, void *bp,
                 void *tmp);
    void (*on)(void), (*off)(void); /* per-thread setup around the items (AMX tiles) or NULL */
} kn_gemm_plan;

static int kn_gemm_drive(const kn_gemm_plan *P, const kn_gemm_call *c, int64_t M, int64_t N, int T) {
    int64_t K = c->K;
    if ((double)M * (double)N * (double)K < 65536.0) T = 1;
    int64_t npan = (N + P->nr - 1) / P->nr;
    int64_t cpan = kn_split_chunk_panels(npan, T, P->nc_max / P->nr);
    int64_t nchunk = (npan + cpan - 1) / cpan;
    int64_t msb = kn_split_superblock_rows(K, P->kc, P->elem_bytes, P->mc);
    int failed = 0;
    for (int64_t ms0 = 0; ms0 < M && !failed; ms0 += msb) {
        kn_apack A = {NULL, ms0, M - ms0 < msb ? M - ms0 : msb, 0};
        A.ms_pad = (A.ms + P->mr - 1) / P->mr * P->mr;
        int64_t nmp = A.ms_pad / P->mr, nkb = (K + P->kc - 1) / P->kc;
        int64_t nrr = kn_split_row_ranges(nchunk, T, A.ms, P->rows_max, nmp);
        A.ap = kn_scratch_get((size_t)P->elem_bytes * (size_t)A.ms_pad * (size_t)(nkb * P->kc));
        if (!A.ap) {
            failed = 1;
            break;
        }
#pragma omp parallel num_threads(T) if (T > 1)
        {
#pragma omp for schedule(static) collapse(2)
            for (int64_t kb = 0; kb < nkb; kb++)
                for (int64_t p = 0; p < nmp; p++) P->pack_a(c, &A, kb, p * P->mr);
            void *bp = kn_scratch_get((size_t)P->elem_bytes * (size_t)P->kc * (size_t)(cpan * P->nr));
            void *tmp = P->tmp_bytes ? kn_scratch_get(P->tmp_bytes) : NULL;
            int ok = bp && (tmp || !P->tmp_bytes);
            if (!ok) {
#pragma omp atomic write
                failed = 1;
            }
            if (P->on) P->on();
#pragma omp for schedule(dynamic, 1) collapse(2)
            for (int64_t ch = 0; ch < nchunk; ch++)
                for (int64_t r = 0; r < nrr; r++) {
                    int64_t n0 = ch * cpan * P->nr, nc = N - n0 < cpan * P->nr ? N - n0 : cpan * P->nr;
                    int64_t r0 = nmp * r / nrr * P->mr, r1 = nmp * (r + 1) / nrr * P->mr;
                    if (r1 > A.ms) r1 = A.ms;
                    if (r0 >= r1 || !ok) continue;
                    P->item(c, &A, n0, nc, r0, r1, bp, tmp);
                }
            if (P->off) P->off();
            kn_scratch_put(bp);
            kn_scratch_put(tmp);
        }
        kn_scratch_put(A.ap);
    }
    if (failed)
        return zi_err("out of memory for %s GEMM scratch (M=%lld, N=%lld, K=%lld)", P->name, (long long)M, (long long)N,
                      (long long)K);
    return 0;
}

#endif
