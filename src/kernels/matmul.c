/* matmul.c - linear layers: y = x . W^T (+ b) with F32/BF16/F16 weights.
 *
 * Every linear of the DiT / text encoder / VAE ends up here. Design (GotoBLAS/BLIS style,
 * measurements in PERF.md):
 *
 *   for each row super-block of x (packed copy <= 64 MiB)
 *     pack x -> 14-row k-major panels, once, shared by all threads          (kn_pack_panel14)
 *     threads take (column chunk, <= 1008-row range) items dynamically; a chunk is about
 *     N / (4 * threads) columns (<= 2048), e.g. 480 for N = 3840 on 2 threads:
 *       for k0 in steps of MM_KC (256)
 *         pack W[chunk, k0..] -> [chunk/32][256][32] f32 panels (bf16/f16 converted)  (mm_pack_b)
 *         for each MM_MC (336) row group          (A group stays in L2)
 *           for each 32-column panel              (B panel stays in L1)
 *             for each 14-row panel
 *               kn_ukr: C[14 x 32] (+)= A panel . B panel   (simd.h, 28 zmm accumulators)
 *
 * Weights are converted to f32 while packing, so each weight element is converted once per
 * call (per row range) and reused by all rows. Packing and the microkernel are separate: a
 * bf16 (vdpbf16ps) or int8 (VNNI) microkernel slots in by changing mm_pack_b's panel layout to
 * k-pairs/quads and the kernel called in mm_item (see kn_ukr's comment in simd.h).
 * Tiny M (timestep MLP, adaLN: M = 1) takes a GEMV path that streams W once without packing.
 * Without AVX-512 (or if scratch memory is unavailable) a portable scalar path runs.
 *
 * Determinism: every output element is one sequential fp32 FMA chain over k in MM_KC blocks
 * (or one fixed reduction tree on the GEMV path), whichever thread computes it: results are
 * bit-identical for any thread count. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels.h"
#include "simd.h"

/* ---------------------------------------------------------------- scratch pool (simd.h) */

#define KN_POOL_SLOTS 16
#define KN_POOL_MAX_BYTES ((size_t)768 << 20) /* retain at most this much in total */

static struct {
    void *p;
    size_t n;
    int busy;
} kn_pool[KN_POOL_SLOTS];
static size_t kn_pool_bytes;
static pthread_mutex_t kn_pool_lock = PTHREAD_MUTEX_INITIALIZER;

void *kn_scratch_get(size_t n) {
    n = (n + 63) / 64 * 64;
    if (n == 0) n = 64;
    pthread_mutex_lock(&kn_pool_lock);
    int best = -1;
    for (int i = 0; i < KN_POOL_SLOTS; i++)
        if (kn_pool[i].p && !kn_pool[i].busy && kn_pool[i].n >= n && (best < 0 || kn_pool[i].n < kn_pool[best].n))
            best = i;
    if (best >= 0) {
        kn_pool[best].busy = 1;
        pthread_mutex_unlock(&kn_pool_lock);
        return kn_pool[best].p;
    }
    /* make room: drop idle buffers that are too small, while over budget or out of slots */
    int empty = -1;
    for (int i = 0; i < KN_POOL_SLOTS; i++)
        if (!kn_pool[i].p) empty = i;
    for (int i = 0; i < KN_POOL_SLOTS && (empty < 0 || kn_pool_bytes + n > KN_POOL_MAX_BYTES); i++)
        if (kn_pool[i].p && !kn_pool[i].busy) {
            free(kn_pool[i].p);
            kn_pool_bytes -= kn_pool[i].n;
            kn_pool[i].p = NULL;
            empty = i;
        }
    void *p = aligned_alloc(64, n);
    if (p && empty >= 0 && kn_pool_bytes + n <= KN_POOL_MAX_BYTES) {
        kn_pool[empty].p = p, kn_pool[empty].n = n, kn_pool[empty].busy = 1;
        kn_pool_bytes += n;
    }
    pthread_mutex_unlock(&kn_pool_lock);
    return p;
}

