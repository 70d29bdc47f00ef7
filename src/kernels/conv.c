/* conv.c - channels-last conv2d (tiled im2col + kn_linear), GroupNorm statistics,
 * per-channel affine and layout transposes (see conv.h). */
#include "conv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/error.h"

/* Upper bound of the patch matrix of one tile (the GEMM's A operand). */
static int64_t CONV_TILE_BYTES = (int64_t)32 << 20;

void kn_conv_set_tile_bytes(int64_t bytes) { CONV_TILE_BYTES = bytes > 0 ? bytes : (int64_t)32 << 20; }
/* Below this many floats of work, loops run single-threaded. */
#define CONV_PAR_MIN 32768

static double conv_mac_count = 0, conv_seconds = 0;

double kn_conv_macs(void) { return conv_mac_count; }
double kn_conv_seconds(void) { return conv_seconds; }

static double conv_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void kn_conv_pack(void *dst, const void *src, size_t esize, int cout, int cin, int k) {
    int taps = k * k;
    const char *s = src;
    char *d = dst;
    for (int64_t o = 0; o < cout; o++)
        for (int64_t c = 0; c < cin; c++)
            for (int64_t t = 0; t < taps; t++) {
                size_t si = (size_t)((o * cin + c) * taps + t), di = (size_t)((o * taps + t) * cin + c);
                memcpy(d + di * esize, s + si * esize, esize);
            }
}

/* Stage input rows iy0 .. iy0+nr-1 of the (virtual, possibly upsampled) input into
 * stage[nr, ws, cin] with `left` zero columns before the image and zeros after it;
 * rows outside the image are zero. The pre-transform is applied to image pixels. */
static void conv_stage(float *stage, int64_t nr, int64_t iy0, int64_t ws, int64_t left, const float *x, int H,
                       int W, const kn_conv_pre *pre, int cin) {
    int up = pre && pre->up2;
    int64_t Hi = up ? 2 * (int64_t)H : H, Wi = up ? 2 * (int64_t)W : W;
    const float *sc = pre ? pre->scale : NULL, *sh = pre ? pre->shift : NULL;
    int64_t n = nr * ws;
#pragma omp parallel for schedule(static) if (n * cin > CONV_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        int64_t r = i / ws, ix = i % ws - left, iy = iy0 + r;
        float *d = stage + i * cin;
        if (iy < 0 || iy >= Hi || ix < 0 || ix >= Wi) {
            memset(d, 0, sizeof(float) * (size_t)cin);
            continue;
        }
        int64_t sy = up ? iy / 2 : iy, sx = up ? ix / 2 : ix;
        const float *s = x + (sy * W + sx) * cin;
        if (sc)
            for (int c = 0; c < cin; c++) d[c] = s[c] * sc[c] + sh[c];
        else
            memcpy(d, s, sizeof(float) * (size_t)cin);
    }
    if (pre && pre->silu) kn_silu(stage, n * cin); /* silu(0) = 0 keeps the padding zero */
}

/* Patch matrix col[nrow*Wo, k*k*cin] of output rows 0..nrow-1 of the tile: pixel
 * (oy, ox), tap (ky, kx) reads stage row oy*s+ky, column ox*s+kx. */
static void conv_im2col(float *col, const float *stage, int64_t nrow, int64_t Wo, int64_t ws, int cin, int k,
                        int s) {
    int64_t K = (int64_t)k * k * cin, m = nrow * Wo;
#pragma omp parallel for schedule(static) if (m * K > CONV_PAR_MIN)
    for (int64_t i = 0; i < m; i++) {
        int64_t oy = i / Wo, ox = i % Wo;
        float *d = col + i * K;
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                const float *src = stage + ((oy * s + ky) * ws + ox * s + kx) * cin;
                memcpy(d + (ky * k + kx) * cin, src, sizeof(float) * (size_t)cin);
            }
    }
}

