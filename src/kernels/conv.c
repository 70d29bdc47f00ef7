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

/* ---------------------------------------------------------------- bf16 precision mode
 *
 * In the bf16 mode the convs are plain row GEMMs of the kernels' bf16 GEMM (on AMX tiles /
 * vdpbf16ps where the path has them, else the fp32 GEMM with bf16-rounded inputs), so a conv has
 * the numerics of a bf16 Conv2d with f32 accumulation on every path. A k x k conv of stride 1
 * over a staged tile is k GEMMs, one per kernel row ky: output pixel (oy, ox) of the tile is
 * GEMM row r = oy*sw + ox, whose patch row ky is the k*cin contiguous floats at
 * stage + ((oy + ky)*sw + ox)*cin, i.e. a row-major matrix with row stride cin (rows overlap),
 * times columns [ky*k*cin, (ky+1)*k*cin) of the tap-major weight. Rows with ox >= Wo are
 * computed and dropped ((k-1)/sw of the work). Stride 2 (the encoder's downsamplers) runs one
 * GEMM per output row and kernel row (row stride s*cin). */

/* One GEMM of the bf16 mode: y[M, N] (ldy) (+)= x[M, K] (ldx) . B^T (+ bias). */
static int conv_gemm_bf16(const kn_impl *im, float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M,
                          int64_t N, int64_t K, const kn_wsrc *B, const float *bias, int acc, int T) {
    if (im->gemm_bf16 && M > 4) return im->gemm_bf16(y, ldy, x, ldx, M, N, K, B, bias, acc, T);
    return im->gemm(y, ldy, x, ldx, M, N, K, B, bias, acc, 1, T);
}

/* The weight columns of kernel row ky (a view on the tap-major weight). */
static kn_wsrc conv_wsrc_row(const kn_wsrc *B, int64_t ky, int64_t run) {
    kn_wsrc r = *B;
    r.data = kn_wsrc_at(B, 0, ky * run);
    return r;
}

/* The weight's kernel rows can be viewed separately when a row starts on a block boundary. */
static int conv_rows_viewable(const kn_wsrc *B, int64_t run) { return run % zi_dtype_block_elems(B->dt) == 0; }

