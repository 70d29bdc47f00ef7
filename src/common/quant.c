/* quant.c - scalar (de)quantization of the ggml block formats (see quant.h).
 *
 * Written from the format definitions; every float expression keeps ggml's operand
 * order so results are bit-identical to its reference code (checked against ggml's
 * own output by the gguf_dequant golden cases and tests/unit/unit_gguf.c). */
#include "quant.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* a*b + c must round twice, as in ggml's reference build: no FMA contraction. GCC does not
 * contract in ISO mode (-std=c11, as the Makefile builds); clang needs the pragma. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

_Static_assert(sizeof(zi_block_q4_0) == 18, "q4_0 block");
_Static_assert(sizeof(zi_block_q4_1) == 20, "q4_1 block");
_Static_assert(sizeof(zi_block_q5_0) == 22, "q5_0 block");
_Static_assert(sizeof(zi_block_q5_1) == 24, "q5_1 block");
_Static_assert(sizeof(zi_block_q8_0) == 34, "q8_0 block");
_Static_assert(sizeof(zi_block_q2_k) == 84, "q2_K block");
_Static_assert(sizeof(zi_block_q3_k) == 110, "q3_K block");
_Static_assert(sizeof(zi_block_q4_k) == 144, "q4_K block");
_Static_assert(sizeof(zi_block_q5_k) == 176, "q5_K block");
_Static_assert(sizeof(zi_block_q6_k) == 210, "q6_K block");

#define H2F(h) zi_f16_to_f32(h)
#define F2H(f) zi_f32_to_f16(f)
#define QMIN(a, b) ((a) < (b) ? (a) : (b))
#define QMAX(a, b) ((a) > (b) ? (a) : (b))
#define GROUP_MAX_EPS 1e-15f

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---------------------------------------------------------------- dequantization */

void zi_dequant_q4_0(const zi_block_q4_0 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += ZI_QK) {
        const float d = H2F(x[i].d);
        for (int j = 0; j < ZI_QK / 2; j++) {
            y[j] = ((x[i].qs[j] & 0x0F) - 8) * d;
            y[j + ZI_QK / 2] = ((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void zi_dequant_q4_1(const zi_block_q4_1 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += ZI_QK) {
        const float d = H2F(x[i].d), m = H2F(x[i].m);
        for (int j = 0; j < ZI_QK / 2; j++) {
            y[j] = (x[i].qs[j] & 0x0F) * d + m;
            y[j + ZI_QK / 2] = (x[i].qs[j] >> 4) * d + m;
        }
    }
}

void zi_dequant_q5_0(const zi_block_q5_0 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += ZI_QK) {
        const float d = H2F(x[i].d);
        const uint32_t qh = rd32(x[i].qh); /* bit j: 5th bit of element j */
        for (int j = 0; j < ZI_QK / 2; j++) {
            const int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
            y[j] = (((x[i].qs[j] & 0x0F) | h0) - 16) * d;
            y[j + ZI_QK / 2] = (((x[i].qs[j] >> 4) | h1) - 16) * d;
        }
    }
}

void zi_dequant_q5_1(const zi_block_q5_1 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += ZI_QK) {
        const float d = H2F(x[i].d), m = H2F(x[i].m);
        const uint32_t qh = rd32(x[i].qh);
        for (int j = 0; j < ZI_QK / 2; j++) {
            const int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
            y[j] = ((x[i].qs[j] & 0x0F) | h0) * d + m;
            y[j + ZI_QK / 2] = ((x[i].qs[j] >> 4) | h1) * d + m;
        }
    }
}

void zi_dequant_q8_0(const zi_block_q8_0 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += ZI_QK) {
        const float d = H2F(x[i].d);
        for (int j = 0; j < ZI_QK; j++) y[j] = x[i].qs[j] * d;
    }
}

/* 2-bit quants, 16 sub-blocks of 16 with 4-bit scale and 4-bit min each */
void zi_dequant_q2_k(const zi_block_q2_k *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = H2F(x[i].d), dmin = H2F(x[i].dmin);
        const uint8_t *q = x[i].qs;
        int is = 0;
        for (int n = 0; n < ZI_QK_K; n += 128, q += 32)
            for (int shift = 0; shift < 8; shift += 2)
                for (int half = 0; half < 2; half++) {
                    const uint8_t sc = x[i].scales[is++];
                    const float dl = d * (sc & 0xF), ml = dmin * (sc >> 4);
                    for (int l = 0; l < 16; l++) *y++ = dl * ((q[l + 16 * half] >> shift) & 3) - ml;
                }
    }
}

/* 6-bit signed scales of Q3_K: 16 values packed into 12 bytes (low 4 bits in bytes 0-7,
 * high 2 bits in bytes 8-11). */
static int q3k_scale(const uint8_t *s, int j) {
    int lo = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
    int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (lo | hi << 4) - 32;
}

