/* conv.c - channels-last conv2d (tiled implicit GEMM: kn_gemm_patches), GroupNorm statistics,
 * per-channel affine and layout transposes (see conv.h). */
#include "conv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/error.h"
#include "impl.h"

/* Tile budget (kn_conv_ws.tile_bytes): the staged input rows of a 3x3 conv tile get a quarter
 * of it, the output buffer of an in-place 1x1 conv an eighth. */
#define CONV_TILE_DEFAULT ((int64_t)64 << 20)

static int64_t conv_tile_bytes(const kn_conv_ws *ws) { return ws && ws->tile_bytes > 0 ? ws->tile_bytes : CONV_TILE_DEFAULT; }

/* Below this many floats of work, loops run single-threaded. */
#define CONV_PAR_MIN 32768

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
 * stage[nr, sw, cin] with `left` zero columns before the image and zeros after it;
 * rows outside the image are zero. The pre-transform is applied to image pixels. */
static void conv_stage(const kn_impl *im, float *stage, int64_t nr, int64_t iy0, int64_t sw, int64_t left,
                       const float *x, int H, int W, const kn_conv_pre *pre, int cin) {
    int up = pre && pre->up2;
    int64_t Hi = up ? 2 * (int64_t)H : H, Wi = up ? 2 * (int64_t)W : W;
    const float *sc = pre ? pre->scale : NULL, *sh = pre ? pre->shift : NULL;
    int silu = pre && pre->silu;
    int64_t n = nr * sw;
#pragma omp parallel for num_threads(kn_get_threads()) schedule(static) if (n * cin > CONV_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        int64_t r = i / sw, ix = i % sw - left, iy = iy0 + r;
        float *d = stage + i * cin;
        if (iy < 0 || iy >= Hi || ix < 0 || ix >= Wi) {
            memset(d, 0, sizeof(float) * (size_t)cin);
            continue;
        }
        int64_t sy = up ? iy / 2 : iy, sx = up ? ix / 2 : ix;
        const float *s = x + (sy * W + sx) * cin;
        if (sc)
            im->affine_row(d, s, sc, sh, cin, silu);
        else if (silu)
            im->affine_row(d, s, NULL, NULL, cin, 1);
        else
            memcpy(d, s, sizeof(float) * (size_t)cin);
    }
}

int kn_conv2d(kn_conv_ws *ws, float *y, const float *res, int Ho, int Wo, const float *x, int H, int W,
              const kn_conv *cv, const kn_conv_pre *pre) {
    int k = cv->k, s = cv->stride, cin = cv->cin, cout = cv->cout;
    int up = pre && pre->up2;
    int64_t Wi = up ? 2 * (int64_t)W : W;
    int64_t K = (int64_t)k * k * cin;
    if (Ho <= 0 || Wo <= 0) return 0;
    double t0 = conv_now();
    int64_t left = cv->pad;
    int64_t right = ((int64_t)Wo - 1) * s - cv->pad + k - Wi;
    if (right < 0) right = 0;
    int64_t sw = left + Wi + right; /* staged row width */
    /* output rows per tile: the staged input rows fit the stage budget */
    int64_t rows = (conv_tile_bytes(ws) / 4 / (sw * cin * (int64_t)sizeof(float)) - k) / s + 1;
    if (rows < 1) rows = 1;
    if (rows > Ho) rows = Ho;
    int64_t nr_max = (rows - 1) * s + k;
    const kn_impl *im = kn_impl_get();
    int T = kn_get_threads();
    kn_wsrc B = kn_wsrc_of_mat(&cv->w);
    size_t nwp = im->packw_floats(cout, K);
    int rc = -1;
    float *wp = kn_scratch_get(sizeof(float) * nwp);
    float *stage = wp ? kn_scratch_get(sizeof(float) * (size_t)(nr_max * sw * cin)) : NULL;
    if (!stage) goto done;
    im->packw(wp, &B, cout, K, (int64_t)k * cin, T); /* once per conv, shared by all tiles */
    for (int64_t oy0 = 0; oy0 < Ho; oy0 += rows) {
        int64_t nrow = Ho - oy0 < rows ? Ho - oy0 : rows, m = nrow * Wo;
        conv_stage(im, stage, (nrow - 1) * s + k, oy0 * s - cv->pad, sw, left, x, H, W, pre, cin);
        float *dst = y + oy0 * Wo * cout;
        if (res && res != y) memcpy(dst, res + oy0 * Wo * cout, sizeof(float) * (size_t)(m * cout));
        kn_patch_src A = {stage, sw, cin, Wo, k, s};
        // [m, k*k*cin] x [cout, k*k*cin]^T
        if (im->gemm_patches(dst, &A, m, cout, K, wp, cv->bias, res != NULL, T)) goto done;
        if (ws) ws->macs += (double)m * (double)cout * (double)K;
    }
    if (ws) ws->seconds += conv_now() - t0;
    rc = 0;
done:
    kn_scratch_put(wp);
    kn_scratch_put(stage);
    return rc ? zi_err_ctx("conv2d %dx%d %d->%d at %dx%d", k, k, cin, cout, Ho, Wo) : 0;
}

