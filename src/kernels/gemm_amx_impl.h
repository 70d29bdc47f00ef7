/* gemm_amx_impl.h - the bf16-mode GEMM on AMX tiles (TDPBF16PS): y = bf16(x) . bf16(W)^T with
 * f32 accumulation. Instantiated by gemm_amx.c with the real tile instructions (tile_amx.h) and by
 * gemm_amx_emulated.c with a C emulation of the same eight tile registers (tile_emulated.h), so
 * the packing, tiling and write-back below are tested on every CPU (unit_kernels.c).
 *
 * Tiles (palette 1): C0..C3 = a 32 x 32 f32 block of y (four 16 x 16 tiles), A4/A5 = 16 rows x
 * 32 bf16 of x (rows 0-15 / 16-31), B6/B7 = 16 k-pairs x 16 columns of W (columns 0-15 / 16-31).
 * Per 32-element K chunk: 4 tile loads and 4 TDPBF16PS (each 16 x 16 x 32 = 16 KFLOP).
 * Packed layouts (K block of MA_KC = 256 bf16, padded with zeros to whole 32-element chunks):
 *   A: ap[(chunk*32 + r)*32 + e] = bf16(x[r][32 chunk + e])      (row-major tile rows, 64 B)
 *   B: bp[(kp*32 + j)] = pair(W[j][2kp], W[j][2kp+1])           (the VNNI pair layout, 128 B/kp)
 * Needs the tile vocabulary (TILE_*) and KN_FN first. */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../common/error.h"
#include "../common/quant.h"
#include "bf16_avx512.h"
#include "gemm_driver_impl.h"
#include "impl.h"

#ifndef MA_KC
#define MA_KC 256 /* bf16 elements per K block (8 chunks of 32) */
#endif
#define MA_MC 256              /* rows per A group (8 blocks of 32) */
#ifndef MA_NC
#define MA_NC 1024 /* max columns per work item */
#endif
#ifndef MA_ROWS
#define MA_ROWS (3 * MA_MC) /* max rows per work item */
#endif

#define MA_PACK_KC 1024 /* the largest K block ma_pack_b takes (MA_KC; MT_KC for x below) */

static inline uint16_t ma_bf16(float v) { return zi_f32_to_bf16(v); }

/* A for rows [0, nrows) (< 32 valid, zero padded to 32) x columns [0, kc) -> nch chunks. */
static void ma_pack_a(uint16_t *dst, const float *x, int64_t ldx, int64_t nrows, int64_t kc) {
    int64_t nch = (kc + 31) / 32;
    for (int64_t ch = 0; ch < nch; ch++)
        for (int64_t r = 0; r < 32; r++) {
            uint16_t *d = dst + (ch * 32 + r) * 32;
            for (int64_t e = 0; e < 32; e++) {
                int64_t k = ch * 32 + e;
                d[e] = r < nrows && k < kc ? ma_bf16(x[r * ldx + k]) : 0;
            }
        }
}

#if defined(__AVX512F__)
/* In-register 16 x 16 transpose of 32-bit elements: r[i] (16 dwords of row i) -> r[c] (column c). */
static inline void ma_transpose16(__m512i r[16]) {
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) { /* per 128-bit lane: (r_i[0], r_i+1[0], r_i[1], r_i+1[1]) ... */
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int g = 0; g < 16; g += 4) { /* r[g + e] lane L = rows g..g+3 of column 4L + e */
        r[g] = _mm512_unpacklo_epi64(t[g], t[g + 2]);
        r[g + 1] = _mm512_unpackhi_epi64(t[g], t[g + 2]);
        r[g + 2] = _mm512_unpacklo_epi64(t[g + 1], t[g + 3]);
        r[g + 3] = _mm512_unpackhi_epi64(t[g + 1], t[g + 3]);
    }
    for (int e = 0; e < 4; e++) { /* 4 x 4 transpose of 128-bit lanes across r[e], r[4+e], r[8+e], r[12+e] */
        __m512i a = _mm512_shuffle_i32x4(r[e], r[4 + e], 0x44), b = _mm512_shuffle_i32x4(r[e], r[4 + e], 0xEE);
        __m512i c = _mm512_shuffle_i32x4(r[8 + e], r[12 + e], 0x44), d = _mm512_shuffle_i32x4(r[8 + e], r[12 + e], 0xEE);
        t[e] = _mm512_shuffle_i32x4(a, c, 0x88);
        t[4 + e] = _mm512_shuffle_i32x4(a, c, 0xDD);
        t[8 + e] = _mm512_shuffle_i32x4(b, d, 0x88);
        t[12 + e] = _mm512_shuffle_i32x4(b, d, 0xDD);
    }
    for (int i = 0; i < 16; i++) r[i] = t[i];
}

