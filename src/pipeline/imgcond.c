/* imgcond.c - image conditioning for img2img / inpainting: fit, normalize, mask,
 * posterior sample, scale_noise (see imgcond.h for the diffusers references). */
#include "imgcond.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/error.h"

/* One separable pass: resample n_in -> n_out samples along one axis with a triangle
 * filter (PIL BILINEAR: support 1, scaled by the shrink factor), center-aligned. */
static int resample_axis(const float *in, int n_in, float *out, int n_out, int stride_in, int stride_out, int count,
                          int count_stride_in, int count_stride_out) {
    double scale = (double)n_in / n_out;
    double fs = scale > 1 ? scale : 1; /* filter scale: antialias when shrinking */
    double support = fs;
    int cap = 2 * (int)ceil(support) + 3;
    double *wts = zi_malloc(sizeof(double) * (size_t)cap);
    if (!wts) return -1;
    for (int o = 0; o < n_out; o++) {
        double center = (o + 0.5) * scale;
        int lo = (int)floor(center - support), hi = (int)ceil(center + support);
        if (lo < 0) lo = 0;
        if (hi > n_in) hi = n_in;
        double wsum = 0;
        int nw = 0;
        for (int i = lo; i < hi && nw < cap; i++) {
            double d = fabs((i + 0.5 - center) / fs);
            double wv = d < 1 ? 1 - d : 0;
            wts[nw++] = wv;
            wsum += wv;
        }
        if (wsum <= 0) wsum = 1;
        for (int k = 0; k < count; k++) {
            double acc = 0;
            for (int j = 0; j < nw; j++) acc += wts[j] * in[(size_t)k * count_stride_in + (size_t)(lo + j) * stride_in];
            out[(size_t)k * count_stride_out + (size_t)o * stride_out] = (float)(acc / wsum);
        }
    }
    free(wts);
    return 0;
}

int zi_imgcond_fit(const uint8_t *src, int sw, int sh, int c, int W, int H, uint8_t **dst) {
    *dst = NULL;
    if (sw < 1 || sh < 1 || W < 1 || H < 1) return zi_err("image fit: bad sizes %dx%d -> %dx%d", sw, sh, W, H);
    uint8_t *out = zi_malloc((size_t)W * H * c);
    if (!out) return -1;
    if (sw >= W && sh >= H && sw - W < 16 && sh - H < 16) { /* center crop only */
        int x0 = (sw - W) / 2, y0 = (sh - H) / 2;
        for (int y = 0; y < H; y++) memcpy(out + (size_t)y * W * c, src + ((size_t)(y + y0) * sw + x0) * c, (size_t)W * c);
        *dst = out;
        return 0;
    }
    /* cover: scale so both sides reach the target, then crop the overflow */
    double s = (double)W / sw > (double)H / sh ? (double)W / sw : (double)H / sh;
    int rw = (int)lround(sw * s), rh = (int)lround(sh * s);
    if (rw < W) rw = W;
    if (rh < H) rh = H;
    if (s < 1.0 / 1000) {
        free(out);
        return zi_err("image fit: %dx%d -> %dx%d shrinks more than 1000x", sw, sh, W, H);
    }
    float *a = zi_malloc((size_t)sw * sh * c * sizeof(float));
    float *b = zi_malloc((size_t)rw * sh * c * sizeof(float));
    float *r = zi_malloc((size_t)rw * rh * c * sizeof(float));
    if (!a || !b || !r) {
        free(a), free(b), free(r), free(out);
        return -1;
    }
    for (size_t i = 0; i < (size_t)sw * sh * c; i++) a[i] = src[i];
    /* horizontal: each row y, channel ch -> k = y*c + ch; elements at x*c */
    int bad = 0;
    for (int y = 0; y < sh && !bad; y++)
        bad = resample_axis(a + (size_t)y * sw * c, sw, b + (size_t)y * rw * c, rw, c, c, c, 1, 1);
    /* vertical: each column x, channel ch -> k = x*c + ch; elements at y*rw*c */
    if (!bad) bad = resample_axis(b, sh, r, rh, rw * c, rw * c, rw * c, 1, 1);
    if (bad) {
        free(a), free(b), free(r), free(out);
        return -1;
    }
    int x0 = (rw - W) / 2, y0 = (rh - H) / 2;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int ch = 0; ch < c; ch++) {
                float v = r[((size_t)(y + y0) * rw + x + x0) * c + ch];
                long q = lroundf(v);
                out[((size_t)y * W + x) * c + ch] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
            }
    free(a), free(b), free(r);
    *dst = out;
    return 0;
}

