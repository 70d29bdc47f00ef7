/* gemm_q8.c - the ISA-independent scalar parts of the int8-activation GEMM (gemm_q8.h): which
 * weight types have an int8 panel form, their unpacking, the activation quantizer, and the
 * choice of instance. Compiled without ISA flags, so every instance quantizes and unpacks
 * bit-identically (their float sequences are then identical too: see gemm_q8.h). */
#include <math.h>
#include <string.h>

#include "../common/quant.h"
#include "gemm_q8.h"

int kn_q8_kind(zi_dtype dt) {
    switch (dt) {
    case ZI_Q8_0: return 1;
    case ZI_Q4_0:
    case ZI_Q5_0:
    case ZI_Q4_1:
    case ZI_Q5_1:
    case ZI_Q4_K:
    case ZI_Q5_K: return 2;
    case ZI_Q6_K:
    case ZI_Q3_K: return 3;
    case ZI_Q2_K: return 4;
    default: return 0;
    }
}

static uint32_t q8_rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

void kn_q8_unpack(zi_dtype dt, const void *src, int64_t n, int8_t *q, float *d, float *m) {
    int64_t nb = n / KQ_BLK;
    switch (dt) {
    case ZI_Q8_0: {
        const zi_block_q8_0 *x = src;
        for (int64_t b = 0; b < nb; b++, q += 32) {
            d[b] = zi_f16_to_f32(x[b].d), m[b] = 0.0f;
            memcpy(q, x[b].qs, 32);
        }
        break;
    }
    case ZI_Q4_0: {
        const zi_block_q4_0 *x = src; /* w = d (q - 8) = d q - 8 d (8 d exact): q stays unsigned */
        for (int64_t b = 0; b < nb; b++, q += 32) {
            d[b] = zi_f16_to_f32(x[b].d), m[b] = 8.0f * d[b];
            for (int j = 0; j < 16; j++) {
                q[j] = (int8_t)(x[b].qs[j] & 0x0F);
                q[j + 16] = (int8_t)(x[b].qs[j] >> 4);
            }
        }
        break;
    }
    case ZI_Q4_1: { /* w = q d + m = d q - (-m) */
        const zi_block_q4_1 *x = src;
        for (int64_t b = 0; b < nb; b++, q += 32) {
            d[b] = zi_f16_to_f32(x[b].d), m[b] = -zi_f16_to_f32(x[b].m);
            for (int j = 0; j < 16; j++) {
                q[j] = (int8_t)(x[b].qs[j] & 0x0F);
                q[j + 16] = (int8_t)(x[b].qs[j] >> 4);
            }
        }
        break;
    }
    case ZI_Q5_0:
    case ZI_Q5_1: {
        for (int64_t b = 0; b < nb; b++, q += 32) {
            const uint8_t *qs, *qhp;
            int off;
            if (dt == ZI_Q5_0) {
                const zi_block_q5_0 *x = (const zi_block_q5_0 *)src + b;
                d[b] = zi_f16_to_f32(x->d), m[b] = 16.0f * d[b], qs = x->qs, qhp = x->qh, off = 0; /* as Q4_0 */
            } else {
                const zi_block_q5_1 *x = (const zi_block_q5_1 *)src + b;
                d[b] = zi_f16_to_f32(x->d), m[b] = -zi_f16_to_f32(x->m), qs = x->qs, qhp = x->qh, off = 0;
            }
            uint32_t qh = q8_rd32(qhp);
            for (int j = 0; j < 16; j++) {
                int h0 = (int)((qh >> j) << 4) & 0x10, h1 = (int)(qh >> (j + 12)) & 0x10;
                q[j] = (int8_t)(((qs[j] & 0x0F) | h0) - off);
                q[j + 16] = (int8_t)(((qs[j] >> 4) | h1) - off);
            }
        }
        break;
    }
    case ZI_Q4_K:
    case ZI_Q5_K: {
        for (int64_t b = 0; b < nb; b++, q += 32) {
            int64_t sb = b / 8;
            int j = (int)(b % 8);
            const uint8_t *scales, *qs, *qh = NULL;
            float dd, dmin;
            if (dt == ZI_Q4_K) {
                const zi_block_q4_k *x = (const zi_block_q4_k *)src + sb;
                dd = zi_f16_to_f32(x->d), dmin = zi_f16_to_f32(x->dmin), scales = x->scales, qs = x->qs;
            } else {
                const zi_block_q5_k *x = (const zi_block_q5_k *)src + sb;
                dd = zi_f16_to_f32(x->d), dmin = zi_f16_to_f32(x->dmin), scales = x->scales, qs = x->qs, qh = x->qh;
            }
            uint8_t sc, mn;
            zi_k4_scale_min(j, scales, &sc, &mn);
            d[b] = dd * sc, m[b] = dmin * mn; /* as zi_dequant_q4_k: d1 = d * sc, m1 = dmin * m */
            const uint8_t *p = qs + (j / 2) * 32;
            int shift = (j & 1) * 4;
            uint8_t hbit = (uint8_t)(1u << j);
            for (int l = 0; l < 32; l++) {
                int v = (p[l] >> shift) & 0xF;
                if (qh && (qh[l] & hbit)) v += 16;
                q[l] = (int8_t)v;
            }
        }
        break;
    }
    case ZI_Q6_K:
    case ZI_Q3_K:
    case ZI_Q2_K: { /* 16 scales per 256; 32-block j of a super-block: 16-blocks 2j, 2j + 1 */
        for (int64_t b = 0; b < nb; b++, q += 32, d += 2, m += 2) {
            int64_t sb = b / 8;
            int j = (int)(b % 8), half = j / 4, c = j % 4; /* 128-half, quarter (2-bit shift) */
            if (dt == ZI_Q6_K) { /* as zi_dequant_q6_k: (d * sc) * (q - 32), both products exact */
                const zi_block_q6_k *x = (const zi_block_q6_k *)src + sb;
                float dd = zi_f16_to_f32(x->d);
                const uint8_t *ql = x->ql + half * 64 + (c & 1) * 32, *qh = x->qh + half * 32;
                for (int h = 0; h < 2; h++) d[h] = dd * x->scales[2 * j + h], m[h] = 0.0f;
                for (int l = 0; l < 32; l++)
                    q[l] = (int8_t)((((ql[l] >> (c / 2 * 4)) & 0xF) | ((qh[l] >> (2 * c)) & 3) << 4) - 32);
            } else if (dt == ZI_Q3_K) { /* as zi_dequant_q3_k: d * sc6 * (q - 4 or q), exact */
                const zi_block_q3_k *x = (const zi_block_q3_k *)src + sb;
                float dd = zi_f16_to_f32(x->d);
                const uint8_t *qs = x->qs + half * 32, *hm = x->hmask, *s = x->scales;
                uint8_t hb = (uint8_t)(1u << j);
                for (int h = 0; h < 2; h++) {
                    int i = 2 * j + h; /* 6-bit signed scale i, as q3k_scale */
                    int lo = i < 8 ? s[i] & 0xF : s[i - 8] >> 4, hi = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
                    d[h] = dd * (float)((lo | hi << 4) - 32), m[h] = 0.0f;
                }
                for (int l = 0; l < 32; l++) q[l] = (int8_t)(((qs[l] >> (2 * c)) & 3) - (hm[l] & hb ? 0 : 4));
            } else { /* Q2_K, as zi_dequant_q2_k: dl = d (sc & 15), ml = dmin (sc >> 4), w = dl q - ml */
                const zi_block_q2_k *x = (const zi_block_q2_k *)src + sb;
                float dd = zi_f16_to_f32(x->d), dmin = zi_f16_to_f32(x->dmin);
                const uint8_t *qs = x->qs + half * 32;
                for (int h = 0; h < 2; h++) {
                    uint8_t sc = x->scales[2 * j + h];
                    d[h] = dd * (float)(sc & 0xF), m[h] = dmin * (float)(sc >> 4);
                }
                for (int l = 0; l < 32; l++) q[l] = (int8_t)((qs[l] >> (2 * c)) & 3);
            }
        }
        break;
    }
    default: memset(q, 0, (size_t)n), memset(d, 0, sizeof(float) * (size_t)nb), memset(m, 0, sizeof(float) * (size_t)nb);
    }
}