/* The bf16 pairs of 16 full W rows (W[n0 + r0 + i][k0 + 2kp ..]) for kp < nkp (a multiple of 16):
 * a pair is the 32-bit word at the pair's address, so packing is a dword transpose. */
static void ma_pack_b_bf16_rows16(uint32_t *d, const kn_wsrc *B, int64_t row0, int64_t k0, int64_t nkp) {
    for (int64_t kp0 = 0; kp0 < nkp; kp0 += 16) {
        __m512i r[16];
        for (int i = 0; i < 16; i++)
            r[i] = _mm512_loadu_si512((const char *)B->data + (size_t)(row0 + i) * B->rs + (size_t)(k0 + 2 * kp0) * 2);
        ma_transpose16(r);
        for (int c = 0; c < 16; c++) _mm512_storeu_si512(d + (kp0 + c) * 32, r[c]);
    }
}


/* The same as ma_pack_b_bf16_rows16 for 16 f32 rows (x in the W-direct form): rounded to bf16
 * pairs (32 floats of K -> 16 pair dwords per row), then the dword transpose. */
static void ma_pack_b_f32_rows16(uint32_t *d, const kn_wsrc *B, int64_t row0, int64_t k0, int64_t nkp) {
    for (int64_t kp0 = 0; kp0 < nkp; kp0 += 16) {
        __m512i r[16];
        for (int i = 0; i < 16; i++) {
            const float *src = (const float *)((const char *)B->data + (size_t)(row0 + i) * B->rs) + k0 + 2 * kp0;
            __m256i lo = _mm512_cvtepi32_epi16(kn_bf16x16_bits(_mm512_loadu_ps(src)));
            __m256i hi = _mm512_cvtepi32_epi16(kn_bf16x16_bits(_mm512_loadu_ps(src + 16)));
            r[i] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
        }
        ma_transpose16(r);
        for (int c = 0; c < 16; c++) _mm512_storeu_si512(d + (kp0 + c) * 32, r[c]);
    }
}
#endif

/* B panels of 32 columns of W rows [n0, n0+nc) x columns [k0, k0+kc): [np][kc2p][32] pairs,
 * kc2p = 16 * ceil(kc / 32). bf16 weights are copied as pairs (exact); others converted. */
static void ma_pack_b(uint32_t *bp, const kn_wsrc *B, int64_t n0, int64_t nc, int64_t k0, int64_t kc) {
    int64_t kc2p = (kc + 31) / 32 * 16, np = (nc + 31) / 32;
    float row[MA_PACK_KC + 32]; /* kc <= MA_PACK_KC */
    for (int64_t p = 0; p < np; p++) {
        int64_t j0 = 0; /* rows below j0 are packed */
#if defined(__AVX512F__)
        if (B->direct && (B->dt == ZI_BF16 || B->dt == ZI_F32) && kc == 2 * kc2p) /* groups of 16 whole rows */
            for (; j0 < 32 && p * 32 + j0 + 16 <= nc; j0 += 16) {
                if (B->dt == ZI_BF16) ma_pack_b_bf16_rows16(bp + p * kc2p * 32 + j0, B, n0 + p * 32 + j0, k0, kc2p);
                else ma_pack_b_f32_rows16(bp + p * kc2p * 32 + j0, B, n0 + p * 32 + j0, k0, kc2p);
            }
#endif
        for (int64_t j = j0; j < 32; j++) {
            int64_t r = p * 32 + j;
            uint32_t *d = bp + p * kc2p * 32 + j;
            if (r >= nc) {
                for (int64_t kp = 0; kp < kc2p; kp++) d[kp * 32] = 0;
                continue;
            }
            if (B->direct && B->dt == ZI_BF16) {
                const uint16_t *src = (const uint16_t *)((const char *)B->data + (size_t)(n0 + r) * B->rs) + k0;
                for (int64_t kp = 0; kp < kc2p; kp++) {
                    uint32_t lo = 2 * kp < kc ? src[2 * kp] : 0, hi = 2 * kp + 1 < kc ? src[2 * kp + 1] : 0;
                    d[kp * 32] = lo | (hi << 16);
                }
                continue;
            }
            if (B->direct)
                zi_convert_to_f32(row, (const char *)B->data + (size_t)(n0 + r) * B->rs + (size_t)k0 * B->es, B->dt,
                                  (size_t)kc);
            else
                kn_wsrc_to_f32(B, n0 + r, k0, kc, row);
            for (int64_t k = kc; k < 2 * kc2p; k++) row[k] = 0.0f;
            for (int64_t kp = 0; kp < kc2p; kp++)
                d[kp * 32] = (uint32_t)ma_bf16(row[2 * kp]) | ((uint32_t)ma_bf16(row[2 * kp + 1]) << 16);
        }
    }
}