void zi_dequant_q3_k(const zi_block_q3_k *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d_all = H2F(x[i].d);
        const uint8_t *q = x[i].qs, *hm = x[i].hmask;
        uint8_t m = 1;
        int is = 0;
        for (int n = 0; n < ZI_QK_K; n += 128, q += 32)
            for (int shift = 0; shift < 8; shift += 2, m <<= 1)
                for (int half = 0; half < 2; half++) {
                    const float dl = d_all * q3k_scale(x[i].scales, is++);
                    for (int l = 16 * half; l < 16 * half + 16; l++)
                        *y++ = dl * (((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
                }
    }
}

/* 6-bit scale and min j (0..7) of Q4_K/Q5_K, packed into 12 bytes */
void zi_dequant_q4_k(const zi_block_q4_k *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = H2F(x[i].d), dmin = H2F(x[i].dmin);
        const uint8_t *q = x[i].qs;
        for (int is = 0; is < 8; is += 2, q += 32) {
            uint8_t sc, m;
            zi_k4_scale_min(is, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            zi_k4_scale_min(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (q[l] >> 4) - m2;
        }
    }
}

void zi_dequant_q5_k(const zi_block_q5_k *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = H2F(x[i].d), dmin = H2F(x[i].dmin);
        const uint8_t *ql = x[i].qs, *qh = x[i].qh;
        uint8_t u1 = 1, u2 = 2;
        for (int is = 0; is < 8; is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
            uint8_t sc, m;
            zi_k4_scale_min(is, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            zi_k4_scale_min(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        }
    }
}

void zi_dequant_q6_k(const zi_block_q6_k *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = H2F(x[i].d);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int n = 0; n < ZI_QK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8)
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
                int q2 = ((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
                int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                y[l] = d * sc[is] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
    }
}

/* ---------------------------------------------------------------- quantization */

void zi_quant_q4_0(const float *x, zi_block_q4_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += ZI_QK) {
        float amax = 0, max = 0; /* the value of largest magnitude, with its sign */
        for (int j = 0; j < ZI_QK; j++)
            if (amax < fabsf(x[j])) amax = fabsf(x[j]), max = x[j];
        const float d = max / -8, id = d ? 1.0f / d : 0.0f;
        y[i].d = F2H(d);
        for (int j = 0; j < ZI_QK / 2; j++) {
            const uint8_t a = (uint8_t)QMIN(15, (int8_t)(x[j] * id + 8.5f));
            const uint8_t b = (uint8_t)QMIN(15, (int8_t)(x[j + ZI_QK / 2] * id + 8.5f));
            y[i].qs[j] = (uint8_t)(a | b << 4);
        }
    }
}

void zi_quant_q4_1(const float *x, zi_block_q4_1 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += ZI_QK) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < ZI_QK; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 15, id = d ? 1.0f / d : 0.0f;
        y[i].d = F2H(d);
        y[i].m = F2H(min);
        for (int j = 0; j < ZI_QK / 2; j++) {
            const uint8_t a = (uint8_t)QMIN(15, (int8_t)((x[j] - min) * id + 0.5f));
            const uint8_t b = (uint8_t)QMIN(15, (int8_t)((x[j + ZI_QK / 2] - min) * id + 0.5f));
            y[i].qs[j] = (uint8_t)(a | b << 4);
        }
    }
}

void zi_quant_q5_0(const float *x, zi_block_q5_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += ZI_QK) {
        float amax = 0, max = 0;
        for (int j = 0; j < ZI_QK; j++)
            if (amax < fabsf(x[j])) amax = fabsf(x[j]), max = x[j];
        const float d = max / -16, id = d ? 1.0f / d : 0.0f;
        y[i].d = F2H(d);
        uint32_t qh = 0;
        for (int j = 0; j < ZI_QK / 2; j++) {
            const uint8_t a = (uint8_t)QMIN(31, (int8_t)(x[j] * id + 16.5f));
            const uint8_t b = (uint8_t)QMIN(31, (int8_t)(x[j + ZI_QK / 2] * id + 16.5f));
            y[i].qs[j] = (uint8_t)((a & 0x0F) | (b & 0x0F) << 4);
            qh |= (uint32_t)((a & 0x10u) >> 4) << j;
            qh |= (uint32_t)((b & 0x10u) >> 4) << (j + ZI_QK / 2);
        }
        for (int k = 0; k < 4; k++) y[i].qh[k] = (uint8_t)(qh >> (8 * k));
    }
}

void zi_quant_q5_1(const float *x, zi_block_q5_1 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += ZI_QK) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < ZI_QK; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 31, id = d ? 1.0f / d : 0.0f;
        y[i].d = F2H(d);
        y[i].m = F2H(min);
        uint32_t qh = 0;
        for (int j = 0; j < ZI_QK / 2; j++) {
            const uint8_t a = (uint8_t)((x[j] - min) * id + 0.5f);
            const uint8_t b = (uint8_t)((x[j + ZI_QK / 2] - min) * id + 0.5f);
            y[i].qs[j] = (uint8_t)((a & 0x0F) | (b & 0x0F) << 4);
            qh |= (uint32_t)((a & 0x10u) >> 4) << j;
            qh |= (uint32_t)((b & 0x10u) >> 4) << (j + ZI_QK / 2);
        }
        for (int k = 0; k < 4; k++) y[i].qh[k] = (uint8_t)(qh >> (8 * k));
    }
}

