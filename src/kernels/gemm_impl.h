/* gemm_impl.h - the fp32 GEMM template: y = x . W^T (+ b) with F32/BF16/F16/quantized weights,
 * and the implicit GEMM of the VAE convs. Instantiated once per ISA by gemm_<isa>.c after
 * including vec_<isa>.h (which fixes the vector width KN_VW and the tile KN_MR x KN_NR).
 *
 * Design (GotoBLAS/BLIS style; measurements in PERF.md):
 *
 *   for each row super-block of x (packed copy <= 64 MiB)
 *     pack x -> MR-row k-major panels, once, shared by all threads            (mm_pack_panel)
 *     threads take (column chunk, <= MM_ROWS-row range) items dynamically; a chunk is about
 *     N / (4 * threads) columns (<= 2048):
 *       for k0 in steps of MM_KC (256)
 *         pack W[chunk, k0..] -> [chunk/NR][256][NR] f32 panels (converted)   (mm_pack_b)
 *         for each MM_MC row group                 (A group stays in L2)
 *           for each NR-column panel               (B panel stays in L1)
 *             for each MR-row panel
 *               mm_ukr: C[MR x NR] (+)= A panel . B panel   (2*MR vector accumulators)
 *
 * Weights are converted to f32 while packing (once per call and row range, reused by all rows).
 * Non-direct weights (block-quantized, fp8, scaled) are first dequantized row by row per K block
 * (kn_wsrc_to_f32; K blocks start at multiples of 256, so block formats stay aligned).
 * Tiny M (timestep MLP, adaLN: M = 1) takes a GEMV path that streams W once without packing.
 *
 * Determinism: every output element is one sequential FMA chain over k in MM_KC blocks (or one
 * fixed reduction tree on the GEMV path), whichever thread computes it: results are
 * bit-identical for any thread count (for a given ISA). */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../common/error.h"
#include "impl.h"
#include "gemm_driver_impl.h"
#include "ukr_impl.h"

#define MM_KC 256                                     /* reduction depth per packed block */
#define MM_MC (KN_MR * (KN_MR >= 12 ? 24 : 48))       /* rows per A group: 336 (AVX-512) / 288 */
#define MM_NC 2048                                    /* max columns per work item */
#define MM_ROWS (3 * MM_MC)                           /* max rows per work item */
#define MM_GEMV_MAX_M 4                               /* M <= this: GEMV path */

/* Pack W rows [n0, n0+nc) x cols [k0, k0+kc) (kc <= MM_KC) into NR-column panels, k-major:
 *   bp[(p*kc + k)*NR + j] = W[n0 + NR*p + j][k0 + k]   (zero past row nc), as f32.
 * VW x VW blocks are loaded row-wise (contiguous k), transposed in registers and stored.
 * rb: round to bfloat16 (bf16 precision mode; bf16 weights are unchanged by it). */