/* The four C tiles of a 32 x 32 f32 block (C0 rows 0-15 x columns 0-15, C1 columns 16-31, C2/C3
 * rows 16-31): loaded from / stored to c (ldc floats per row), or set to the bias row pair with
 * stride-0 loads (zero when bias is NULL). */
static inline void ma_c_load(const float *c, int64_t ldc) {
    TILE_LOAD(0, c, ldc * 4);
    TILE_LOAD(1, c + 16, ldc * 4);
    TILE_LOAD(2, c + 16 * ldc, ldc * 4);
    TILE_LOAD(3, c + 16 * ldc + 16, ldc * 4);
}
static inline void ma_c_store(float *c, int64_t ldc) {
    TILE_STORE(0, c, ldc * 4);
    TILE_STORE(1, c + 16, ldc * 4);
    TILE_STORE(2, c + 16 * ldc, ldc * 4);
    TILE_STORE(3, c + 16 * ldc + 16, ldc * 4);
}
static inline void ma_c_bias(const float *bias) {
    if (bias) {
        TILE_LOAD(0, bias, 0);
        TILE_LOAD(1, bias + 16, 0);
        TILE_LOAD(2, bias, 0);
        TILE_LOAD(3, bias + 16, 0);
    } else {
        TILE_ZERO(0);
        TILE_ZERO(1);
        TILE_ZERO(2);
        TILE_ZERO(3);
    }
}

/* One 32 x 32 block: C (+)= A[32, 32 nch] . B[32 nch, 32] over nch chunks, written to y rows
 * < mr, columns < n (mode 0: = acc + bias, 1: += acc, 2: += acc + bias). tmp: 32 x 32 floats. */
static void ma_block(const uint16_t *ap, const uint32_t *bp, int64_t nch, float *c, int64_t ldc, int mr, int64_t n,
                     int mode, const float *bias, float *tmp) {
    /* A full block with mode 0 or 1 keeps its accumulators in y itself: C tiles start as y (mode
     * 1) or as the bias rows (a stride-0 load) or zero (mode 0), and are stored back to y. */
    int direct = mr == 32 && n >= 32 && mode != 2;
    if (direct && mode == 1) ma_c_load(c, ldc);
    else ma_c_bias(direct ? bias : NULL);
    for (int64_t ch = 0; ch < nch; ch++) {
        TILE_LOAD(4, ap + ch * 32 * 32, 64);           /* x rows 0-15, 32 bf16 */
        TILE_LOAD(5, ap + ch * 32 * 32 + 16 * 32, 64); /* x rows 16-31 */
        TILE_LOAD(6, bp + ch * 16 * 32, 128);          /* 16 pairs x columns 0-15 */
        TILE_LOAD(7, bp + ch * 16 * 32 + 16, 128);     /* 16 pairs x columns 16-31 */
        TILE_DP(0, 4, 6);
        TILE_DP(1, 4, 7);
        TILE_DP(2, 5, 6);
        TILE_DP(3, 5, 7);
    }
    if (direct) {
        ma_c_store(c, ldc);
        return;
    }
    ma_c_store(tmp, 32);
    for (int i = 0; i < mr; i++) {
        float *ci = c + i * ldc;
        const float *ti = tmp + i * 32;
        for (int64_t j = 0; j < n && j < 32; j++) {
            float v = ti[j];
            if (mode != 1 && bias) v += bias[j];
            ci[j] = mode == 0 ? v : ci[j] + v;
        }
    }
}

/* Packed x (kn_apack): per K block kb, 32-row blocks of row-major tile rows (ma_pack_a). */
static const uint16_t *ma_apanel(const kn_apack *A, int64_t kb, int64_t row) {
    return (const uint16_t *)A->ap + (kb * A->ms_pad + row) * MA_KC;
}

