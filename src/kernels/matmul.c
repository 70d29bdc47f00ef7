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
 * The VAE convs use a variant at the end of this file (kn_gemm_patches, an implicit GEMM
 * that reads im2col patches straight from a staged input, with W packed once per conv).
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

/* ---------------------------------------------------------------- implicit GEMM (convs)
 *
 * The conv shapes differ from the DiT's: N = Cout is only 128..512 and M = pixels is large.
 * So W (at most 4608 x 512) is packed once per conv into f32 panels, shared by all threads,
 * and the work items are MM_MC-row groups covering all N columns, reusing their A rows for
 * every 32-column panel. K is blocked so that no block crosses a kernel-row run (kw*cin
 * contiguous floats of the staged input); then a 14-pixel panel inside one output row is a
 * plain strided matrix (row stride s*cin, column stride 1) and the microkernel reads it in
 * place. Only panels that wrap to the next output row are gathered into a packed panel.
 * No patch matrix is materialized. */

/* Patch row base pointers and the run geometry of one K position (see kn_patch_src). */
static inline const float *mm_patch_base(const kn_patch_src *A, int64_t i) {
    int64_t oy = i / A->Wo, ox = i - oy * A->Wo;
    return A->x + ((oy * A->s) * A->sw + ox * A->s) * A->cin;
}

static inline int64_t mm_patch_off(const kn_patch_src *A, int64_t k, int64_t *len) {
    int64_t run = (int64_t)A->kw * A->cin, ky = k / run, c0 = k - ky * run;
    if (len) *len = run - c0;
    return ky * A->sw * A->cin + c0;
}

#ifdef KN_HAVE_AVX512
/* K blocking: each run of `run` columns split into equal blocks of at most MM_KC. Block b
 * starts at *k0 and is *kc deep; returns the number of blocks. */
static int64_t mm_run_block(int64_t K, int64_t run, int64_t b, int64_t *k0, int64_t *kc) {
    int64_t nsub = (run + MM_KC - 1) / MM_KC, bs = (run + nsub - 1) / nsub;
    int64_t r = b / nsub, sub = b % nsub;
    *k0 = r * run + sub * bs;
    *kc = run - sub * bs < bs ? run - sub * bs : bs;
    return K / run * nsub;
}
#endif

size_t kn_packw_floats(int64_t N, int64_t K) {
#ifdef KN_HAVE_AVX512
    return (size_t)((N + KN_NR - 1) / KN_NR * KN_NR) * (size_t)(K > 0 ? K : 0);
#else
    (void)N, (void)K;
    return 0;
#endif
}

void kn_packw(float *bp, const kn_mat *W, int64_t run) {
#ifdef KN_HAVE_AVX512
    mm_src B = {W->data, W->dtype, W->cols, zi_dtype_size(W->dtype)};
    int64_t N = W->rows, K = W->cols, np = (N + KN_NR - 1) / KN_NR, k0, kc;
    if (K <= 0 || run <= 0 || K % run) return;
    int64_t nkb = mm_run_block(K, run, 0, &k0, &kc);
    int T = mm_threads();
#pragma omp parallel for num_threads(T) schedule(static) collapse(2) if (T > 1 && N * K > 65536)
    for (int64_t kb = 0; kb < nkb; kb++)
        for (int64_t p = 0; p < np; p++) {
            int64_t b0, bc, n0 = p * KN_NR;
            mm_run_block(K, run, kb, &b0, &bc);
            // W[n0..n0+32, b0..b0+bc] -> [bc][32] f32 panel
            mm_pack_b(bp + b0 * np * KN_NR + p * bc * KN_NR, &B, n0, N - n0 < KN_NR ? N - n0 : KN_NR, b0, bc);
        }
#else
    (void)bp, (void)W, (void)run;
#endif
}

/* Portable path: rows [r0, r1) of y (+)= patches . W^T + bias, one sequential sum per element. */
static void mm_patches_scalar(float *y, const kn_patch_src *A, const kn_mat *W, const float *bias, int acc,
                              int64_t r0, int64_t r1) {
    mm_src B = {W->data, W->dtype, W->cols, zi_dtype_size(W->dtype)};
    int64_t N = W->rows, K = W->cols;
    for (int64_t i = r0; i < r1; i++) {
        const float *base = mm_patch_base(A, i);
        for (int64_t j = 0; j < N; j++) {
            float s = 0;
            for (int64_t k = 0; k < K;) {
                int64_t len, off = mm_patch_off(A, k, &len);
                if (len > K - k) len = K - k;
                for (int64_t e = 0; e < len; e++) s += base[off + e] * mm_src_get(&B, j, k + e);
                k += len;
            }
            float v = s + (bias ? bias[j] : 0.0f);
            y[i * N + j] = acc ? y[i * N + j] + v : v;
        }
    }
}

#ifdef KN_HAVE_AVX512
/* Pack patch rows [i0, i0 + nrows) (nrows <= 14) x columns [k0, k0 + kc) (inside one run)
 * into one 14-row k-major panel: dst[k*14 + r] = patches[i0 + r][k0 + k] (0 for r >= nrows). */
static void mm_pack_patches(float *dst, const kn_patch_src *A, int64_t i0, int64_t nrows, int64_t k0, int64_t kc) {
    const float *base[KN_MR];
    int64_t off = mm_patch_off(A, k0, NULL);
    for (int64_t r = 0; r < nrows; r++) base[r] = mm_patch_base(A, i0 + r) + off;
    for (int64_t k = 0; k < kc; k += 16) {
        int64_t kk = kc - k < 16 ? kc - k : 16;
        __mmask16 km = (__mmask16)(kk == 16 ? 0xFFFF : (1u << kk) - 1u);
        __m512 r[16];
        for (int i = 0; i < 16; i++) r[i] = i < nrows ? _mm512_maskz_loadu_ps(km, base[i] + k) : _mm512_setzero_ps();
        kn_transpose16(r);
        for (int64_t q = 0; q < kk; q++) _mm512_mask_storeu_ps(dst + (k + q) * KN_MR, (__mmask16)0x3FFF, r[q]);
    }
}