void kn_scratch_put(void *p) {
    if (!p) return;
    pthread_mutex_lock(&kn_pool_lock);
    for (int i = 0; i < KN_POOL_SLOTS; i++)
        if (kn_pool[i].p == p) {
            kn_pool[i].busy = 0;
            pthread_mutex_unlock(&kn_pool_lock);
            return;
        }
    pthread_mutex_unlock(&kn_pool_lock);
    free(p); /* not pooled */
}

/* Blocking (tunable at build time for experiments, see PERF.md) */
#ifndef MM_KC
#define MM_KC 256 /* reduction depth per packed block: B panel 256 x 32 f32 = 32 KiB (L1) */
#endif
#ifndef MM_MC
#define MM_MC (KN_MR * 24) /* rows of x per packed block: 336 x 256 f32 = 336 KiB (L2) */
#endif
#ifndef MM_NC
#define MM_NC 2048 /* max columns per work item (items are ~N / (4 threads) columns wide) */
#endif
#ifndef MM_ROWS
#define MM_ROWS 1008 /* max rows per work item (3 x MM_MC) */
#endif
#define MM_GEMV_MAX_M 4 /* M <= this: GEMV path */

/* The right-hand operand: rows [N][K] of element type dt with row stride ld (elements). */
typedef struct {
    const void *data;
    zi_dtype dt;
    int64_t ld;
    size_t es; /* element size in bytes */
} mm_src;

static inline const char *mm_src_at(const mm_src *B, int64_t row, int64_t col) {
    return (const char *)B->data + (size_t)(row * B->ld + col) * B->es;
}