static int conv2d_bf16(kn_conv_ws *ws, float *y, const float *res, int Ho, int Wo, const float *x, int H, int W,
                       const kn_conv *cv, const kn_conv_pre *pre, const kn_wsrc *B, int64_t sw, int64_t left,
                       int64_t rows) {
    const kn_impl *im = kn_impl_get();
    int T = kn_get_threads();
    int k = cv->k, s = cv->stride, cin = cv->cin, cout = cv->cout;
    int64_t run = (int64_t)k * cin, nr_max = (rows - 1) * s + k;
    int rc = -1;
    float *stage = kn_scratch_get(sizeof(float) * (size_t)(nr_max * sw * cin));
    float *tmp = stage && s == 1 ? kn_scratch_get(sizeof(float) * (size_t)(rows * sw * cout)) : NULL;
    if (!stage || (s == 1 && !tmp)) goto done;
    for (int64_t oy0 = 0; oy0 < Ho; oy0 += rows) {
        int64_t nrow = Ho - oy0 < rows ? Ho - oy0 : rows;
        conv_stage(im, stage, (nrow - 1) * s + k, oy0 * s - cv->pad, sw, left, x, H, W, pre, cin);
        float *dst = y + oy0 * Wo * cout;
        if (s == 1) {
            int64_t mt = (nrow - 1) * sw + Wo; /* rows up to the tile's last valid pixel */
            /* one implicit GEMM over all taps where the path has it (AMX); 1: not taken */
            int crc = im->conv_bf16 ? im->conv_bf16(tmp, stage, ((nrow - 1) * s + k) * sw, sw, cin, k, mt, cout, B,
                                                    cv->bias, T)
                                    : 1;
            if (crc < 0) goto done;
            for (int64_t ky = 0; ky < k && crc == 1; ky++) {
                kn_wsrc Bk = conv_wsrc_row(B, ky, run);
                // [mt, k*cin] (row stride cin) x [cout, k*cin]^T
                if (conv_gemm_bf16(im, tmp, cout, stage + ky * sw * cin, cin, mt, cout, run, &Bk,
                                   ky ? NULL : cv->bias, ky > 0, T))
                    goto done;
            }
            for (int64_t oy = 0; oy < nrow; oy++) { /* keep ox < Wo, add the residual */
                float *d = dst + oy * Wo * cout;
                const float *t = tmp + oy * sw * cout, *r = res ? res + (oy0 + oy) * Wo * cout : NULL;
                for (int64_t i = 0; i < Wo * cout; i++) d[i] = r ? t[i] + r[i] : t[i];
            }
        } else {
            if (res && res != y) memcpy(dst, res + oy0 * Wo * cout, sizeof(float) * (size_t)(nrow * Wo * cout));
            for (int64_t oy = 0; oy < nrow; oy++)
                for (int64_t ky = 0; ky < k; ky++) {
                    kn_wsrc Bk = conv_wsrc_row(B, ky, run);
                    // [Wo, k*cin] (row stride s*cin) x [cout, k*cin]^T
                    if (conv_gemm_bf16(im, dst + oy * Wo * cout, cout, stage + (oy * s + ky) * sw * cin,
                                       (int64_t)s * cin, Wo, cout, run, &Bk, ky ? NULL : cv->bias,
                                       ky > 0 || res != NULL, T))
                        goto done;
                }
        }
        if (ws) ws->macs += (double)nrow * Wo * (double)cout * (double)(run * k);
    }
    rc = 0;
done:
    kn_scratch_put(stage);
    kn_scratch_put(tmp);
    return rc;
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
    /* bf16 mode: the GEMM packs a copy of the tile's patch rows (k*cin per pixel) and writes a
     * [pixels, cout] buffer, so its stage gets a sixteenth of the budget instead of a quarter */
    int bf16 = kn_get_precision() == KN_PREC_BF16;
    int64_t rows = (conv_tile_bytes(ws) / (bf16 ? 16 : 4) / (sw * cin * (int64_t)sizeof(float)) - k) / s + 1;
    if (rows < 1) rows = 1;
    if (rows > Ho) rows = Ho;
    int64_t nr_max = (rows - 1) * s + k;
    const kn_impl *im = kn_impl_get();
    int T = kn_get_threads();
    kn_wsrc B = kn_wsrc_of_mat(&cv->w);
    if (kn_get_precision() == KN_PREC_BF16 && conv_rows_viewable(&B, (int64_t)k * cin)) {
        if (conv2d_bf16(ws, y, res, Ho, Wo, x, H, W, cv, pre, &B, sw, left, rows))
            return zi_err_ctx("conv2d %dx%d %d->%d at %dx%d", k, k, cin, cout, Ho, Wo);
        if (ws) ws->seconds += conv_now() - t0;
        return 0;
    }
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
    int bf16 = kn_get_precision() == KN_PREC_BF16; /* a plain bf16-mode GEMM (see conv2d_bf16) */
    size_t nwp = bf16 ? 0 : im->packw_floats(cout, cin);
    int rc = -1;
    float *wp = bf16 ? NULL : kn_scratch_get(sizeof(float) * nwp);
    float *tmp = (wp || bf16) && y == x ? kn_scratch_get(sizeof(float) * (size_t)(rows * cout)) : NULL;
    if ((!wp && !bf16) || (y == x && !tmp)) goto done;
    if (!bf16) im->packw(wp, &B, cout, cin, cin, T);
    for (int64_t p0 = 0; p0 < P; p0 += rows) {
        int64_t n = P - p0 < rows ? P - p0 : rows;
        kn_patch_src A = {x + p0 * cin, n, cin, n, 1, 1}; /* one row of n pixels */
        float *dst = tmp ? tmp : y + p0 * cout;
        if (bf16 ? conv_gemm_bf16(im, dst, cout, x + p0 * cin, cin, n, cout, cin, &B, cv->bias, 0, T)
                 : im->gemm_patches(dst, &A, n, cout, cin, wp, cv->bias, 0, T))
            goto done; // [n, cin] x [cout, cin]^T
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