static void ma_pack_a_block(const kn_gemm_call *c, const kn_apack *A, int64_t kb, int64_t i0) {
    int64_t k0 = kb * MA_KC, kc = c->K - k0 < MA_KC ? c->K - k0 : MA_KC;
    ma_pack_a((uint16_t *)ma_apanel(A, kb, i0), c->x + (A->m0 + i0) * c->ldx + k0, c->ldx,
              A->ms - i0 < 32 ? A->ms - i0 : 32, kc);
}

static void ma_item(const kn_gemm_call *c, const kn_apack *A, int64_t n0, int64_t nc, int64_t r0, int64_t r1,
                    void *bpv, void *tmpv) {
    float *y = c->y, *tmp = tmpv;
    uint32_t *bp = bpv;
    const float *bias = c->bias;
    int64_t ldy = c->ldy, K = c->K;
    const kn_wsrc *B = c->B;
    int acc = c->acc;
    for (int64_t kb = 0; kb * MA_KC < K; kb++) {
        int64_t k0 = kb * MA_KC, kc = K - k0 < MA_KC ? K - k0 : MA_KC, nch = (kc + 31) / 32, kc2p = nch * 16;
        int mode = k0 > 0 ? 1 : acc ? 2 : 0;
        ma_pack_b(bp, B, n0, nc, k0, kc); // W[n0.., k0..] -> [nc/32][kc2p][32] pairs
        for (int64_t j = 0; j < nc; j += 32)
            for (int64_t i = r0; i < r1; i += 32) {
                int mr = (int)(r1 - i < 32 ? r1 - i : 32);
                // [32, kc] x [kc, 32] -> y[m0+i.., n0+j..]
                ma_block(ma_apanel(A, kb, i), bp + (j / 32) * kc2p * 32, nch, y + (A->m0 + i) * ldy + n0 + j, ldy, mr,
                         nc - j, mode, bias ? bias + n0 + j : NULL, tmp);
            }
    }
}

static void ma_tiles_on(void) { TILE_CONFIG(); }
static void ma_tiles_off(void) { TILE_RELEASE(); }

/* ---- W-direct form, for bf16 weights with K and N multiples of 32 (every DiT and text-encoder
 * shape): y^T = W . x^T. W is the tiles' A operand, loaded straight from the (mapped) weights,
 * 16 rows x 32 bf16 with the weight row stride: W is never packed or copied. x is the B operand,
 * packed once per call into the pair layout (ma_pack_b on x's rows). A work item (W rows
 * [n0, n0+nc) x rows [r0, r1) of x) accumulates y^T in a per-thread f32 buffer yt [nc][rows]
 * that stays in L2, C tiles kept from one 32-chunk to the next within a K block of MT_KC; at the
 * end yt is transposed into y (+ bias, + y when acc). Where W's row stride is a multiple of 4 KiB
 * (K = 10240: 20 KiB) the 32 rows of a W block would all sit in one L1 set; the block (16 KB) is
 * then copied to a per-thread buffer first. Xeon AMX: 1,950-2,330 GFLOP/s at the DiT shapes vs
 * 1,050-1,720 for the packed form (PERF.md entry 27). */
#ifndef MT_KC
#define MT_KC 256   /* bf16 elements per K block: a 32-row W block (16 KB) and the x panel stay in L1 */
#endif
#if MT_KC > MA_PACK_KC || MA_KC > MA_PACK_KC
#error "K blocks larger than ma_pack_b's row buffer"
#endif
#ifndef MT_NC
#define MT_NC 256   /* W rows (output columns) per work item */
#endif
#ifndef MT_ROWS
#define MT_ROWS 512 /* x rows per work item */
#endif

/* x rows [i0, i0 + 32) of K block kb in the pair layout: [kc / 2][32] dwords (zero rows past ms) */
static void mt_pack_x(const kn_gemm_call *c, const kn_apack *A, int64_t kb, int64_t i0) {
    int64_t k0 = kb * MT_KC, kc = c->K - k0 < MT_KC ? c->K - k0 : MT_KC;
    kn_wsrc xs = kn_wsrc_f32(c->x, c->ldx);
    ma_pack_b((uint32_t *)A->ap + (kb * A->ms_pad + i0) * (MT_KC / 2), &xs, A->m0 + i0,
              A->ms - i0 < 32 ? A->ms - i0 : 32, k0, kc);
}