static void mm_pack_b(float *bp, const kn_wsrc *B, int64_t n0, int64_t nc, int64_t k0, int64_t kc, int rb) {
    int dt = (int)B->dt;
    float *tmp = NULL;
    float tmpbuf[B->direct ? 1 : KN_VW * MM_KC]; /* dequantized rows of one half panel */
    if (!B->direct) tmp = tmpbuf;
    int64_t np = (nc + KN_NR - 1) / KN_NR;
    for (int64_t p = 0; p < np; p++)
        for (int half = 0; half < 2; half++) {
            int64_t j0 = p * KN_NR + half * KN_VW, nrows = nc - j0 < KN_VW ? nc - j0 : KN_VW;
            if (nrows < 0) nrows = 0;
            float *dst = bp + p * kc * KN_NR + half * KN_VW;
            if (B->direct) {
                /* W streams from DRAM along VW rows at once: prefetch the next rows' segments */
                for (int64_t i = 0; i < KN_VW && j0 + KN_VW + i < nc; i++)
                    for (int64_t k = 0; k < kc; k += (int64_t)(64 / B->es))
                        v_prefetch((const char *)B->data + (size_t)(n0 + j0 + KN_VW + i) * B->rs +
                                   (size_t)(k0 + k) * B->es);
            } else {
                for (int64_t i = 0; i < nrows; i++) kn_wsrc_to_f32(B, n0 + j0 + i, k0, kc, tmp + i * kc);
            }
            for (int64_t k = 0; k < kc; k += KN_VW) {
                int64_t kk = kc - k < KN_VW ? kc - k : KN_VW;
                vf r[KN_VW];
                for (int i = 0; i < KN_VW; i++) {
                    if (i >= nrows) {
                        r[i] = v_zero();
                    } else if (!B->direct) {
                        r[i] = v_load_n(tmp + i * kc + k, kk);
                    } else {
                        const char *src = (const char *)B->data + (size_t)(n0 + j0 + i) * B->rs + (size_t)(k0 + k) * B->es;
                        r[i] = kk == KN_VW ? v_load_dt(src, dt) : v_load_dt_n(src, dt, kk);
                    }
                }
                if (rb)
                    for (int i = 0; i < KN_VW; i++) r[i] = v_round_bf16(r[i]);
                v_transpose(r);
                for (int64_t q = 0; q < kk; q++) v_store(dst + (k + q) * KN_NR, r[q]);
            }
        }
}

/* ---------------------------------------------------------------- GEMM driver */

/* Packed x (kn_apack, gemm_driver_impl.h): for each K block kb (MM_KC deep, the last one
 * shorter), MR-row panels k-major:
 *   ap[kb*MM_KC*ms_pad + p*kc*MR + k*MR + i] = x[m0 + MR*p + i][kb*MM_KC + k]. */
static const float *mm_apanel(const kn_apack *A, int64_t kb, int64_t kc, int64_t row) {
    return (const float *)A->ap + kb * MM_KC * A->ms_pad + (row / KN_MR) * kc * KN_MR;
}

static void mm_pack_a(const kn_gemm_call *c, const kn_apack *A, int64_t kb, int64_t i0) {
    int64_t k0 = kb * MM_KC, kc = c->K - k0 < MM_KC ? c->K - k0 : MM_KC;
    mm_pack_panel((float *)mm_apanel(A, kb, kc, i0), c->x + (A->m0 + i0) * c->ldx + k0, c->ldx,
                  A->ms - i0 < KN_MR ? A->ms - i0 : KN_MR, kc, c->rb);
}

/* One work item: output columns [n0, n0 + nc) x rows [r0, r1) (relative to A->m0, multiples of
 * MR except at the end). Packs its W slice per K block into bp, then runs the microkernel over
 * MM_MC-row groups. */
static void mm_item(const kn_gemm_call *c, const kn_apack *A, int64_t n0, int64_t nc, int64_t r0, int64_t r1,
                    void *bpv, void *tmp) {
    (void)tmp;
    float *y = c->y, *bp = bpv;
    const float *bias = c->bias;
    int64_t ldy = c->ldy, K = c->K;
    const kn_wsrc *B = c->B;
    int acc = c->acc, rb = c->rb;
    for (int64_t kb = 0; kb * MM_KC < K; kb++) {
        int64_t k0 = kb * MM_KC, kc = K - k0 < MM_KC ? K - k0 : MM_KC;
        int mode = k0 > 0 ? 1 : acc ? 2 : 0;
        mm_pack_b(bp, B, n0, nc, k0, kc, rb); // W[n0.., k0..] -> [nc/NR][kc][NR] f32
        for (int64_t mc0 = r0; mc0 < r1; mc0 += MM_MC) {
            int64_t mc1 = r1 - mc0 < MM_MC ? r1 : mc0 + MM_MC;
            for (int64_t j = 0; j < nc; j += KN_NR) {
                const float *bpan = bp + (j / KN_NR) * kc * KN_NR;
                const float *bb = bias ? bias + n0 + j : NULL;
                for (int64_t i = mc0; i < mc1; i += KN_MR) {
                    int mr = (int)(mc1 - i < KN_MR ? mc1 - i : KN_MR);
                    // [MR, kc] x [kc, NR] -> y[m0+i.., n0+j..]
                    mm_ukr(kc, mm_apanel(A, kb, kc, i), 1, KN_MR, bpan, KN_NR, y + (A->m0 + i) * ldy + n0 + j, ldy, mr,
                           nc - j, mode, bb);
                }
            }
        }
    }
}