void zi_quant_q8_0(const float *x, zi_block_q8_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += ZI_QK) {
        float amax = 0;
        for (int j = 0; j < ZI_QK; j++) amax = QMAX(amax, fabsf(x[j]));
        const float d = amax / 127, id = d ? 1.0f / d : 0.0f;
        y[i].d = F2H(d);
        for (int j = 0; j < ZI_QK; j++) y[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

/* Round to nearest, ties to even, for |f| < 2^22 (ggml's trick: add 1.5 * 2^23). */
static int nearest_int(float f) {
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* Symmetric scale search for n values into [-nmax, nmax-1] (ggml make_qx_quants with
 * rmse_type 1): weights qw, or x^2 when qw is NULL. L gets the levels + nmax; returns the scale. */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L, const float *qw) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) amax = ax, max = x[i];
    }
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * x[i]);
        l = QMAX(-nmax, QMIN(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
        float w = qw ? qw[i] : x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest_int(iscale * x[i]);
            l = QMAX(-nmax, QMIN(nmax - 1, l));
            float w = qw ? qw[i] : x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                int l = nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + QMAX(-nmax, QMIN(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Q3_K sub-block search (ggml make_q3_quants with do_rmse): levels in [-nmax, nmax-1],
 * refined one value at a time; L gets level + nmax. */
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) amax = ax, max = x[i];
    }
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * x[i]);
        l = QMAX(-nmax, QMIN(nmax - 1, l));
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int new_l = nearest_int(x[i] * sl2 / slx);
                new_l = QMAX(-nmax, QMIN(nmax - 1, new_l));
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Affine (scale + min) search for n values into [0, nmax] (ggml make_qkx2_quants):
 * tries nstep+1 scales around nmax/(max-min), keeps the weighted least-squares best.
 * Returns the scale; *the_min gets -min (>= 0). */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                              uint8_t *Laux, float rmin, float rdelta, int nstep, int use_mad) {
    float min = x[0], max = x[0], sum_w = weights[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; i++) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min), scale = 1 / iscale, best_error = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)QMAX(0, QMIN(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest_int(iscale * (x[i] - min));
            l = QMAX(0, QMIN(nmax, l));
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                for (int i = 0; i < n; i++) L[i] = Laux[i];
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* Pack 4 2-bit levels per byte: byte l of each 32-byte group holds elements l, l+32, l+64, l+96. */
static void pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < ZI_QK_K; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | L[j + l + 32] << 2 | L[j + l + 64] << 4 | L[j + l + 96] << 6);
}

void zi_quant_q2_k(const float *x, zi_block_q2_k *y, int64_t nb) {
    uint8_t L[ZI_QK_K], Laux[16];
    float weights[16], mins[16], scales[16];
    const float q4scale = 15.f;
    for (int64_t i = 0; i < nb; i++, x += ZI_QK_K) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++) weights[l] = fabsf(x[16 * j + l]);
            scales[j] =
                make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, 1);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            float iscale = q4scale / max_scale;
            for (int j = 0; j < 16; j++) y[i].scales[j] = (uint8_t)nearest_int(iscale * scales[j]);
            y[i].d = F2H(max_scale / q4scale);
        } else {
            for (int j = 0; j < 16; j++) y[i].scales[j] = 0;
            y[i].d = F2H(0.f);
        }
        if (max_min > 0) {
            float iscale = q4scale / max_min;
            for (int j = 0; j < 16; j++) y[i].scales[j] |= (uint8_t)(nearest_int(iscale * mins[j]) << 4);
            y[i].dmin = F2H(max_min / q4scale);
        } else {
            y[i].dmin = F2H(0.f);
        }
        for (int j = 0; j < 16; j++) {
            const float d = H2F(y[i].d) * (y[i].scales[j] & 0xF);
            if (!d) continue;
            const float dm = H2F(y[i].dmin) * (y[i].scales[j] >> 4);
            for (int ii = 0; ii < 16; ii++) {
                int l = nearest_int((x[16 * j + ii] + dm) / d);
                L[16 * j + ii] = (uint8_t)QMAX(0, QMIN(3, l));
            }
        }
        pack_2bit(L, y[i].qs);
    }
}