static inline float mm_src_get(const mm_src *B, int64_t row, int64_t col) {
    const void *p = mm_src_at(B, row, col);
    uint16_t h;
    switch (B->dt) {
    case ZI_BF16:
        memcpy(&h, p, 2);
        return zi_bf16_to_f32(h);
    case ZI_F16:
        memcpy(&h, p, 2);
        return zi_f16_to_f32(h);
    default: {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    }
}

/* Portable reference path (no AVX-512, or allocation failure): rows [m0, m1) x cols [n0, n1). */
static void mm_block_scalar(float *y, int64_t ldy, const float *x, int64_t ldx, const mm_src *B, int64_t K,
                            const float *bias, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    for (int64_t i = m0; i < m1; i++)
        for (int64_t j = n0; j < n1; j++) {
            const float *xr = x + i * ldx;
            float s = 0;
            if (B->dt == ZI_F32) {
                const float *w = (const float *)B->data + j * B->ld;
                for (int64_t e = 0; e < K; e++) s += xr[e] * w[e];
            } else {
                for (int64_t e = 0; e < K; e++) s += xr[e] * mm_src_get(B, j, e);
            }
            y[i * ldy + j] = s + (bias ? bias[j] : 0.0f);
        }
}

#ifdef KN_HAVE_AVX512

/* Pack W rows [n0, n0+nc) x cols [k0, k0+kc) into 32-column panels, k-major:
 *   bp[(p*kc + k)*32 + j] = W[n0 + 32p + j][k0 + k]   (zero past row nc), converted to f32.
 * 16x16 blocks are loaded row-wise (contiguous k), transposed in registers and stored. */
static void mm_pack_b(float *bp, const mm_src *B, int64_t n0, int64_t nc, int64_t k0, int64_t kc) {
    int dt = (int)B->dt;
    int64_t np = (nc + KN_NR - 1) / KN_NR;
    for (int64_t p = 0; p < np; p++)
        for (int half = 0; half < 2; half++) {
            int64_t j0 = p * KN_NR + half * 16, nrows = nc - j0 < 16 ? nc - j0 : 16;
            float *dst = bp + p * kc * KN_NR + half * 16;
            /* W streams from DRAM along 16 rows at once: prefetch the next 16 rows' segments */
#ifndef KN_NO_PREFETCH_B
#ifndef KN_PF_AHEAD
#define KN_PF_AHEAD 16
#endif
            for (int64_t i = 0; i < 16 && j0 + KN_PF_AHEAD + i < nc; i++)
                for (int64_t k = 0; k < kc; k += (int64_t)(64 / B->es))
                    _mm_prefetch(mm_src_at(B, n0 + j0 + KN_PF_AHEAD + i, k0 + k), _MM_HINT_T0);
#endif
            for (int64_t k = 0; k < kc; k += 16) {
                int64_t kk = kc - k < 16 ? kc - k : 16;
                __mmask16 km = (__mmask16)(kk == 16 ? 0xFFFF : (1u << kk) - 1u);
                __m512 r[16];
                for (int i = 0; i < 16; i++) {
                    if (i >= nrows)
                        r[i] = _mm512_setzero_ps();
                    else if (kk == 16)
                        r[i] = kn_load16(mm_src_at(B, n0 + j0 + i, k0 + k), dt);
                    else
                        r[i] = kn_load16_mask(mm_src_at(B, n0 + j0 + i, k0 + k), dt, km);
                }
                kn_transpose16(r);
                for (int64_t q = 0; q < kk; q++) _mm512_store_ps(dst + (k + q) * KN_NR, r[q]);
            }
        }
}

/* The microkernel specialised for packed panels (constant strides). */
static void mm_ukr_packed(int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc, int mr, __mmask16 m0,
                          __mmask16 m1, int mode, const float *bias) {
    kn_ukr(kc, ap, 1, KN_MR, bp, KN_NR, c, ldc, mr, m0, m1, 0, mode, bias);
}

/* Packed x for rows [m0, m0 + ms): for each K block kb (MM_KC deep, the last one shorter),
 * 14-row panels k-major: ap[kb*MM_KC*ms_pad + p*kc*14 + k*14 + i] = x[m0 + 14p + i][kb*MM_KC + k]. */
typedef struct {
    float *ap;
    int64_t m0, ms, ms_pad; /* ms_pad = panels * 14 */
} mm_apack;

static const float *mm_apanel(const mm_apack *A, int64_t kb, int64_t kc, int64_t row) {
    return A->ap + kb * MM_KC * A->ms_pad + (row / KN_MR) * kc * KN_MR;
}

/* One work item: output columns [n0, n0 + nc) x rows [r0, r1) (relative to A->m0, multiples of 14
 * except at the end). Packs its W slice per K block into bp, then runs the microkernel over
 * MM_MC-row groups (A group stays in L2, B panel in L1). */
static void mm_item(float *y, int64_t ldy, const mm_apack *A, const mm_src *B, int64_t K, const float *bias,
                    int64_t n0, int64_t nc, int64_t r0, int64_t r1, float *bp) {
    for (int64_t kb = 0; kb * MM_KC < K; kb++) {
        int64_t k0 = kb * MM_KC, kc = K - k0 < MM_KC ? K - k0 : MM_KC;
        int mode = k0 > 0;
        mm_pack_b(bp, B, n0, nc, k0, kc); // W[n0.., k0..] -> [nc/32][kc][32] f32
        for (int64_t mc0 = r0; mc0 < r1; mc0 += MM_MC) {
            int64_t mc1 = r1 - mc0 < MM_MC ? r1 : mc0 + MM_MC;
            for (int64_t j = 0; j < nc; j += KN_NR) {
                __mmask16 m0, m1;
                kn_masks32(nc - j, &m0, &m1);
                const float *bpan = bp + (j / KN_NR) * kc * KN_NR;
                const float *bb = bias ? bias + n0 + j : NULL;
                for (int64_t i = mc0; i < mc1; i += KN_MR) {
                    int mr = (int)(mc1 - i < KN_MR ? mc1 - i : KN_MR);
                    // [14, kc] x [kc, 32] -> y[m0+i.., n0+j..]
                    mm_ukr_packed(kc, mm_apanel(A, kb, kc, i), bpan, y + (A->m0 + i) * ldy + n0 + j, ldy, mr, m0,
                                  m1, mode, bb);
                }
            }
        }
    }
}

/* GEMV path for M <= 4: y[m, n] = dot(x[m], W[n]) with vectors along k, 4 weight rows at a time.
 * Rows [n_lo, n_hi). Each weight element is loaded and converted once. */
static void mm_gemv(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M, const mm_src *B, int64_t K,
                    const float *bias, int64_t n_lo, int64_t n_hi) {
    int dt = (int)B->dt;
    for (int64_t n = n_lo; n < n_hi; n += 4) {
        int nr = (int)(n_hi - n < 4 ? n_hi - n : 4);
        __m512 acc[4][MM_GEMV_MAX_M];
        for (int r = 0; r < 4; r++)
            for (int m = 0; m < MM_GEMV_MAX_M; m++) acc[r][m] = _mm512_setzero_ps();
        for (int64_t k = 0; k < K; k += 16) {
            int64_t kk = K - k < 16 ? K - k : 16;
            __mmask16 km = (__mmask16)(kk == 16 ? 0xFFFF : (1u << kk) - 1u);
            __m512 xv[MM_GEMV_MAX_M];
            for (int m = 0; m < MM_GEMV_MAX_M; m++)
                xv[m] = m < M ? _mm512_maskz_loadu_ps(km, x + m * ldx + k) : _mm512_setzero_ps();
            for (int r = 0; r < 4; r++) {
                if (r >= nr) break;
                __m512 w = kk == 16 ? kn_load16(mm_src_at(B, n + r, k), dt) : kn_load16_mask(mm_src_at(B, n + r, k), dt, km);
                for (int m = 0; m < MM_GEMV_MAX_M; m++)
                    if (m < M) acc[r][m] = _mm512_fmadd_ps(xv[m], w, acc[r][m]);
            }
        }
        for (int r = 0; r < nr; r++)
            for (int m = 0; m < M; m++) y[m * ldy + n + r] = _mm512_reduce_add_ps(acc[r][m]) + (bias ? bias[n + r] : 0.0f);
    }
}

#endif /* KN_HAVE_AVX512 */

static int mm_threads(void) {
#ifdef _OPENMP
    return kn_get_threads();
#else
    return 1;
#endif
}

/* y[M, N] (ldy) = x[M, K] (ldx) . B[N, K]^T (+ bias) */
static void mm_gemm(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M, int64_t N, int64_t K,
                    const mm_src *B, const float *bias) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) y[i * ldy + j] = bias ? bias[j] : 0.0f;
        return;
    }
    int T = mm_threads();
    double work = (double)M * (double)N * (double)K;
    if (work < 65536.0) T = 1;