/* GEMV path for M <= 4: y[m, n] = dot(x[m], W[n]) with vectors along k, 4 weight rows at a
 * time, rows [n_lo, n_hi). Each weight element is loaded and converted once. */
static void mm_gemv(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M, const kn_wsrc *B, int64_t K,
                    const float *bias, int acc, int64_t n_lo, int64_t n_hi, int rb) {
    int dt = (int)B->dt;
    float tmpbuf[B->direct ? 1 : 4 * MM_KC];
    for (int64_t n = n_lo; n < n_hi; n += 4) {
        int nr = (int)(n_hi - n < 4 ? n_hi - n : 4);
        vf a[4][MM_GEMV_MAX_M];
        for (int r = 0; r < 4; r++)
            for (int m = 0; m < MM_GEMV_MAX_M; m++) a[r][m] = v_zero();
        for (int64_t kb = 0; kb < K; kb += MM_KC) {
            int64_t kc = K - kb < MM_KC ? K - kb : MM_KC;
            if (!B->direct)
                for (int r = 0; r < nr; r++) kn_wsrc_to_f32(B, n + r, kb, kc, tmpbuf + r * MM_KC);
            for (int64_t k = kb; k < kb + kc; k += KN_VW) {
                int64_t kk = kb + kc - k < KN_VW ? kb + kc - k : KN_VW;
                vf xv[MM_GEMV_MAX_M];
                for (int m = 0; m < MM_GEMV_MAX_M; m++) {
                    xv[m] = m < M ? v_load_n(x + m * ldx + k, kk) : v_zero();
                    if (rb) xv[m] = v_round_bf16(xv[m]);
                }
                for (int r = 0; r < 4; r++) {
                    if (r >= nr) break;
                    vf w;
                    if (!B->direct) {
                        w = v_load_n(tmpbuf + r * MM_KC + (k - kb), kk);
                    } else {
                        const char *src = (const char *)B->data + (size_t)(n + r) * B->rs + (size_t)k * B->es;
                        w = kk == KN_VW ? v_load_dt(src, dt) : v_load_dt_n(src, dt, kk);
                    }
                    if (rb) w = v_round_bf16(w);
                    for (int m = 0; m < MM_GEMV_MAX_M; m++)
                        if (m < M) a[r][m] = v_fma(xv[m], w, a[r][m]);
                }
            }
        }
        for (int r = 0; r < nr; r++)
            for (int m = 0; m < M; m++) {
                float v = v_hsum(a[r][m]) + (bias ? bias[n + r] : 0.0f);
                y[m * ldy + n + r] = acc ? y[m * ldy + n + r] + v : v;
            }
    }
}

int KN_FN(kn_gemm)(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M, int64_t N, int64_t K,
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
            if (n0 < n1) mm_gemv(y, ldy, x, ldx, M, B, K, bias, acc, n0, n1, bf16);
        }
        return 0;
    }
    static const kn_gemm_plan plan = {"fp32", KN_MR, KN_NR, MM_KC, MM_MC, MM_NC, MM_ROWS, 4, 0,
                                      mm_pack_a, mm_item, NULL, NULL};
    kn_gemm_call c = {y, ldy, x, ldx, K, B, bias, acc, bf16};
    return kn_gemm_drive(&plan, &c, M, N, T);
}

