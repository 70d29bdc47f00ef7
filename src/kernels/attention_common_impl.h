/* attention_common_impl.h - what the three flash-attention templates share (fp32:
 * attention_impl.h, vdpbf16ps: attention_bf16_impl.h, AMX: attention_amx_impl.h): the key-tile
 * size, the f32 online-softmax row update, and the driver that runs work items (one head x one
 * block of queries) on T threads with per-thread scratch. Needs vec_<isa>.h first. */
#ifndef ZI_ATTENTION_COMMON_IMPL_H
#define ZI_ATTENTION_COMMON_IMPL_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/error.h"
#include "impl.h"

#define ATT_FBQ (KN_MR * 8) /* queries per work item of the fp32/vdpbf16ps templates (8 row panels); >= 32 */
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

/* One attention call as its work items see it (K and V already packed by the template). */
typedef struct {
    float *out;
    int64_t ldo;
    const float *q;
    int64_t ldq;
    const void *kt, *vt; /* packed K^T and V, in the template's layout */
    int64_t Lk, Lkp;     /* keys, keys padded to the template's multiple */
    int hd, group;       /* head dim, query heads per kv head */
    float scale;
    int causal, rb; /* rb: round to bf16 (the fp32 template's bf16 mode) */
} att_call;

/* Per-thread scratch: the template's buffers (sizes given to att_drive) and the softmax state of
 * the item's queries (at most ATT_FBQ). */
typedef struct {
    void *buf[4];
    float mx[ATT_FBQ], sum[ATT_FBQ];
} att_work;

typedef void (*att_item_fn)(att_work *w, const att_call *c, int h, int64_t q0, int64_t nq);

/* No keys: softmax over nothing -> 0. */
static void att_zero_output(float *out, int64_t ldo, int64_t Lq, int n_heads, int hd) {
    for (int64_t i = 0; i < Lq; i++) memset(out + i * ldo, 0, sizeof(float) * (size_t)n_heads * (size_t)hd);
}

/* Run item() over every (head, block of qblock queries) on T threads (dynamic schedule: the
 * results do not depend on it). bytes[b]: size of scratch buffer b per thread (0: none).
 * on/off: per-thread setup around the items (AMX tile configuration) or NULL. -1: out of memory. */
static int att_drive(const att_call *c, int64_t Lq, int n_heads, int64_t qblock, const size_t bytes[4],
                     att_item_fn item, void (*on)(void), void (*off)(void), int T) {
    int64_t nqb = (Lq + qblock - 1) / qblock;
    int failed = 0;
    if ((double)Lq * (double)c->Lk * c->hd * n_heads <= 1e6) T = 1;
#pragma omp parallel num_threads(T) if (T > 1)
    {
        att_work *w = calloc(1, sizeof *w);
        int ok = w != NULL;
        for (int b = 0; ok && b < 4; b++)
            if (bytes[b] && !(w->buf[b] = kn_scratch_get(bytes[b]))) ok = 0;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp barrier
        int bad;
#pragma omp atomic read
        bad = failed;
        if (!bad) { /* all threads agree after the barrier */
            if (on) on();
#pragma omp for schedule(dynamic) collapse(2)
            for (int h = 0; h < n_heads; h++)
                for (int64_t qb = 0; qb < nqb; qb++) {
                    int64_t q0 = qb * qblock, nq = Lq - q0 < qblock ? Lq - q0 : qblock;
                    item(w, c, h, q0, nq);
                }
            if (off) off();
        }
        if (w)
            for (int b = 0; b < 4; b++) kn_scratch_put(w->buf[b]);
        free(w);
    }
    return failed ? zi_err("out of memory for attention scratch") : 0;
}

#endif