/* y rows [i0, i0 + mr) x columns [j0, j0 + nn) (+)= yt^T (+ bias) */
static void mt_write(const kn_gemm_call *c, float *y, const float *yt, int64_t ldt, int64_t mr, int64_t nn,
                     const float *bias) {
    int64_t ldy = c->ldy;
    int64_t i = 0;
#if defined(__AVX512F__)
    for (; i + 16 <= mr; i += 16)
        for (int64_t j = 0; j + 16 <= nn; j += 16) {
            __m512i r[16];
            for (int t = 0; t < 16; t++) r[t] = _mm512_loadu_si512(yt + (j + t) * ldt + i); /* yt row n = j + t */
            ma_transpose16(r); /* r[u] = column i + u of that block = y row i + u */
            __m512 b = bias ? _mm512_loadu_ps(bias + j) : _mm512_setzero_ps();
            for (int u = 0; u < 16; u++) {
                float *yr = y + (i + u) * ldy + j;
                __m512 v = _mm512_add_ps(_mm512_castsi512_ps(r[u]), b);
                if (c->acc) v = _mm512_add_ps(_mm512_loadu_ps(yr), v);
                _mm512_storeu_ps(yr, v);
            }
        }
#endif
    for (; i < mr; i++)
        for (int64_t j = 0; j < nn; j++) {
            float v = yt[j * ldt + i] + (bias ? bias[j] : 0.0f);
            y[i * ldy + j] = c->acc ? y[i * ldy + j] + v : v;
        }
}

/* 32 W rows from `row`, K columns [k0, k0 + kc), as bf16 rows of ldb bytes (quantized or f16/f32
 * weights: dequantized, then rounded like ma_pack_b). Q8_0 16 lanes at a time, prefetching the
 * next 32-row block's bytes (Q8_0 DiT 512x512 bf16 mode: 14.0 s -> 8.7 s, PERF.md entry 27). */
static void mt_convert_w(void *dst, int64_t ldb, const kn_wsrc *B, int64_t row, int64_t row_end, int64_t k0,
                         int64_t kc) {
    float f[MA_PACK_KC];
    (void)row_end;
#if defined(__AVX512F__)
    if (B->dt == ZI_Q8_0 && (B->scale == 0.0f || B->scale == 1.0f)) { /* 16 lanes: q * d as zi_dequant_q8_0 */
        for (int r = 0; r < 32; r++) {
            const zi_block_q8_0 *q = (const zi_block_q8_0 *)kn_wsrc_at(B, row + r, k0);
            if (row + 32 + r < row_end) { /* the same K range of the next 32-row block, into L2 */
                const char *nq = kn_wsrc_at(B, row + 32 + r, k0);
                for (int64_t l = 0; l < kc / 32 * 34; l += 64) __builtin_prefetch(nq + l, 0, 2);
            }
            uint16_t *d = (uint16_t *)((char *)dst + r * ldb);
            for (int64_t b = 0; b < kc / 32; b++) {
                __m512 sc = _mm512_set1_ps(zi_f16_to_f32(q[b].d));
                __m256i v = _mm256_loadu_si256((const __m256i *)q[b].qs);
                __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(v)));
                __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(v, 1)));
                kn_bf16x16_store(d + 32 * b, _mm512_mul_ps(lo, sc));
                kn_bf16x16_store(d + 32 * b + 16, _mm512_mul_ps(hi, sc));
            }
        }
        return;
    }
    if (B->dt == ZI_Q4_K && (B->scale == 0.0f || B->scale == 1.0f)) { /* as zi_dequant_q4_k: d1 * q - m1 */
        for (int r = 0; r < 32; r++) {
            const zi_block_q4_k *q = (const zi_block_q4_k *)kn_wsrc_at(B, row + r, k0);
            if (row + 32 + r < row_end) {
                const char *nq = kn_wsrc_at(B, row + 32 + r, k0);
                for (int64_t l = 0; l < kc / 256 * (int64_t)sizeof(zi_block_q4_k); l += 64) __builtin_prefetch(nq + l, 0, 2);
            }
            uint16_t *o = (uint16_t *)((char *)dst + r * ldb);
            for (int64_t b = 0; b < kc / 256; b++) {
                float d = zi_f16_to_f32(q[b].d), dmin = zi_f16_to_f32(q[b].dmin);
                const uint8_t *qs = q[b].qs;
                for (int is = 0; is < 8; is += 2, qs += 32, o += 64) {
                    uint8_t sc, mn;
                    zi_k4_scale_min(is, q[b].scales, &sc, &mn);
                    __m512 d1 = _mm512_set1_ps(d * sc), m1 = _mm512_set1_ps(dmin * mn);
                    zi_k4_scale_min(is + 1, q[b].scales, &sc, &mn);
                    __m512 d2 = _mm512_set1_ps(d * sc), m2 = _mm512_set1_ps(dmin * mn);
                    __m256i v = _mm256_loadu_si256((const __m256i *)qs), f = _mm256_set1_epi8(0x0F);
                    __m256i lo = _mm256_and_si256(v, f), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), f);
                    for (int h = 0; h < 2; h++) { /* values 16 h .. 16 h + 15 of each sub-block */
                        __m128i l8 = h ? _mm256_extracti128_si256(lo, 1) : _mm256_castsi256_si128(lo);
                        __m128i h8 = h ? _mm256_extracti128_si256(hi, 1) : _mm256_castsi256_si128(hi);
                        __m512 yl = _mm512_sub_ps(_mm512_mul_ps(d1, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(l8))), m1);
                        __m512 yh = _mm512_sub_ps(_mm512_mul_ps(d2, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(h8))), m2);
                        kn_bf16x16_store(o + 16 * h, yl);
                        kn_bf16x16_store(o + 32 + 16 * h, yh);
                    }
                }
            }
        }
        return;
    }