#ifdef KN_HAVE_AVX512
    if (M <= MM_GEMV_MAX_M) {
        /* split N into T contiguous ranges (multiples of 4 rows) */
#pragma omp parallel num_threads(T) if (T > 1)
        {
            int t = 0, nt = 1;
#ifdef _OPENMP
            t = omp_get_thread_num(), nt = omp_get_num_threads();
#endif
            int64_t nq = (N + 3) / 4, q0 = nq * t / nt, q1 = nq * (t + 1) / nt;
            int64_t n0 = q0 * 4, n1 = q1 * 4 < N ? q1 * 4 : N;
            if (n0 < n1) mm_gemv(y, ldy, x, ldx, M, B, K, bias, n0, n1);
        }
        return;
    }
    /* Rows in super-blocks whose packed copy stays <= ~64 MiB; within one, x is packed once
     * (shared), then threads take (column chunk, row range) items dynamically, so a thread
     * slowed down by other jobs doesn't hold the other one up at the end. */
    int64_t npan = (N + KN_NR - 1) / KN_NR;
    int64_t cpan = npan / (4 * T) < 1 ? 1 : npan / (4 * T) > MM_NC / KN_NR ? MM_NC / KN_NR : npan / (4 * T);
    int64_t nchunk = (npan + cpan - 1) / cpan;
    int64_t msb = ((int64_t)(64 << 20) / (4 * (K < MM_KC ? MM_KC : K))) / MM_MC * MM_MC;
    if (msb < MM_MC) msb = MM_MC;
    for (int64_t ms0 = 0; ms0 < M; ms0 += msb) {
        mm_apack A = {NULL, ms0, M - ms0 < msb ? M - ms0 : msb, 0};
        A.ms_pad = (A.ms + KN_MR - 1) / KN_MR * KN_MR;
        int64_t nmp = A.ms_pad / KN_MR, nkb = (K + MM_KC - 1) / MM_KC;
        /* row ranges per chunk: enough items for dynamic balance when there are few chunks */
        int64_t nrr = nchunk >= 4 * T ? 1 : (4 * T + nchunk - 1) / nchunk;
        /* and at most MM_ROWS rows per item, so its output block stays near L2 across K blocks */
        if (nrr < (A.ms + MM_ROWS - 1) / MM_ROWS) nrr = (A.ms + MM_ROWS - 1) / MM_ROWS;
        if (nrr > nmp) nrr = nmp;
        A.ap = kn_scratch_get(sizeof(float) * (size_t)A.ms_pad * (size_t)(nkb * MM_KC));
        int ok = A.ap != NULL;
#pragma omp parallel num_threads(T) if (T > 1)
        {
            if (ok) {
#pragma omp for schedule(static) collapse(2)
                for (int64_t kb = 0; kb < nkb; kb++)
                    for (int64_t p = 0; p < nmp; p++) {
                        int64_t k0 = kb * MM_KC, kc = K - k0 < MM_KC ? K - k0 : MM_KC, i0 = p * KN_MR;
                        kn_pack_panel14((float *)mm_apanel(&A, kb, kc, i0), x + (ms0 + i0) * ldx + k0, ldx,
                                        A.ms - i0 < KN_MR ? A.ms - i0 : KN_MR, kc);
                    }
            }
            float *bp = ok ? kn_scratch_get(sizeof(float) * MM_KC * (size_t)(cpan * KN_NR)) : NULL;
#pragma omp for schedule(dynamic, 1) collapse(2)
            for (int64_t c = 0; c < nchunk; c++)
                for (int64_t r = 0; r < nrr; r++) {
                    int64_t n0 = c * cpan * KN_NR, nc = N - n0 < cpan * KN_NR ? N - n0 : cpan * KN_NR;
                    int64_t r0 = nmp * r / nrr * KN_MR, r1 = nmp * (r + 1) / nrr * KN_MR;
                    if (r1 > A.ms) r1 = A.ms;
                    if (r0 >= r1) continue;
                    if (bp)
                        mm_item(y, ldy, &A, B, K, bias, n0, nc, r0, r1, bp);
                    else
                        mm_block_scalar(y, ldy, x, ldx, B, K, bias, ms0 + r0, ms0 + r1, n0, n0 + nc);
                }
            kn_scratch_put(bp);
        }
        kn_scratch_put(A.ap);
    }
#else
#pragma omp parallel for num_threads(T) schedule(static) if (T > 1)
    for (int64_t i = 0; i < M; i++) mm_block_scalar(y, ldy, x, ldx, B, K, bias, i, i + 1, 0, N);
#endif
}

void kn_gemm_nt(float *C, int64_t ldc, const float *A, int64_t lda, const float *B, int64_t ldb, int64_t M,
                int64_t N, int64_t K) {
    mm_src src = {B, ZI_F32, ldb, sizeof(float)};
    mm_gemm(C, ldc, A, lda, M, N, K, &src, NULL);
}

void kn_linear_strided(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M, const kn_mat *W,
                       const float *bias) {
    mm_src src = {W->data, W->dtype, W->cols, zi_dtype_size(W->dtype)};
    mm_gemm(y, ldy, x, ldx, M, W->rows, W->cols, &src, bias);
}

void kn_linear(float *y, const float *x, int64_t M, const kn_mat *W, const float *bias) {
    kn_linear_strided(y, W->rows, x, W->cols, M, W, bias);
}