static void conv_add(float *y, const float *a, const float *b, int64_t n) {
#pragma omp parallel for schedule(static) if (n > CONV_PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

int kn_conv2d(float *y, const float *res, int Ho, int Wo, const float *x, int H, int W, const kn_conv *cv,
              const kn_conv_pre *pre) {
    int k = cv->k, s = cv->stride, cin = cv->cin, cout = cv->cout;
    int up = pre && pre->up2;
    int64_t Wi = up ? 2 * (int64_t)W : W;
    int64_t K = (int64_t)k * k * cin;
    if (Ho <= 0 || Wo <= 0) return 0;
    double t0 = conv_now();
    int64_t left = cv->pad;
    int64_t right = ((int64_t)Wo - 1) * s - cv->pad + k - Wi;
    if (right < 0) right = 0;
    int64_t ws = left + Wi + right;
    int64_t rows = CONV_TILE_BYTES / ((int64_t)Wo * K * (int64_t)sizeof(float));
    if (rows < 1) rows = 1;
    if (rows > Ho) rows = Ho;
    int64_t m_max = rows * Wo, nr_max = (rows - 1) * s + k;
    float *col = zi_malloc(sizeof(float) * (size_t)(m_max * K));
    float *stage = zi_malloc(sizeof(float) * (size_t)(nr_max * ws * cin));
    float *tmp = res ? zi_malloc(sizeof(float) * (size_t)(m_max * cout)) : NULL;
    if (!col || !stage || (res && !tmp)) {
        free(col);
        free(stage);
        free(tmp);
        return zi_err_ctx("conv2d %dx%d %d->%d at %dx%d", k, k, cin, cout, Ho, Wo);
    }
    for (int64_t oy0 = 0; oy0 < Ho; oy0 += rows) {
        int64_t nrow = Ho - oy0 < rows ? Ho - oy0 : rows, m = nrow * Wo;
        conv_stage(stage, (nrow - 1) * s + k, oy0 * s - cv->pad, ws, left, x, H, W, pre, cin);
        conv_im2col(col, stage, nrow, Wo, ws, cin, k, s);
        float *dst = y + oy0 * Wo * cout;
        if (!res) {
            kn_linear(dst, col, m, &cv->w, cv->bias); /* [m, k*k*cin] x [cout, k*k*cin]^T */
        } else {
            kn_linear(tmp, col, m, &cv->w, cv->bias);
            conv_add(dst, res + oy0 * Wo * cout, tmp, m * cout);
        }
        conv_mac_count += (double)m * (double)cout * (double)K;
    }
    free(col);
    free(stage);
    free(tmp);
    conv_seconds += conv_now() - t0;
    return 0;
}

int kn_conv1x1(float *y, const float *x, int64_t P, const kn_conv *cv) {
    int cin = cv->cin, cout = cv->cout;
    double t0 = conv_now();
    if (y != x) {
        kn_linear(y, x, P, &cv->w, cv->bias); /* [P, cin] x [cout, cin]^T */
        conv_mac_count += (double)P * cout * cin;
        conv_seconds += conv_now() - t0;
        return 0;
    }
    /* In place: tile by tile through a buffer; the tile's output lands at or before
     * its input (cout <= cin), never on rows still to be read. */
    if (cout > cin) return zi_err("conv1x1 in place needs cout <= cin (%d > %d)", cout, cin);
    int64_t rows = CONV_TILE_BYTES / ((int64_t)cin * (int64_t)sizeof(float));
    if (rows < 1) rows = 1;
    if (rows > P) rows = P;
    float *tmp = zi_malloc(sizeof(float) * (size_t)(rows * cout));
    if (!tmp) return -1;
    for (int64_t p0 = 0; p0 < P; p0 += rows) {
        int64_t n = P - p0 < rows ? P - p0 : rows;
        kn_linear(tmp, x + p0 * cin, n, &cv->w, cv->bias);
        memcpy(y + p0 * cout, tmp, sizeof(float) * (size_t)(n * cout));
    }
    conv_mac_count += (double)P * cout * cin;
    free(tmp);
    conv_seconds += conv_now() - t0;
    return 0;
}

/* Pixel chunks for the GroupNorm partial sums: fixed, so results do not depend on the
 * number of threads. */
#define GN_CHUNKS 64

int kn_groupnorm_coeffs(const float *x, int64_t P, int C, int groups, float eps, const float *gamma,
                        const float *beta, float *scale, float *shift) {
    if (groups <= 0 || C % groups != 0) return zi_err("group norm: %d channels not divisible into %d groups", C, groups);
    int64_t nch = P < GN_CHUNKS ? P : GN_CHUNKS;
    if (nch < 1) nch = 1;
    double *part = zi_calloc((size_t)(nch * 2 * C), sizeof(double));
    if (!part) return -1;
#pragma omp parallel for schedule(dynamic) if (P * C > CONV_PAR_MIN)
    for (int64_t ch = 0; ch < nch; ch++) {
        int64_t p0 = P * ch / nch, p1 = P * (ch + 1) / nch;
        double *s = part + ch * 2 * C, *ss = s + C;
        for (int64_t p = p0; p < p1; p++) {
            const float *xr = x + p * C;
            for (int c = 0; c < C; c++) {
                double v = xr[c];
                s[c] += v;
                ss[c] += v * v;
            }
        }
    }
    int cpg = C / groups;
    for (int g = 0; g < groups; g++) {
        double s = 0, ss = 0;
        for (int64_t ch = 0; ch < nch; ch++)
            for (int c = g * cpg; c < (g + 1) * cpg; c++) {
                s += part[ch * 2 * C + c];
                ss += part[ch * 2 * C + C + c];
            }
        double n = (double)P * cpg;
        double mean = s / n, var = ss / n - mean * mean;
        if (var < 0) var = 0;
        double rstd = 1.0 / sqrt(var + (double)eps);
        for (int c = g * cpg; c < (g + 1) * cpg; c++) {
            double a = (gamma ? gamma[c] : 1.0) * rstd;
            scale[c] = (float)a;
            shift[c] = (float)((beta ? beta[c] : 0.0) - mean * a);
        }
    }
    free(part);
    return 0;
}

void kn_channel_affine(float *y, const float *x, int64_t P, int C, const float *scale, const float *shift) {
#pragma omp parallel for schedule(static) if (P * C > CONV_PAR_MIN)
    for (int64_t p = 0; p < P; p++)
        for (int c = 0; c < C; c++) y[p * C + c] = x[p * C + c] * scale[c] + shift[c];
}

void kn_chw_to_hwc(float *dst, const float *src, int C, int64_t P) {
#pragma omp parallel for schedule(static) if (P * C > CONV_PAR_MIN)
    for (int64_t p = 0; p < P; p++)
        for (int c = 0; c < C; c++) dst[p * C + c] = src[(int64_t)c * P + p];
}

void kn_hwc_to_chw(float *dst, const float *src, int C, int64_t P) {
#pragma omp parallel for schedule(static) if (P * C > CONV_PAR_MIN)
    for (int64_t p = 0; p < P; p++)
        for (int c = 0; c < C; c++) dst[(int64_t)c * P + p] = src[p * C + c];
}