#endif
    for (int r = 0; r < 32; r++) {
        if (B->direct)
            zi_convert_to_f32(f, (const char *)B->data + (size_t)(row + r) * B->rs + (size_t)k0 * B->es, B->dt,
                              (size_t)kc);
        else
            kn_wsrc_to_f32(B, row + r, k0, kc, f);
        uint16_t *d = (uint16_t *)((char *)dst + r * ldb);
        int64_t k = 0;
#if defined(__AVX512F__)
        for (; k + 16 <= kc; k += 16)
            kn_bf16x16_store(d + k, _mm512_loadu_ps(f + k));
#endif
        for (; k < kc; k++) d[k] = ma_bf16(f[k]);
    }
}

static void mt_item(const kn_gemm_call *c, const kn_apack *A, int64_t n0, int64_t nc, int64_t r0, int64_t r1,
                    void *bpv, void *tmpv) {
    float *yt = tmpv;                                /* [nc][ldt] f32 */
    int64_t K = c->K, rows = r1 - r0, ldt = (rows + 31) / 32 * 32;
    const kn_wsrc *B = c->B;
    for (int64_t kb = 0; kb * MT_KC < K; kb++) {
        int64_t k0 = kb * MT_KC, nch = (K - k0 < MT_KC ? K - k0 : MT_KC) / 32;
        for (int64_t nb = 0; nb < nc; nb += 32) {
            int64_t rs = (int64_t)B->rs;
            const char *w = (const char *)B->data + (size_t)(n0 + nb) * B->rs + (size_t)k0 * 2; /* W[n0+nb][k0] */
            if (!(B->direct && B->dt == ZI_BF16)) { /* Q8_0, Q4_K: the block dequantized to bf16 rows */
                int64_t kcb = nch * 64;
                mt_convert_w(bpv, kcb, B, n0 + nb, n0 + nc, k0, nch * 32);
                w = bpv, rs = kcb;
            } else if (rs % 4096 == 0) { /* the 32 rows would share one L1 set (K = 10240): copy the block first */
                int64_t kcb = nch * 64;
                for (int r = 0; r < 32; r++) memcpy((char *)bpv + r * kcb, w + r * rs, (size_t)kcb);
                w = bpv, rs = kcb;
            }
            for (int64_t mb = 0; mb < ldt; mb += 32) {
                const uint32_t *xp = (const uint32_t *)A->ap + (kb * A->ms_pad + r0 + mb) * (MT_KC / 2);
                float *ct = yt + nb * ldt + mb; /* C0: n 0-15 x m 0-15, C1: m 16-31, C2/C3: n 16-31 */
                if (kb == 0) ma_c_bias(NULL);
                else ma_c_load(ct, ldt);
                for (int64_t ch = 0; ch < nch; ch++) {
                    {   /* the next chunk's x tiles (2 KB, contiguous) into L1: +6-14% */
                        const char *nx = (const char *)(xp + (ch + 1) * 16 * 32);
                        for (int l = 0; l < 32; l++) __builtin_prefetch(nx + 64 * l);
                    }
                    TILE_LOAD(4, w + ch * 64, rs);          /* W rows nb..nb+15, 32 bf16 of K */
                    TILE_LOAD(5, w + 16 * rs + ch * 64, rs); /* W rows nb+16..nb+31 */
                    TILE_LOAD(6, xp + ch * 16 * 32, 128);    /* 16 pairs x x rows mb..mb+15 */
                    TILE_LOAD(7, xp + ch * 16 * 32 + 16, 128);
                    TILE_DP(0, 4, 6);
                    TILE_DP(1, 4, 7);
                    TILE_DP(2, 5, 6);
                    TILE_DP(3, 5, 7);
                }
                ma_c_store(ct, ldt);
            }
        }
    }
    mt_write(c, c->y + (A->m0 + r0) * c->ldy + n0, yt, ldt, rows, nc, c->bias ? c->bias + n0 : NULL);
}