void zi_quant_q3_k(const float *x, zi_block_q3_k *y, int64_t nb) {
    int8_t L[ZI_QK_K];
    float scales[16];
    for (int64_t i = 0; i < nb; i++, x += ZI_QK_K) {
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
            float scale = fabsf(scales[j]);
            if (scale > amax) amax = scale, max_scale = scales[j];
        }
        memset(y[i].scales, 0, 12);
        if (max_scale) {
            float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; j++) {
                int8_t l = (int8_t)nearest_int(iscale * scales[j]);
                l = (int8_t)(QMAX(-32, QMIN(31, l)) + 32);
                if (j < 8)
                    y[i].scales[j] = l & 0xF;
                else
                    y[i].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
                l >>= 4;
                y[i].scales[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
            }
            y[i].d = F2H(1 / iscale);
        } else {
            y[i].d = F2H(0.f);
        }
        for (int j = 0; j < 16; j++) {
            float d = H2F(y[i].d) * q3k_scale(y[i].scales, j);
            if (!d) continue;
            for (int ii = 0; ii < 16; ii++) {
                int l = nearest_int(x[16 * j + ii] / d);
                L[16 * j + ii] = (int8_t)(QMAX(-4, QMIN(3, l)) + 4);
            }
        }
        /* high bit of element j goes to hmask[j % 32], bit j / 32 */
        memset(y[i].hmask, 0, 32);
        for (int j = 0; j < ZI_QK_K; j++)
            if (L[j] > 3) {
                y[i].hmask[j % 32] |= (uint8_t)(1u << (j / 32));
                L[j] -= 4;
            }
        pack_2bit((const uint8_t *)L, y[i].qs);
    }
}

/* Scales and mins of the 8 sub-blocks of Q4_K/Q5_K as 6-bit codes in 12 bytes. */
static void k4_pack_scales(const float *scales, const float *mins, float max_scale, float max_min, uint8_t *out) {
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
        ls = QMIN(63, ls);
        lm = QMIN(63, lm);
        if (j < 4) {
            out[j] = ls;
            out[j + 4] = lm;
        } else {
            out[j + 4] = (uint8_t)((ls & 0xF) | (lm & 0xF) << 4);
            out[j - 4] |= (uint8_t)((ls >> 4) << 6);
            out[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
}

/* Shared by Q4_K (nmax 15) and Q5_K (nmax 31): per-sub-block affine fit, 6-bit packed
 * scales, then requantize every value against the rounded scales into L. */
static void k45_levels(const float *x, int nmax, float rmin, int nstep, uint16_t *dh, uint16_t *dminh,
                       uint8_t *scales12, uint8_t *L) {
    uint8_t Laux[32];
    float weights[32], mins[8], scales[8], max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, 0);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    k4_pack_scales(scales, mins, max_scale, max_min, scales12);
    *dh = F2H(max_scale / 63.f);
    *dminh = F2H(max_min / 63.f);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        zi_k4_scale_min(j, scales12, &sc, &m);
        const float d = H2F(*dh) * sc;
        if (!d) continue;
        const float dm = H2F(*dminh) * m;
        for (int ii = 0; ii < 32; ii++) {
            int l = nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)QMAX(0, QMIN(nmax, l));
        }
    }
}

void zi_quant_q4_k(const float *x, zi_block_q4_k *y, int64_t nb) {
    uint8_t L[ZI_QK_K];
    for (int64_t i = 0; i < nb; i++, x += ZI_QK_K) {
        memset(y[i].scales, 0, 12);
        k45_levels(x, 15, -1.f, 20, &y[i].d, &y[i].dmin, y[i].scales, L);
        uint8_t *q = y[i].qs;
        for (int j = 0; j < ZI_QK_K; j += 64, q += 32)
            for (int l = 0; l < 32; l++) q[l] = (uint8_t)(L[j + l] | L[j + l + 32] << 4);
    }
}

void zi_quant_q5_k(const float *x, zi_block_q5_k *y, int64_t nb) {
    uint8_t L[ZI_QK_K];
    for (int64_t i = 0; i < nb; i++, x += ZI_QK_K) {
        memset(y[i].scales, 0, 12);
        k45_levels(x, 31, -0.5f, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
        uint8_t *qh = y[i].qh, *ql = y[i].qs;
        memset(qh, 0, 32);
        uint8_t m1 = 1, m2 = 2;
        for (int n = 0; n < ZI_QK_K; n += 64, ql += 32, m1 <<= 2, m2 <<= 2)
            for (int j = 0; j < 32; j++) {
                int l1 = L[n + j], l2 = L[n + j + 32];
                if (l1 > 15) l1 -= 16, qh[j] |= m1;
                if (l2 > 15) l2 -= 16, qh[j] |= m2;
                ql[j] = (uint8_t)(l1 | l2 << 4);
            }
    }
}

/* qw: importance weights of the nb * 256 values, or NULL (ggml's _ref quantizer) */
static void quant_q6_k(const float *x, zi_block_q6_k *y, int64_t nb, const float *qw) {
    int8_t L[ZI_QK_K];
    float scales[16];
    for (int64_t i = 0; i < nb; i++, x += ZI_QK_K) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < 16; ib++) {
            const float *w = qw ? qw + ZI_QK_K * i + 16 * ib : NULL;
            const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib, w);
            scales[ib] = scale;
            if (fabsf(scale) > max_abs_scale) max_abs_scale = fabsf(scale), max_scale = scale;
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof y[i]);
            y[i].d = F2H(0.f);
            continue;
        }
        float iscale = -128.f / max_scale;
        y[i].d = F2H(1 / iscale);
        for (int ib = 0; ib < 16; ib++) y[i].scales[ib] = (int8_t)QMIN(127, nearest_int(iscale * scales[ib]));
        for (int j = 0; j < 16; j++) {
            float d = H2F(y[i].d) * y[i].scales[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ii++) {
                int l = nearest_int(x[16 * j + ii] / d);
                L[16 * j + ii] = (int8_t)(QMAX(-32, QMIN(31, l)) + 32);
            }
        }
        uint8_t *ql = y[i].ql, *qh = y[i].qh;
        for (int j = 0; j < ZI_QK_K; j += 128, ql += 64, qh += 32)
            for (int l = 0; l < 32; l++) {
                const uint8_t q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF,
                              q4 = L[j + l + 96] & 0xF;
                ql[l] = (uint8_t)(q1 | q3 << 4);
                ql[l + 32] = (uint8_t)(q2 | q4 << 4);
                qh[l] = (uint8_t)((L[j + l] >> 4) | (L[j + l + 32] >> 4) << 2 | (L[j + l + 64] >> 4) << 4 |
                                  (L[j + l + 96] >> 4) << 6);
            }
    }
}