void kn_q8_quant_block(const float *x, int8_t *q, float *d, float *sx) {
    float amax = 0.0f;
    int finite = 1;
    for (int k = 0; k < KQ_BLK; k++) {
        float a = fabsf(x[k]);
        if (!(a <= 3.4028235e38f)) finite = 0; /* inf or NaN */
        if (a > amax) amax = a;
    }
    float dd = amax / 127.0f, id = dd != 0.0f ? 1.0f / dd : 0.0f;
    if (!finite) dd = NAN, id = 0.0f;
    if (!(id <= 3.4028235e38f)) id = 0.0f, dd = 0.0f; /* |x| < ~1e-36 (1/d overflows): all q = 0 */
    int sum = 0;
    for (int k = 0; k < KQ_BLK; k++) {
        int v = id != 0.0f ? (int)roundf(x[k] * id) : 0; /* id != 0: every x finite, |x id| <= ~127 */
        q[k] = (int8_t)v;
        sum += v;
    }
    *d = dd;
    *sx = dd * (float)sum;
}

void kn_q8_half_sums(const int8_t *q, float d, float *sx) {
    for (int h = 0; h < 2; h++) {
        int sum = 0;
        for (int k = 0; k < KQ_BLK / 2; k++) sum += q[h * KQ_BLK / 2 + k];
        sx[h] = d * (float)sum;
    }
}

kn_gemm_q8_fn kn_gemm_q8_get(zi_dtype dt, const char **name) {
    const char *nm = "generic (emulated vpdpbusd)";
    kn_gemm_q8_fn f = kn_gemm_q8_generic;
    (void)dt;
#if defined(__x86_64__)
    kn_isa isa = kn_get_isa();
    int kind = kn_q8_kind(dt);
    if (isa == KN_ISA_AMX && kn_cpu_has_amx_int8() && (kind == 1 || kind == 2))
        nm = "amx (TDPBSSD tiles, per-32-block scaling on AVX-512)", f = kn_gemm_q8_amx;
    else if (isa >= KN_ISA_AVX512 && kn_cpu_has_avx512vnni())
        nm = "avx512vnni (vpdpbusd)", f = kn_gemm_q8_avx512vnni;
    else if (isa >= KN_ISA_AVX2) /* AVX-512 without VNNI runs the AVX2 kernels */
        nm = "avx2 (vpmaddubsw on u8 weights for the offset types, on u8 activations for Q6_K/Q3_K; "
             "vpmaddwd on int16 for Q8_0)",
        f = KN_Q8_OFFSET(kn_q8_kind(dt)) ? kn_gemm_q8_avx2u : kn_q8_kind(dt) == 3 ? kn_gemm_q8_avx2s : kn_gemm_q8_avx2;
#endif
    if (name) *name = nm;
    return f;
}