int KN_FN(kn_gemm_bf16)(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M, int64_t N, int64_t K,
                        const kn_wsrc *B, const float *bias, int acc, int T) {
    if (M <= 0 || N <= 0 || K <= 0) return 0;
    static const kn_gemm_plan plan = {"AMX", 32, 32, MA_KC, MA_MC, MA_NC, MA_ROWS, 2, sizeof(float) * 32 * 32,
                                      ma_pack_a_block, ma_item, ma_tiles_on, ma_tiles_off};
    static const kn_gemm_plan plan_wd = {"AMX", 32, 32, MT_KC, MA_MC, MT_NC, MT_ROWS, 2,
                                         sizeof(float) * MT_NC * ((MT_ROWS + 31) / 32 * 32), mt_pack_x, mt_item,
                                         ma_tiles_on, ma_tiles_off};
    kn_gemm_call c = {y, ldy, x, ldx, K, B, bias, acc, 1};
    /* W-direct for bf16 and Q8_0 weights (measured faster; other types keep the packed form) */
    /* W-direct for bf16, Q8_0 and Q4_K weights (their blocks convert 16 lanes at a time; measured
     * faster than the packed form, PERF.md entry 27); other types keep the packed form */
    int unscaled = B->scale == 0.0f || B->scale == 1.0f;
    int wd_type = (B->direct && B->dt == ZI_BF16) || (B->dt == ZI_Q8_0 && unscaled) ||
                  (B->dt == ZI_Q4_K && unscaled && K % 256 == 0);
    if (wd_type && K % 32 == 0 && N % 32 == 0)
        return kn_gemm_drive(&plan_wd, &c, M, N, T);
    return kn_gemm_drive(&plan, &c, M, N, T);
}

/* ---- The implicit-GEMM conv (conv.c, bf16 mode, stride 1): one staged tile's k x k conv as one
 * GEMM, y[mt, N] = P . W^T + bias, where row r of P (an output pixel) is the k*k*cin patch at
 * stage pixels r + ky*sw + kx. The stage is converted once to bf16, pixel-major [pixel][cin], so an
 * A tile (16 pixels x 32 channels of one tap) is 16 rows of 64 B at a stride of cin*2 bytes, loaded
 * straight from it: nothing is packed per tap. W (tap-major [N][k*k*cin]) is packed once into pair
 * panels [K block][N/32][128][32]. A 32 x 32 block of y keeps its four C tiles over the whole K.
 * Pixel blocks go in groups of MC_GROUP (their stage rows stay in L2) with W panels outer. */
#define MC_GROUP 8