void zi_imgcond_to_float(const uint8_t *rgb, int W, int H, float *out) {
    const size_t hw = (size_t)W * H;
    for (size_t i = 0; i < hw; i++)
        for (int ch = 0; ch < 3; ch++) {
            float v = (float)rgb[i * 3 + ch] / 255.0f; /* numpy: astype(float32) / 255.0 */
            out[ch * hw + i] = 2.0f * v - 1.0f;       /* VaeImageProcessor.normalize */
        }
}

void zi_imgcond_mask_binarize(const uint8_t *rgb, int W, int H, uint8_t *bin) {
    for (size_t i = 0; i < (size_t)W * H; i++) {
        uint32_t L = (19595u * rgb[3 * i] + 38470u * rgb[3 * i + 1] + 7471u * rgb[3 * i + 2] + 0x8000u) >> 16;
        bin[i] = (float)L / 255.0f >= 0.5f;
    }
}

void zi_imgcond_mask_latent(const uint8_t *bin, int W, int H, float *lat) {
    int h = H / 8, w = W / 8;
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) lat[(size_t)i * w + j] = bin[(size_t)(8 * i) * W + 8 * j];
}

int zi_imgcond_mask_blur(const uint8_t *bin, int W, int H, float sigma, float *alpha) {
    int r = (int)ceilf(3 * sigma);
    if (r < 1) r = 1;
    if (r > 1024) r = 1024;
    float *k = zi_malloc(sizeof(float) * (size_t)(2 * r + 1));
    float *tmp = zi_malloc(sizeof(float) * (size_t)W * H);
    if (!k || !tmp) {
        free(k), free(tmp);
        return -1;
    }
    double ks = 0;
    for (int i = -r; i <= r; i++) ks += k[i + r] = expf(-0.5f * (float)i * i / (sigma * sigma));
    for (int i = 0; i <= 2 * r; i++) k[i] = (float)(k[i] / ks);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            float acc = 0;
            for (int i = -r; i <= r; i++) {
                int xx = x + i < 0 ? 0 : x + i >= W ? W - 1 : x + i;
                acc += k[i + r] * bin[(size_t)y * W + xx];
            }
            tmp[(size_t)y * W + x] = acc;
        }
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            float acc = 0;
            for (int i = -r; i <= r; i++) {
                int yy = y + i < 0 ? 0 : y + i >= H ? H - 1 : y + i;
                acc += k[i + r] * tmp[(size_t)yy * W + x];
            }
            alpha[(size_t)y * W + x] = acc < 0 ? 0 : acc > 1 ? 1 : acc;
        }
    free(k), free(tmp);
    return 0;
}

void zi_imgcond_overlay(const uint8_t *orig, const float *alpha, int W, int H, uint8_t *gen) {
    for (size_t i = 0; i < (size_t)W * H; i++) {
        float a = alpha[i];
        for (int ch = 0; ch < 3; ch++) {
            float v = orig[3 * i + ch] * (1 - a) + gen[3 * i + ch] * a;
            long q = lroundf(v);
            gen[3 * i + ch] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
        }
    }
}

int zi_imgcond_t_start(int n_steps, double strength) {
    double init = n_steps * strength < n_steps ? n_steps * strength : n_steps;
    double rest = n_steps - init;
    return (int)(rest > 0 ? rest : 0);
}

void zi_imgcond_posterior(const float *moments, const float *eps, int64_t n, float shift, float scaling, float *out) {
    const float *mean = moments, *logvar = moments + n;
    for (int64_t i = 0; i < n; i++) {
        float lv = logvar[i] < -30.0f ? -30.0f : logvar[i] > 20.0f ? 20.0f : logvar[i];
        float sd = expf(0.5f * lv);
        float x = mean[i] + sd * eps[i];
        out[i] = (x - shift) * scaling;
    }
}

void zi_imgcond_scale_noise(const float *x0, const float *noise, float sigma, int64_t n, float *out) {
    const float keep = 1.0f - sigma;
    for (int64_t i = 0; i < n; i++) {
        float a = sigma * noise[i], b = keep * x0[i];
        out[i] = a + b;
    }
}