/* ---------------------------------------------------------------- implicit GEMM (convs)
 *
 * The conv shapes differ from the DiT's: N = Cout is only 128..512 and M = pixels is large.
 * So W (at most 4608 x 512) is packed once per conv into f32 panels, shared by all threads,
 * and the work items are MM_MC-row groups covering all N columns, reusing their A rows for
 * every NR-column panel. K is blocked so that no block crosses a kernel-row run (kw*cin
 * contiguous floats of the staged input); then an MR-pixel panel inside one output row is a
 * plain strided matrix (row stride s*cin, column stride 1) and the microkernel reads it in
 * place. Only panels that wrap to the next output row are gathered into a packed panel.
 * No patch matrix is materialized. */

static inline const float *mm_patch_base(const kn_patch_src *A, int64_t i) {
    int64_t oy = i / A->Wo, ox = i - oy * A->Wo;
    return A->x + ((oy * A->s) * A->sw + ox * A->s) * A->cin;
}

static inline int64_t mm_patch_off(const kn_patch_src *A, int64_t k) {
    int64_t run = (int64_t)A->kw * A->cin, ky = k / run, c0 = k - ky * run;
    return ky * A->sw * A->cin + c0;
}

/* K blocking: each run of `run` columns split into equal blocks of at most MM_KC. Block b
 * starts at *k0 and is *kc deep; returns the number of blocks. */
static int64_t mm_run_block(int64_t K, int64_t run, int64_t b, int64_t *k0, int64_t *kc) {
    int64_t nsub = (run + MM_KC - 1) / MM_KC, bs = (run + nsub - 1) / nsub;
    int64_t r = b / nsub, sub = b % nsub;
    *k0 = r * run + sub * bs;
    *kc = run - sub * bs < bs ? run - sub * bs : bs;
    return K / run * nsub;
}

size_t KN_FN(kn_packw_floats)(int64_t N, int64_t K) {
    return (size_t)((N + KN_NR - 1) / KN_NR * KN_NR) * (size_t)(K > 0 ? K : 0);
}

void KN_FN(kn_packw)(float *bp, const kn_wsrc *B, int64_t N, int64_t K, int64_t run, int T) {
    int64_t np = (N + KN_NR - 1) / KN_NR, k0, kc;
    if (K <= 0 || run <= 0 || K % run) return;
    int64_t nkb = mm_run_block(K, run, 0, &k0, &kc);
#pragma omp parallel for num_threads(T) schedule(static) collapse(2) if (T > 1 && N * K > 65536)
    for (int64_t kb = 0; kb < nkb; kb++)
        for (int64_t p = 0; p < np; p++) {
            int64_t b0, bc, n0 = p * KN_NR;
            mm_run_block(K, run, kb, &b0, &bc);
            // W[n0..n0+NR, b0..b0+bc] -> [bc][NR] f32 panel
            mm_pack_b(bp + b0 * np * KN_NR + p * bc * KN_NR, B, n0, N - n0 < KN_NR ? N - n0 : KN_NR, b0, bc, 0);
        }
}

/* Pack patch rows [i0, i0 + nrows) (nrows <= MR) x columns [k0, k0 + kc) (inside one run)
 * into one MR-row k-major panel: dst[k*MR + r] = patches[i0 + r][k0 + k] (0 for r >= nrows). */
static void mm_pack_patches(float *dst, const kn_patch_src *A, int64_t i0, int64_t nrows, int64_t k0, int64_t kc) {
    const float *base[KN_MR];
    int64_t off = mm_patch_off(A, k0);
    for (int64_t r = 0; r < nrows; r++) base[r] = mm_patch_base(A, i0 + r) + off;
    for (int r0 = 0; r0 < KN_MR; r0 += KN_VW)
        for (int64_t k = 0; k < kc; k += KN_VW) {
            int64_t kk = kc - k < KN_VW ? kc - k : KN_VW;
            vf r[KN_VW];
            for (int i = 0; i < KN_VW; i++) r[i] = r0 + i < nrows ? v_load_n(base[r0 + i] + k, kk) : v_zero();
            v_transpose(r);
            for (int64_t q = 0; q < kk; q++) v_store_n(dst + (k + q) * KN_MR + r0, r[q], KN_MR - r0);
        }
}