/* The microkernel on an in-place A: rows a + i*a_rs, k contiguous. The VAE's row strides
 * (channel counts) are compile-time constants here, so the 14 rows are addressed by
 * displacements instead of 14 live pointers (which spilled). */
static void mm_ukr_strided(int64_t kc, const float *a, int64_t a_rs, const float *bp, float *c, int64_t ldc, int mr,
                           __mmask16 m0, __mmask16 m1, int mode, const float *bias) {
    switch (a_rs) {
    case 128: kn_ukr(kc, a, 128, 1, bp, KN_NR, c, ldc, mr, m0, m1, 0, mode, bias); break;
    case 256: kn_ukr(kc, a, 256, 1, bp, KN_NR, c, ldc, mr, m0, m1, 0, mode, bias); break;
    case 512: kn_ukr(kc, a, 512, 1, bp, KN_NR, c, ldc, mr, m0, m1, 0, mode, bias); break;
    default: kn_ukr(kc, a, a_rs, 1, bp, KN_NR, c, ldc, mr, m0, m1, 0, mode, bias); break;
    }
}

/* One item: rows [r0, r1) (<= MM_MC) x all N columns. ap: MM_MC x MM_KC floats. */
static void mm_item_patches(float *y, const kn_patch_src *A, const float *bpw, int64_t N, int64_t K,
                            const float *bias, int acc, int64_t r0, int64_t r1, float *ap) {
    int64_t np = (N + KN_NR - 1) / KN_NR, run = (int64_t)A->kw * A->cin, k0, kc, a_rs = A->s * A->cin;
    int64_t nkb = mm_run_block(K, run, 0, &k0, &kc);
    for (int64_t kb = 0; kb < nkb; kb++) {
        mm_run_block(K, run, kb, &k0, &kc);
        int mode = k0 > 0 ? 1 : acc ? 2 : 0;
        int64_t off = mm_patch_off(A, k0, NULL);
        /* panels that wrap to the next output row are gathered; the others are read in place */
        for (int64_t i = r0; i < r1; i += KN_MR)
            if (i % A->Wo + KN_MR > A->Wo)
                mm_pack_patches(ap + (i - r0) * kc, A, i, r1 - i < KN_MR ? r1 - i : KN_MR, k0, kc);
        for (int64_t j = 0; j < np; j++) {
            __mmask16 m0, m1;
            kn_masks32(N - j * KN_NR, &m0, &m1);
            const float *bpan = bpw + k0 * np * KN_NR + j * kc * KN_NR;
            const float *bb = bias ? bias + j * KN_NR : NULL;
            for (int64_t i = r0; i < r1; i += KN_MR) {
                int mr = (int)(r1 - i < KN_MR ? r1 - i : KN_MR);
                float *c = y + i * N + j * KN_NR;
                // [14, kc] x [kc, 32] -> y[i.., 32j..]
                if (i % A->Wo + KN_MR > A->Wo)
                    mm_ukr_packed(kc, ap + (i - r0) * kc, bpan, c, N, mr, m0, m1, mode, bb);
                else
                    mm_ukr_strided(kc, mm_patch_base(A, i) + off, a_rs, bpan, c, N, mr, m0, m1, mode, bb);
            }
        }
    }
}
#endif

void kn_gemm_patches(float *y, const kn_patch_src *A, int64_t M, const float *bpw, const kn_mat *W,
                     const float *bias, int acc) {
    int64_t N = W->rows, K = W->cols, run = (int64_t)A->kw * A->cin;
    if (M <= 0 || N <= 0) return;
    int T = mm_threads();
    if ((double)M * (double)N * (double)K < 65536.0) T = 1;
#ifdef KN_HAVE_AVX512
    if (bpw && K > 0 && run > 0 && K % run == 0) {
        /* items of <= MM_MC rows (multiples of 14), a multiple of T of them of about equal
         * size: a 32x32 latent is 4 x 256 rows, not 3 x 336 + 16 (which left a thread idle) */
        int64_t ng = (M + MM_MC - 1) / MM_MC;
        ng = (ng + T - 1) / T * T;
        int64_t rpi = ((M + ng - 1) / ng + KN_MR - 1) / KN_MR * KN_MR;
        ng = (M + rpi - 1) / rpi;
#pragma omp parallel num_threads(T) if (T > 1 && ng > 1)
        {
            float *ap = kn_scratch_get(sizeof(float) * MM_MC * MM_KC);
#pragma omp for schedule(dynamic, 1)
            for (int64_t g = 0; g < ng; g++) {
                int64_t r0 = g * rpi, r1 = M - r0 < rpi ? M : r0 + rpi;
                if (ap)
                    mm_item_patches(y, A, bpw, N, K, bias, acc, r0, r1, ap);
                else
                    mm_patches_scalar(y, A, W, bias, acc, r0, r1);
            }
            kn_scratch_put(ap);
        }
        return;
    }
#else
    (void)bpw, (void)run;
#endif
#pragma omp parallel for num_threads(T) schedule(static) if (T > 1)
    for (int64_t i = 0; i < M; i++) mm_patches_scalar(y, A, W, bias, acc, i, i + 1);
}