int kn_conv1x1(kn_conv_ws *ws, float *y, const float *x, int64_t P, const kn_conv *cv) {
    int cin = cv->cin, cout = cv->cout;
    if (y == x && cout > cin) return zi_err("conv1x1 in place needs cout <= cin (%d > %d)", cout, cin);
    if (P <= 0) return 0;
    double t0 = conv_now();
    /* In place: tile by tile through a buffer; the tile's output lands at or before
     * its input (cout <= cin), never on rows still to be read. */
    int64_t rows = P;
    if (y == x) {
        rows = (conv_tile_bytes(ws) / 8) / ((int64_t)cout * (int64_t)sizeof(float)); /* tmp <= 8 MiB */
        if (rows < 1) rows = 1;
        if (rows > P) rows = P;
    }
    const kn_impl *im = kn_impl_get();
    int T = kn_get_threads();
    kn_wsrc B = kn_wsrc_of_mat(&cv->w);
    size_t nwp = im->packw_floats(cout, cin);
    int rc = -1;
    float *wp = kn_scratch_get(sizeof(float) * nwp);
    float *tmp = wp && y == x ? kn_scratch_get(sizeof(float) * (size_t)(rows * cout)) : NULL;
    if (!wp || (y == x && !tmp)) goto done;
    im->packw(wp, &B, cout, cin, cin, T);
    for (int64_t p0 = 0; p0 < P; p0 += rows) {
        int64_t n = P - p0 < rows ? P - p0 : rows;
        kn_patch_src A = {x + p0 * cin, n, cin, n, 1, 1}; /* one row of n pixels */
        if (im->gemm_patches(tmp ? tmp : y + p0 * cout, &A, n, cout, cin, wp, cv->bias, 0, T)) goto done; // [n, cin] x [cout, cin]^T
        if (tmp) memcpy(y + p0 * cout, tmp, sizeof(float) * (size_t)(n * cout));
    }
    if (ws) {
        ws->macs += (double)P * cout * cin;
        ws->seconds += conv_now() - t0;
    }
    rc = 0;
done:
    kn_scratch_put(wp);
    kn_scratch_put(tmp);
    return rc ? zi_err_ctx("conv1x1 %d->%d", cin, cout) : 0;
}

/* Pixel chunks for the GroupNorm partial sums: fixed, so results do not depend on the
 * number of threads. */
#define GN_CHUNKS 64

int kn_groupnorm_coeffs(const float *x, int64_t P, int C, int groups, float eps, const float *gamma,
                        const float *beta, float *scale, float *shift) {
    if (groups <= 0 || C % groups != 0)
        return zi_err("group norm: %d channels not divisible into %d groups", C, groups);
    int64_t nch = P < GN_CHUNKS ? P : GN_CHUNKS;
    if (nch < 1) nch = 1;
    double *part = zi_calloc((size_t)(nch * 2 * C), sizeof(double));
    if (!part) return -1;
#pragma omp parallel for num_threads(kn_get_threads()) schedule(dynamic) if (P * C > CONV_PAR_MIN)
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
#pragma omp parallel for num_threads(kn_get_threads()) schedule(static) if (P * C > CONV_PAR_MIN)
    for (int64_t p = 0; p < P; p++)
        for (int c = 0; c < C; c++) y[p * C + c] = x[p * C + c] * scale[c] + shift[c];
}

void kn_chw_to_hwc(float *dst, const float *src, int C, int64_t P) {
#pragma omp parallel for num_threads(kn_get_threads()) schedule(static) if (P * C > CONV_PAR_MIN)
    for (int64_t p = 0; p < P; p++)
        for (int c = 0; c < C; c++) dst[p * C + c] = src[(int64_t)c * P + p];
}

void kn_hwc_to_chw(float *dst, const float *src, int C, int64_t P) {
#pragma omp parallel for num_threads(kn_get_threads()) schedule(static) if (P * C > CONV_PAR_MIN)
    for (int64_t p = 0; p < P; p++)
        for (int c = 0; c < C; c++) dst[(int64_t)c * P + p] = src[p * C + c];
}