/* The microkernel on an in-place A: rows a + i*a_rs, k contiguous. The VAE's row strides
 * (channel counts) are compile-time constants here, so the MR rows are addressed by
 * displacements instead of MR live pointers (which spilled). */
static void mm_ukr_strided(int64_t kc, const float *a, int64_t a_rs, const float *bp, float *c, int64_t ldc, int mr,
                           int64_t n, int mode, const float *bias) {
    switch (a_rs) {
    case 128: mm_ukr(kc, a, 128, 1, bp, KN_NR, c, ldc, mr, n, mode, bias); break;
    case 256: mm_ukr(kc, a, 256, 1, bp, KN_NR, c, ldc, mr, n, mode, bias); break;
    case 512: mm_ukr(kc, a, 512, 1, bp, KN_NR, c, ldc, mr, n, mode, bias); break;
    default: mm_ukr(kc, a, a_rs, 1, bp, KN_NR, c, ldc, mr, n, mode, bias); break;
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
        int64_t off = mm_patch_off(A, k0);
        /* panels that wrap to the next output row are gathered; the others are read in place */
        for (int64_t i = r0; i < r1; i += KN_MR)
            if (i % A->Wo + KN_MR > A->Wo)
                mm_pack_patches(ap + (i - r0) * kc, A, i, r1 - i < KN_MR ? r1 - i : KN_MR, k0, kc);
        for (int64_t j = 0; j < np; j++) {
            const float *bpan = bpw + k0 * np * KN_NR + j * kc * KN_NR;
            const float *bb = bias ? bias + j * KN_NR : NULL;
            for (int64_t i = r0; i < r1; i += KN_MR) {
                int mr = (int)(r1 - i < KN_MR ? r1 - i : KN_MR);
                float *c = y + i * N + j * KN_NR;
                // [MR, kc] x [kc, NR] -> y[i.., NR*j..]
                if (i % A->Wo + KN_MR > A->Wo)
                    mm_ukr(kc, ap + (i - r0) * kc, 1, KN_MR, bpan, KN_NR, c, N, mr, N - j * KN_NR, mode, bb);
                else
                    mm_ukr_strided(kc, mm_patch_base(A, i) + off, a_rs, bpan, c, N, mr, N - j * KN_NR, mode, bb);
            }
        }
    }
}

int KN_FN(kn_gemm_patches)(float *y, const kn_patch_src *A, int64_t M, int64_t N, int64_t K, const float *bpw,
                               const float *bias, int acc, int T) {
    int64_t run = (int64_t)A->kw * A->cin;
    if (M <= 0 || N <= 0) return 0;
    if (K <= 0 || run <= 0 || K % run) return zi_err("conv GEMM: K = %lld is not a multiple of the run %lld", (long long)K, (long long)run);
    if ((double)M * (double)N * (double)K < 65536.0) T = 1;
    /* items of <= MM_MC rows (multiples of MR), a multiple of T of them of about equal size */
    int64_t ng = (M + MM_MC - 1) / MM_MC;
    ng = (ng + T - 1) / T * T;
    int64_t rpi = ((M + ng - 1) / ng + KN_MR - 1) / KN_MR * KN_MR;
    ng = (M + rpi - 1) / rpi;
    int failed = 0;
#pragma omp parallel num_threads(T) if (T > 1 && ng > 1)
    {
        float *ap = kn_scratch_get(sizeof(float) * MM_MC * MM_KC);
        if (!ap) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t g = 0; g < ng; g++) {
            int64_t r0 = g * rpi, r1 = M - r0 < rpi ? M : r0 + rpi;
            if (ap) mm_item_patches(y, A, bpw, N, K, bias, acc, r0, r1, ap);
        }
        kn_scratch_put(ap);
    }
    if (failed) return zi_err("out of memory for conv GEMM scratch");
    return 0;
}