void zi_quant_q6_k(const float *x, zi_block_q6_k *y, int64_t nb) { quant_q6_k(x, y, nb, NULL); }

/* ---------------------------------------------------------------- weighted quantization
 * ggml's quantize_row_*_impl: the path taken when an importance matrix is given. With all
 * weights 1 it is what stable-diffusion.cpp's converter runs (it passes a dummy matrix of
 * ones), and it fits better than the _ref path: this is what `zimage quantize` writes. */

/* Weighted affine search (ggml make_qkx3_quants, weights given, use_mad false). */
static float make_qkx3_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                              uint8_t *Laux, float rmin, float rdelta, int nstep) {
    float min = x[0], max = x[0], sum_w = weights[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max <= min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min), scale = 1 / iscale, best_mad = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)QMAX(0, QMIN(nmax, l));
        float diff = scale * L[i] + min - x[i];
        best_mad += weights[i] * (diff * diff);
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            const float v = iscale * (x[i] - min); /* min is the best fit so far: v may be out of range */
            const int l = v > 0 ? nearest_int(QMIN(v, (float)nmax)) : 0;
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float mad = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                mad += weights[i] * (diff * diff);
            }
            if (mad < best_mad) {
                for (int i = 0; i < n; i++) L[i] = Laux[i];
                best_mad = mad;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* Weighted search for non-negative values (the sub-block scales) into [0, nmax]
 * (ggml make_qp_quants). */
static float make_qp_quants(int n, int nmax, const float *x, uint8_t *L, const float *qw) {
    float max = 0;
    for (int i = 0; i < n; i++) max = QMAX(max, x[i]);
    if (max < GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.f;
    }
    float iscale = nmax / max;
    for (int i = 0; i < n; i++) L[i] = (uint8_t)nearest_int(iscale * x[i]);
    float scale = 1 / iscale, best_mse = 0;
    for (int i = 0; i < n; i++) {
        float diff = x[i] - scale * L[i];
        best_mse += qw[i] * diff * diff;
    }
    for (int is = -4; is <= 4; is++) {
        if (is == 0) continue;
        float iscale_is = (0.1f * is + nmax) / max, scale_is = 1 / iscale_is, mse = 0;
        for (int i = 0; i < n; i++) {
            int l = QMIN(nmax, nearest_int(iscale_is * x[i]));
            float diff = x[i] - scale_is * l;
            mse += qw[i] * diff * diff;
        }
        if (mse < best_mse) best_mse = mse, iscale = iscale_is;
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = QMIN(nmax, nearest_int(iscale * x[i]));
        L[i] = (uint8_t)l;
        sumlx += qw[i] * x[i] * l;
        suml2 += qw[i] * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            float w = qw[i], slx = sumlx - w * x[i] * L[i], sl2 = suml2 - w * L[i] * L[i];
            if (slx > 0 && sl2 > 0) {
                int new_l = QMIN(nmax, nearest_int(x[i] * sl2 / slx));
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (uint8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* mean of x^2 over a row (sequential float sum, as ggml) */
static float row_sigma2(const float *x, int64_t n) {
    float s = 0;
    for (int64_t j = 0; j < n; j++) s += x[j] * x[j];
    return s / n;
}

static void quant_q4_0_w(const float *x, zi_block_q4_0 *y, int64_t n, const float *qw) {
    float weight[ZI_QK], sigma2 = row_sigma2(x, n);
    int8_t L[ZI_QK];
    for (int64_t ib = 0; ib < n / ZI_QK; ib++) {
        const float *xb = x + ZI_QK * ib, *q = qw + ZI_QK * ib;
        for (int j = 0; j < ZI_QK; j++) weight[j] = q[j] * sqrtf(sigma2 + xb[j] * xb[j]);
        y[ib].d = F2H(make_qx_quants(ZI_QK, 8, xb, L, weight));
        for (int j = 0; j < 16; j++) y[ib].qs[j] = (uint8_t)(L[j] | L[j + 16] << 4);
    }
}

static void quant_q4_1_w(const float *x, zi_block_q4_1 *y, int64_t n, const float *qw) {
    float weight[ZI_QK], sigma2 = row_sigma2(x, n), min;
    uint8_t L[ZI_QK], Laux[ZI_QK];
    for (int64_t ib = 0; ib < n / ZI_QK; ib++) {
        const float *xb = x + ZI_QK * ib, *q = qw + ZI_QK * ib;
        for (int j = 0; j < ZI_QK; j++) weight[j] = q[j] * sqrtf(sigma2 + xb[j] * xb[j]);
        float d = make_qkx3_quants(ZI_QK, 15, xb, weight, L, &min, Laux, -0.9f, 0.05f, 36);
        y[ib].d = F2H(d);
        y[ib].m = F2H(-min);
        for (int j = 0; j < 16; j++) y[ib].qs[j] = (uint8_t)(L[j] | L[j + 16] << 4);
    }
}

/* 5-bit levels: low nibbles in qs, 5th bits in qh (bit j for element j) */
static void pack_5bit(const uint8_t *L, uint8_t *qs, uint8_t *qh4) {
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((L[j] & 0x0F) | (L[j + 16] & 0x0F) << 4);
        qh |= (uint32_t)((L[j] & 0x10u) >> 4) << j;
        qh |= (uint32_t)((L[j + 16] & 0x10u) >> 4) << (j + 16);
    }
    for (int k = 0; k < 4; k++) qh4[k] = (uint8_t)(qh >> (8 * k));
}

static void quant_q5_0_w(const float *x, zi_block_q5_0 *y, int64_t n, const float *qw) {
    float weight[ZI_QK], sigma2 = row_sigma2(x, n);
    int8_t L[ZI_QK];
    for (int64_t ib = 0; ib < n / ZI_QK; ib++) {
        const float *xb = x + ZI_QK * ib, *q = qw + ZI_QK * ib;
        for (int j = 0; j < ZI_QK; j++) weight[j] = q[j] * sqrtf(sigma2 + xb[j] * xb[j]);
        y[ib].d = F2H(make_qx_quants(ZI_QK, 16, xb, L, weight));
        pack_5bit((const uint8_t *)L, y[ib].qs, y[ib].qh);
    }
}

static void quant_q5_1_w(const float *x, zi_block_q5_1 *y, int64_t n, const float *qw) {
    float weight[ZI_QK], sigma2 = row_sigma2(x, n), min;
    uint8_t L[ZI_QK], Laux[ZI_QK];
    for (int64_t ib = 0; ib < n / ZI_QK; ib++) {
        const float *xb = x + ZI_QK * ib, *q = qw + ZI_QK * ib;
        for (int j = 0; j < ZI_QK; j++) weight[j] = q[j] * sqrtf(sigma2 + xb[j] * xb[j]);
        float d = make_qkx3_quants(ZI_QK, 31, xb, weight, L, &min, Laux, -0.9f, 0.05f, 36);
        y[ib].d = F2H(d);
        y[ib].m = F2H(-min);
        pack_5bit(L, y[ib].qs, y[ib].qh);
    }
}

static void quant_q2_k_w(const float *x, zi_block_q2_k *y, int64_t n, const float *qw) {
    uint8_t L[ZI_QK_K], Laux[16], Ls[16], Lm[16];
    float mins[16], scales[16], sw[16], weight[16];
    for (int64_t i = 0; i < n / ZI_QK_K; i++, x += ZI_QK_K) {
        memset(sw, 0, sizeof sw);
        float sigma2 = row_sigma2(x, ZI_QK_K);
        for (int j = 0; j < 16; j++) {
            const float *q = qw + ZI_QK_K * i + 16 * j;
            for (int l = 0; l < 16; l++) weight[l] = q[l] * sqrtf(sigma2 + x[16 * j + l] * x[16 * j + l]);
            for (int l = 0; l < 16; l++) sw[j] += weight[l];
            scales[j] = make_qkx3_quants(16, 3, x + 16 * j, weight, L + 16 * j, &mins[j], Laux, -0.9f, 0.05f, 36);
        }
        float dm = make_qp_quants(16, 15, scales, Ls, sw), mm = make_qp_quants(16, 15, mins, Lm, sw);
        y[i].d = F2H(dm);
        y[i].dmin = F2H(mm);
        dm = H2F(y[i].d);
        mm = H2F(y[i].dmin);
        for (int j = 0; j < 16; j++) y[i].scales[j] = (uint8_t)(Ls[j] | Lm[j] << 4);
        for (int j = 0; j < 16; j++) {
            const float d = dm * (y[i].scales[j] & 0xF);
            if (!d) continue;
            const float m = mm * (y[i].scales[j] >> 4);
            for (int ii = 0; ii < 16; ii++) {
                int l = nearest_int((x[16 * j + ii] + m) / d);
                L[16 * j + ii] = (uint8_t)QMAX(0, QMIN(3, l));
            }
        }
        pack_2bit(L, y[i].qs);
    }
}

static void quant_q3_k_w(const float *x, zi_block_q3_k *y, int64_t n, const float *qw) {
    int8_t L[ZI_QK_K], Ls[16];
    float scales[16], weight[16], sw[16];
    for (int64_t i = 0; i < n / ZI_QK_K; i++, x += ZI_QK_K) {
        float sigma2 = 2 * row_sigma2(x, ZI_QK_K);
        for (int j = 0; j < 16; j++) {
            const float *q = qw + ZI_QK_K * i + 16 * j;
            for (int l = 0; l < 16; l++) weight[l] = q[l] * sqrtf(sigma2 + x[16 * j + l] * x[16 * j + l]);
            float sumw = 0;
            for (int l = 0; l < 16; l++) sumw += weight[l];
            sw[j] = sumw;
            scales[j] = make_qx_quants(16, 4, x + 16 * j, L + 16 * j, weight);
        }
        memset(y[i].scales, 0, 12);
        float d_block = make_qx_quants(16, 32, scales, Ls, sw);
        for (int j = 0; j < 16; j++) {
            int l = Ls[j];
            if (j < 8)
                y[i].scales[j] = (uint8_t)(l & 0xF);
            else
                y[i].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
            l >>= 4;
            y[i].scales[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
        }
        y[i].d = F2H(d_block);
        for (int j = 0; j < 16; j++) {
            float d = H2F(y[i].d) * q3k_scale(y[i].scales, j);
            if (!d) continue;
            for (int ii = 0; ii < 16; ii++) {
                int l = nearest_int(x[16 * j + ii] / d);
                L[16 * j + ii] = (int8_t)(QMAX(-4, QMIN(3, l)) + 4);
            }
        }
        memset(y[i].hmask, 0, 32);
        for (int j = 0; j < ZI_QK_K; j++)
            if (L[j] > 3) {
                y[i].hmask[j % 32] |= (uint8_t)(1u << (j / 32));
                L[j] -= 4;
            }
        pack_2bit((const uint8_t *)L, y[i].qs);
    }
}

/* Q4_K (nmax 15) / Q5_K (nmax 31) with weights: fit, 6-bit scales by make_qp_quants, requantize. */
static void k45_levels_w(const float *x, const float *qw, int nmax, uint16_t *dh, uint16_t *dminh, uint8_t *sc12,
                         uint8_t *L) {
    uint8_t Laux[32], Ls[8], Lm[8];
    float weights[32], sw[8], mins[8], scales[8];
    float sigma2 = 2 * row_sigma2(x, ZI_QK_K);
    for (int j = 0; j < 8; j++) {
        const float *q = qw + 32 * j;
        for (int l = 0; l < 32; l++) weights[l] = q[l] * sqrtf(sigma2 + x[32 * j + l] * x[32 * j + l]);
        float sumw = 0;
        for (int l = 0; l < 32; l++) sumw += weights[l];
        sw[j] = sumw;
        scales[j] = make_qkx3_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -0.9f, 0.05f, 36);
    }
    float d_block = make_qp_quants(8, 63, scales, Ls, sw), m_block = make_qp_quants(8, 63, mins, Lm, sw);
    for (int j = 0; j < 8; j++) {
        uint8_t ls = QMIN(63, Ls[j]), lm = QMIN(63, Lm[j]);
        if (j < 4) {
            sc12[j] = ls;
            sc12[j + 4] = lm;
        } else {
            sc12[j + 4] = (uint8_t)((ls & 0xF) | (lm & 0xF) << 4);
            sc12[j - 4] |= (uint8_t)((ls >> 4) << 6);
            sc12[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    *dh = F2H(d_block);
    *dminh = F2H(m_block);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        zi_k4_scale_min(j, sc12, &sc, &m);
        const float d = H2F(*dh) * sc;
        if (!d) continue;
        const float dm = H2F(*dminh) * m;
        for (int ii = 0; ii < 32; ii++) {
            int l = nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)QMAX(0, QMIN(nmax, l));
        }
    }
}

static void quant_q4_k_w(const float *x, zi_block_q4_k *y, int64_t n, const float *qw) {
    uint8_t L[ZI_QK_K];
    for (int64_t i = 0; i < n / ZI_QK_K; i++, x += ZI_QK_K) {
        memset(y[i].scales, 0, 12);
        k45_levels_w(x, qw + ZI_QK_K * i, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
        uint8_t *q = y[i].qs;
        for (int j = 0; j < ZI_QK_K; j += 64, q += 32)
            for (int l = 0; l < 32; l++) q[l] = (uint8_t)(L[j + l] | L[j + l + 32] << 4);
    }
}

static void pack_q5_k(const uint8_t *L, zi_block_q5_k *y) {
    uint8_t *qh = y->qh, *ql = y->qs;
    memset(qh, 0, 32);
    uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < ZI_QK_K; n += 64, ql += 32, m1 <<= 2, m2 <<= 2)
        for (int j = 0; j < 32; j++) {
            int l1 = L[n + j], l2 = L[n + j + 32];
            if (l1 > 15) l1 -= 16, qh[j] |= m1;
            if (l2 > 15) l2 -= 16, qh[j] |= m2;
            ql[j] = (uint8_t)(l1 | l2 << 4);
        }
}

static void quant_q5_k_w(const float *x, zi_block_q5_k *y, int64_t n, const float *qw) {
    uint8_t L[ZI_QK_K];
    for (int64_t i = 0; i < n / ZI_QK_K; i++, x += ZI_QK_K) {
        memset(y[i].scales, 0, 12);
        k45_levels_w(x, qw + ZI_QK_K * i, 31, &y[i].d, &y[i].dmin, y[i].scales, L);
        pack_q5_k(L, &y[i]);
    }
}

size_t zi_quantize_rows(zi_dtype t, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                        const float *imatrix) {
    if (!zi_dtype_is_block(t) || n_per_row % zi_dtype_block_elems(t)) return 0;
    size_t row = zi_dtype_row_bytes(t, n_per_row);
    if (!imatrix || t == ZI_Q8_0) return zi_quantize(t, src, dst, nrows * n_per_row);
    for (int64_t r = 0; r < nrows; r++) {
        const float *x = src + r * n_per_row;
        void *y = (uint8_t *)dst + (size_t)r * row;
        switch (t) {
        case ZI_Q4_0: quant_q4_0_w(x, y, n_per_row, imatrix); break;
        case ZI_Q4_1: quant_q4_1_w(x, y, n_per_row, imatrix); break;
        case ZI_Q5_0: quant_q5_0_w(x, y, n_per_row, imatrix); break;
        case ZI_Q5_1: quant_q5_1_w(x, y, n_per_row, imatrix); break;
        case ZI_Q2_K: quant_q2_k_w(x, y, n_per_row, imatrix); break;
        case ZI_Q3_K: quant_q3_k_w(x, y, n_per_row, imatrix); break;
        case ZI_Q4_K: quant_q4_k_w(x, y, n_per_row, imatrix); break;
        case ZI_Q5_K: quant_q5_k_w(x, y, n_per_row, imatrix); break;
        case ZI_Q6_K: quant_q6_k(x, y, n_per_row / ZI_QK_K, imatrix); break;
        default: return 0;
        }
    }
    return (size_t)nrows * row;
}

/* ---------------------------------------------------------------- dispatch */

void zi_dequantize(zi_dtype t, const void *src, float *dst, int64_t n) {
    int64_t nb = n / zi_dtype_block_elems(t);
    switch (t) {
    case ZI_Q4_0: zi_dequant_q4_0(src, dst, nb); break;
    case ZI_Q4_1: zi_dequant_q4_1(src, dst, nb); break;
    case ZI_Q5_0: zi_dequant_q5_0(src, dst, nb); break;
    case ZI_Q5_1: zi_dequant_q5_1(src, dst, nb); break;
    case ZI_Q8_0: zi_dequant_q8_0(src, dst, nb); break;
    case ZI_Q2_K: zi_dequant_q2_k(src, dst, nb); break;
    case ZI_Q3_K: zi_dequant_q3_k(src, dst, nb); break;
    case ZI_Q4_K: zi_dequant_q4_k(src, dst, nb); break;
    case ZI_Q5_K: zi_dequant_q5_k(src, dst, nb); break;
    case ZI_Q6_K: zi_dequant_q6_k(src, dst, nb); break;
    default: break;
    }
}

size_t zi_quantize(zi_dtype t, const float *src, void *dst, int64_t n) {
    int64_t nb = n / zi_dtype_block_elems(t);
    switch (t) {
    case ZI_Q4_0: zi_quant_q4_0(src, dst, nb); break;
    case ZI_Q4_1: zi_quant_q4_1(src, dst, nb); break;
    case ZI_Q5_0: zi_quant_q5_0(src, dst, nb); break;
    case ZI_Q5_1: zi_quant_q5_1(src, dst, nb); break;
    case ZI_Q8_0: zi_quant_q8_0(src, dst, nb); break;
    case ZI_Q2_K: zi_quant_q2_k(src, dst, nb); break;
    case ZI_Q3_K: zi_quant_q3_k(src, dst, nb); break;
    case ZI_Q4_K: zi_quant_q4_k(src, dst, nb); break;
    case ZI_Q5_K: zi_quant_q5_k(src, dst, nb); break;
    case ZI_Q6_K: zi_quant_q6_k(src, dst, nb); break;
    default: return 0;
    }
    return (size_t)nb * zi_dtype_block_bytes(t);
}

/* ---------------------------------------------------------------- fp8 */

/* e4m3fn: 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities, S.1111.111 is NaN. */
float zi_f8e4m3_to_f32(uint8_t b) {
    uint32_t sign = (uint32_t)(b & 0x80) << 24, e = (b >> 3) & 0xF, m = b & 7, u;
    float f;
    if (e == 15 && m == 7) {
        u = sign | 0x7fc00000u;
    } else if (e == 0) { /* subnormal: m/8 * 2^-6 = m * 2^-9, exact in float */
        f = (float)m * 0x1p-9f;
        return sign ? -f : f;
    } else {
        u = sign | (e + 127 - 7) << 23 | m << 20;
    }
    memcpy(&f, &u, 4);
    return f;
}

/* e5m2: the upper byte of an IEEE half. */
float zi_f8e5m2_to_f32(uint8_t b) { return zi_f16_to_f32((uint16_t)(b << 8)); }