static int mc_conv_block(float *y, int64_t N, const uint16_t *sb, int64_t cin, int64_t sw, int k, int64_t K,
                         const uint32_t *wp, int64_t np, int64_t m0, int64_t mr, int64_t j, const float *bias,
                         float *tmp) {
    int64_t ldb = cin * 2, pstride = np * 128 * 32; /* bytes per stage pixel; dwords per packed K block */
    ma_c_bias(bias ? bias + j : NULL);
    for (int64_t kk = 0; kk < K / 32; kk++) { /* chunk kk: tap t, channels c0 .. c0 + 31 */
        int64_t t = kk * 32 / cin, c0 = kk * 32 - t * cin, off = (t / k) * sw + t % k;
        const uint16_t *a = sb + (m0 + off) * cin + c0;
        const uint32_t *b = wp + (kk / 8) * pstride + (j / 32) * 128 * 32 + (kk % 8) * 16 * 32;
        TILE_LOAD(4, a, ldb);           /* pixels m0..m0+15 */
        TILE_LOAD(5, a + 16 * cin, ldb); /* pixels m0+16..m0+31 */
        TILE_LOAD(6, b, 128);
        TILE_LOAD(7, b + 16, 128);
        TILE_DP(0, 4, 6);
        TILE_DP(1, 4, 7);
        TILE_DP(2, 5, 6);
        TILE_DP(3, 5, 7);
    }
    if (mr == 32) ma_c_store(y + m0 * N + j, N);
    else ma_c_store(tmp, 32);
    if (mr < 32)
        for (int64_t i = 0; i < mr; i++) memcpy(y + (m0 + i) * N + j, tmp + i * 32, sizeof(float) * 32);
    return 0;
}

/* The whole stride-1 conv of one staged tile (npix staged pixels of cin channels, sw per row):
 * y[mt, N] = patches . W^T + bias, W tap-major [N][k*k*cin]. Returns 1 (nothing done) unless cin
 * and N are multiples of 32; -1 when out of memory. */
int KN_FN(kn_conv_bf16)(float *y, const float *stage, int64_t npix, int64_t sw, int64_t cin, int k, int64_t mt,
                        int64_t N, const kn_wsrc *B, const float *bias, int T) {
    if (cin % 32 || N % 32 || mt <= 0) return 1;
    int64_t K = (int64_t)k * k * cin, np = N / 32, nkb = (K + MA_KC - 1) / MA_KC, mtp = (mt + 31) / 32 * 32;
    int64_t nsb = mtp + (int64_t)(k - 1) * (sw + 1); /* every pixel an A tile can touch */
    uint16_t *sb = kn_scratch_get(sizeof(uint16_t) * (size_t)(nsb * cin));
    uint32_t *wp = sb ? kn_scratch_get(sizeof(uint32_t) * (size_t)(nkb * np * 128 * 32)) : NULL;
    if (!wp) {
        kn_scratch_put(sb);
        return zi_err("out of memory for the AMX conv (%lld pixels x %lld channels)", (long long)nsb, (long long)cin);
    }
    int64_t nmb = mtp / 32, ngroups = (nmb + MC_GROUP - 1) / MC_GROUP;
    int failed = 0;
#pragma omp parallel num_threads(T) if (T > 1)
    {
#pragma omp for schedule(static)
        for (int64_t p = 0; p < nsb; p++) { /* the stage in bf16 (zeros past npix) */
            uint16_t *d = sb + p * cin;
            const float *x = stage + p * cin;
            int64_t e = 0;
            if (p >= npix) {
                memset(d, 0, sizeof(uint16_t) * (size_t)cin);
                continue;
            }
#if defined(__AVX512F__)
            for (; e + 16 <= cin; e += 16) kn_bf16x16_store(d + e, _mm512_loadu_ps(x + e));
#endif
            for (; e < cin; e++) d[e] = ma_bf16(x[e]);
        }
#pragma omp for schedule(static) collapse(2)
        for (int64_t kb = 0; kb < nkb; kb++) /* W pair panels, one K block at a time */
            for (int64_t pp = 0; pp < np; pp++) {
                int64_t k0 = kb * MA_KC, kc = K - k0 < MA_KC ? K - k0 : MA_KC;
                ma_pack_b(wp + kb * np * 128 * 32 + pp * 128 * 32, B, pp * 32, 32, k0, kc);
            }
        float *tmp = kn_scratch_get(sizeof(float) * 32 * 32);
        if (!tmp) {
#pragma omp atomic write
            failed = 1;
        }
        TILE_CONFIG();
#pragma omp for schedule(dynamic, 1)
        for (int64_t g = 0; g < ngroups; g++)
            for (int64_t j = 0; j < N && tmp; j += 32)
                for (int64_t i = g * MC_GROUP; i < nmb && i < (g + 1) * MC_GROUP; i++)
                    mc_conv_block(y, N, sb, cin, sw, k, K, wp, np, i * 32, mt - i * 32 < 32 ? mt - i * 32 : 32, j,
                                  bias, tmp);
        TILE_RELEASE();
        kn_scratch_put(tmp);
    }
    kn_scratch_put(wp);
    kn_scratch_put(sb);
    return failed ? zi_err("out of memory for the AMX conv") : 0;
}
