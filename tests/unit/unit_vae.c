/* unit_vae.c - VAE: conv/GroupNorm kernels vs naive references (single and
 * multi-tile), loader errors on crafted folders (wrong shape, missing tensor,
 * decoder-only file, BFL file with FLUX defaults) and BFL-name equivalence: the
 * tiny VAE renamed to BFL/ComfyUI names must decode and encode bit-identically. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../../src/common/dtype.h"
#include "../../src/common/error.h"
#include "../../src/io/safetensors.h"
#include "../../src/kernels/conv.h"
#include "../../src/vae/vae.h"
#include "unit.h"

static uint64_t vae_rng = 0x9E3779B97F4A7C15ull;

static float frand(void) { /* uniform in [-1, 1) */
    vae_rng ^= vae_rng << 13;
    vae_rng ^= vae_rng >> 7;
    vae_rng ^= vae_rng << 17;
    return (float)((vae_rng >> 40) * (1.0 / 8388608.0) - 1.0);
}

static float *rand_vec(int64_t n) {
    float *p = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) p[i] = frand();
    return p;
}

/* Naive conv on channels-last x with torch weights [cout, cin, k, k]. */
static void ref_conv(float *y, const float *res, int Ho, int Wo, const float *x, int H, int W, int cin, int cout,
                     int k, int s, int pad, const float *wt, const float *b, const kn_conv_pre *pre) {
    int up = pre && pre->up2, Hi = up ? 2 * H : H, Wi = up ? 2 * W : W;
    for (int oy = 0; oy < Ho; oy++)
        for (int ox = 0; ox < Wo; ox++)
            for (int o = 0; o < cout; o++) {
                double acc = b ? b[o] : 0;
                for (int c = 0; c < cin; c++)
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int iy = oy * s - pad + ky, ix = ox * s - pad + kx;
                            if (iy < 0 || iy >= Hi || ix < 0 || ix >= Wi) continue;
                            if (up) iy /= 2, ix /= 2;
                            double v = x[((int64_t)iy * W + ix) * cin + c];
                            if (pre && pre->scale) v = v * pre->scale[c] + pre->shift[c];
                            if (pre && pre->silu) v = v / (1 + exp(-v));
                            acc += v * wt[((o * cin + c) * k + ky) * k + kx];
                        }
                int64_t i = ((int64_t)oy * Wo + ox) * cout + o;
                y[i] = (float)(acc + (res ? res[i] : 0));
            }
}

static double max_err(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (e > m || a[i] != a[i]) m = a[i] != a[i] ? 1e30 : e;
    }
    return m;
}

static void conv_case(const char *what, int cin, int cout, int k, int s, int pad, int H, int W, int Ho, int Wo,
                      int affine, int silu, int up, int resid) {
    float *x = rand_vec((int64_t)H * W * cin), *wt = rand_vec((int64_t)cout * cin * k * k), *b = rand_vec(cout);
    float *sc = rand_vec(cin), *sh = rand_vec(cin);
    float *packed = malloc(sizeof(float) * (size_t)cout * cin * k * k);
    kn_conv_pack(packed, wt, sizeof(float), cout, cin, k);
    kn_conv cv = {cin, cout, k, s, pad, {.dtype = ZI_F32, .rows = cout, .cols = (int64_t)k * k * cin, .data = packed}, b};
    kn_conv_pre pre = {affine ? sc : NULL, affine ? sh : NULL, silu, up};
    int64_t n = (int64_t)Ho * Wo * cout;
    float *res = resid ? rand_vec(n) : NULL, *want = malloc(sizeof(float) * (size_t)n);
    float *got = malloc(sizeof(float) * (size_t)n);
    ref_conv(want, res, Ho, Wo, x, H, W, cin, cout, k, s, pad, wt, b, &pre);
    kn_conv_ws ws = {0};
    for (int tiny = 0; tiny < 2; tiny++) {
        ws.tile_bytes = 1; /* 1 byte: one output row per tile (used when tiny) */
        if (res && resid == 1) memcpy(got, res, sizeof(float) * (size_t)n);
        /* resid 1: residual in place (res = y, as the VAE calls it); 2: separate res */
        int rc = kn_conv2d(tiny ? &ws : NULL, got, res ? (resid == 1 ? got : res) : NULL, Ho, Wo, x, H, W, &cv, &pre);
        double e = max_err(got, want, n);
        UNIT_CHECK(rc == 0 && e < 1e-4, "conv %s (tiles %s): rc %d max err %g", what, tiny ? "1 row" : "default",
                   rc, e);
    }
    free(x), free(wt), free(b), free(sc), free(sh), free(packed), free(res), free(want), free(got);
}

/* bf16 precision mode: a conv must equal the double-precision conv of the bf16-rounded input
 * and weight (f32 accumulation: within 1e-6 of sum |x w| per output, as the GEMM tests), on every
 * kernel path the CPU has (the c path runs the exact emulation of vdpbf16ps). No GroupNorm/SiLU
 * pre-transform here: its f32 result is rounded, which the reference cannot reproduce exactly. */
static void conv_bf16_case(const char *what, int cin, int cout, int k, int s, int pad, int H, int W, int Ho, int Wo,
                           int up, int resid, int tile_bytes) {
    int64_t nx = (int64_t)H * W * cin, nw = (int64_t)cout * cin * k * k, n = (int64_t)Ho * Wo * cout;
    float *x = rand_vec(nx), *wt = rand_vec(nw), *b = rand_vec(cout), *res = resid ? rand_vec(n) : NULL;
    float *xr = malloc(sizeof(float) * (size_t)nx), *wr = malloc(sizeof(float) * (size_t)nw);
    for (int64_t i = 0; i < nx; i++) xr[i] = zi_bf16_to_f32(zi_f32_to_bf16(x[i]));
    for (int64_t i = 0; i < nw; i++) wr[i] = zi_bf16_to_f32(zi_f32_to_bf16(wt[i]));
    float *packed = malloc(sizeof(float) * (size_t)nw), *want = malloc(sizeof(float) * (size_t)n);
    float *mag = malloc(sizeof(float) * (size_t)n), *got = malloc(sizeof(float) * (size_t)n);
    float *absx = malloc(sizeof(float) * (size_t)nx), *absw = malloc(sizeof(float) * (size_t)nw);
    for (int64_t i = 0; i < nx; i++) absx[i] = fabsf(xr[i]);
    for (int64_t i = 0; i < nw; i++) absw[i] = fabsf(wr[i]);
    kn_conv_pack(packed, wt, sizeof(float), cout, cin, k);
    kn_conv_pre pre = {NULL, NULL, 0, up};
    ref_conv(want, res, Ho, Wo, xr, H, W, cin, cout, k, s, pad, wr, b, &pre);
    ref_conv(mag, NULL, Ho, Wo, absx, H, W, cin, cout, k, s, pad, absw, NULL, &pre); /* sum |x w| */
    kn_isa saved = kn_get_isa();
    for (int i = 0; i < KN_ISA_COUNT; i++) {
        if (!kn_isa_supported((kn_isa)i, NULL)) continue; /* unit_kernels prints the SKIP lines */
        kn_set_isa((kn_isa)i);
        kn_conv cv = {cin, cout, k, s, pad, {.dtype = ZI_F32, .rows = cout, .cols = (int64_t)k * k * cin, .data = packed}, b};
        kn_conv_ws ws = {.tile_bytes = tile_bytes};
        if (res && resid == 1) memcpy(got, res, sizeof(float) * (size_t)n);
        kn_set_precision(KN_PREC_BF16);
        int rc = k == 1 && !res && !up ? kn_conv1x1(&ws, got, x, (int64_t)Ho * Wo, &cv)
                                       : kn_conv2d(&ws, got, res ? (resid == 1 ? got : res) : NULL, Ho, Wo, x, H, W, &cv, &pre);
        kn_set_precision(KN_PREC_F32);
        double worst = 0;
        for (int64_t j = 0; j < n; j++) {
            double e = fabs((double)got[j] - want[j]) / ((double)mag[j] + fabs(b[j % cout]) + (res ? fabs(res[j]) : 0) + 1e-30);
            if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
        }
        UNIT_CHECK(rc == 0 && worst <= 1e-6, "conv bf16 mode %s on %s: rc %d rel err %.3g vs rounded-input reference",
                   what, kn_isa_name((kn_isa)i), rc, worst);
    }
    kn_set_isa(saved);
    free(x), free(wt), free(b), free(res), free(xr), free(wr), free(packed), free(want), free(mag), free(got);
    free(absx), free(absw);
}

static void test_conv_bf16(void) {
    conv_bf16_case("3x3 plain", 16, 8, 3, 1, 1, 4, 4, 4, 4, 0, 0, 0);
    conv_bf16_case("3x3 wide, residual in place, one row per tile", 100, 45, 3, 1, 1, 5, 31, 5, 31, 0, 1, 1);
    conv_bf16_case("3x3 separate residual, upsample2", 24, 17, 3, 1, 1, 3, 9, 6, 18, 1, 2, 0);
    conv_bf16_case("3x3 stride 2 pad (0,1,0,1)", 20, 33, 3, 2, 0, 9, 41, 4, 20, 0, 0, 0);
    conv_bf16_case("3x3 stride 2, residual, one row per tile", 6, 5, 3, 2, 0, 8, 10, 4, 5, 0, 2, 1);
    conv_bf16_case("3x3 many rows", 16, 40, 3, 1, 1, 30, 23, 30, 23, 0, 0, 0);
    conv_bf16_case("1x1 (kn_conv1x1)", 300, 45, 1, 1, 0, 1, 333, 1, 333, 0, 0, 0);
    conv_bf16_case("1x1 conv2d with residual", 64, 32, 1, 1, 0, 7, 9, 7, 9, 0, 1, 0);
    /* cin and cout multiples of 32: the AMX GEMM's W-direct form */
    conv_bf16_case("3x3 cin 64 cout 32", 64, 32, 3, 1, 1, 6, 21, 6, 21, 0, 0, 0);
    conv_bf16_case("3x3 cin 32 cout 96, residual in place, upsample2", 32, 96, 3, 1, 1, 5, 11, 10, 22, 1, 1, 0);
    conv_bf16_case("3x3 cin 96 cout 64, separate residual, one row per tile", 96, 64, 3, 1, 1, 7, 40, 7, 40, 0, 2, 1);
    conv_bf16_case("1x1 conv2d cin 64 cout 64, residual", 64, 64, 1, 1, 0, 9, 37, 9, 37, 0, 1, 0);
}

static void test_conv_kernels(void) {
    conv_case("3x3 GN+SiLU+residual", 5, 7, 3, 1, 1, 6, 9, 6, 9, 1, 1, 0, 1);
    conv_case("3x3 plain", 16, 8, 3, 1, 1, 4, 4, 4, 4, 0, 0, 0, 0);
    conv_case("3x3 upsample2", 4, 3, 3, 1, 1, 3, 5, 6, 10, 0, 0, 1, 0);
    conv_case("3x3 stride 2 pad (0,1,0,1)", 6, 5, 3, 2, 0, 8, 10, 4, 5, 0, 0, 0, 0);
    conv_case("3x3 stride 2 odd size", 3, 4, 3, 2, 0, 7, 9, 3, 4, 1, 1, 0, 0);
    /* rows >= 14 pixels wide (panels read in place), runs of 3*cin > 256 (two K blocks
     * per kernel row), cout not a multiple of 32, pixels not a multiple of 14 */
    conv_case("3x3 wide GN+SiLU+residual", 100, 45, 3, 1, 1, 5, 31, 5, 31, 1, 1, 0, 1);
    conv_case("3x3 wide separate residual", 32, 70, 3, 1, 1, 4, 29, 4, 29, 0, 1, 0, 2);
    conv_case("3x3 wide upsample2", 24, 17, 3, 1, 1, 3, 9, 6, 18, 1, 0, 1, 0);
    conv_case("3x3 wide stride 2", 20, 33, 3, 2, 0, 9, 41, 4, 20, 0, 0, 0, 0);
    conv_case("3x3 many rows x 336-row groups", 16, 40, 3, 1, 1, 30, 23, 30, 23, 1, 1, 0, 1);

    /* a wide conv gives bit-identical results on 1 and 2 threads */
    {
        int cin = 48, cout = 40, H = 20, W = 37;
        float *x = rand_vec((int64_t)H * W * cin), *w = rand_vec((int64_t)cout * 9 * cin), *b = rand_vec(cout);
        int64_t n = (int64_t)H * W * cout;
        float *y1 = malloc(sizeof(float) * (size_t)n), *y2 = malloc(sizeof(float) * (size_t)n);
        kn_conv cv = {cin, cout, 3, 1, 1, {.dtype = ZI_F32, .rows = cout, .cols = 9 * (int64_t)cin, .data = w}, b};
        int saved = kn_get_threads();
        kn_set_threads(1);
        int rc = kn_conv2d(NULL, y1, NULL, H, W, x, H, W, &cv, NULL);
        kn_set_threads(2);
        rc |= kn_conv2d(NULL, y2, NULL, H, W, x, H, W, &cv, NULL);
        kn_set_threads(saved);
        UNIT_CHECK(rc == 0 && memcmp(y1, y2, sizeof(float) * (size_t)n) == 0, "conv2d differs between 1 and 2 threads");
        free(x), free(w), free(b), free(y1), free(y2);
    }

    /* 1x1 out of place, wide and odd */
    {
        int P = 333, cin = 300, cout = 45;
        float *x = rand_vec((int64_t)P * cin), *w = rand_vec(cout * cin), *b = rand_vec(cout);
        float *want = malloc(sizeof(float) * (size_t)P * cout), *got = malloc(sizeof(float) * (size_t)P * cout);
        ref_conv(want, NULL, 1, P, x, 1, P, cin, cout, 1, 1, 0, w, b, NULL);
        kn_conv cv = {cin, cout, 1, 1, 0, {.dtype = ZI_F32, .rows = cout, .cols = cin, .data = w}, b};
        int rc = kn_conv1x1(NULL, got, x, P, &cv);
        double e = max_err(got, want, (int64_t)P * cout);
        UNIT_CHECK(rc == 0 && e < 1e-4, "conv1x1 %d->%d P=%d: rc %d err %g", cin, cout, P, rc, e);
        free(x), free(w), free(b), free(want), free(got);
    }

    /* 1x1 in place (cout < cin), default and one-row tiles */
    for (int tiny = 0; tiny < 2; tiny++) {
        int P = 37, cin = 6, cout = 4;
        float *x = rand_vec((int64_t)P * cin), *w = rand_vec(cout * cin), *b = rand_vec(cout);
        float *want = malloc(sizeof(float) * (size_t)P * cout);
        ref_conv(want, NULL, 1, P, x, 1, P, cin, cout, 1, 1, 0, w, b, NULL);
        kn_conv cv = {cin, cout, 1, 1, 0, {.dtype = ZI_F32, .rows = cout, .cols = cin, .data = w}, b};
        kn_conv_ws ws = {0};
        ws.tile_bytes = 1; /* one output row per tile (used when tiny) */
        int rc = kn_conv1x1(tiny ? &ws : NULL, x, x, P, &cv);
        double e = max_err(x, want, (int64_t)P * cout);
        UNIT_CHECK(rc == 0 && e < 1e-5, "conv1x1 in place (tiny tiles %d): rc %d err %g", tiny, rc, e);
        free(x), free(w), free(b), free(want);
    }

    /* GroupNorm coefficients vs a direct two-pass computation */
    {
        int P = 29, C = 8, G = 4;
        float *x = rand_vec((int64_t)P * C), *g = rand_vec(C), *b = rand_vec(C), sc[8], sh[8];
        for (int i = 0; i < P * C; i++) x[i] = 3.0f + 2.0f * x[i];
        int rc = kn_groupnorm_coeffs(x, P, C, G, 1e-6f, g, b, sc, sh);
        double worst = 0;
        for (int gi = 0; gi < G; gi++) {
            double m = 0, v = 0;
            for (int p = 0; p < P; p++)
                for (int c = gi * 2; c < gi * 2 + 2; c++) m += x[p * C + c];
            m /= P * 2;
            for (int p = 0; p < P; p++)
                for (int c = gi * 2; c < gi * 2 + 2; c++) v += (x[p * C + c] - m) * (x[p * C + c] - m);
            v /= P * 2;
            for (int p = 0; p < P; p++)
                for (int c = gi * 2; c < gi * 2 + 2; c++) {
                    double want = (x[p * C + c] - m) / sqrt(v + 1e-6) * g[c] + b[c];
                    double got = x[p * C + c] * sc[c] + sh[c];
                    if (fabs(want - got) > worst) worst = fabs(want - got);
                }
        }
        UNIT_CHECK(rc == 0 && worst < 1e-5, "groupnorm coeffs: rc %d err %g", rc, worst);
        UNIT_CHECK(kn_groupnorm_coeffs(x, P, 6, 4, 1e-6f, g, b, sc, sh) != 0 && strstr(zi_last_error(), "groups"),
                   "groupnorm with C %% groups != 0 must fail: %s", zi_last_error());
        free(x), free(g), free(b);
    }

    /* uint8 conversion: clamp, round half to even, NaN -> 0 */
    {
        float img[3 * 2] = {-2.0f, 1.0f, (0.5f / 255.0f) * 2.0f - 1.0f, (2.5f / 255.0f) * 2.0f - 1.0f, NAN, 0.0f};
        uint8_t u8[6];
        zi_vae_to_u8(img, 1, 2, u8);
        /* pixel 0: R=-2 -> 0, G=0.5/255 -> round(0.5)=0, B=NaN -> 0; pixel 1: R=1 -> 255, G=2.5/255 -> 2, B=0 -> 128 */
        UNIT_CHECK(u8[0] == 0 && u8[1] == 0 && u8[2] == 0 && u8[3] == 255 && u8[4] == 2 && u8[5] == 128,
                   "to_u8: got %d %d %d %d %d %d", u8[0], u8[1], u8[2], u8[3], u8[4], u8[5]);
    }
}

/* ------------------------------------------------------------------ crafted files */

typedef struct {
    char name[256];
    zi_dtype dtype;
    int ndim;
    int64_t shape[ZI_MAX_DIMS];
    const void *data;
    size_t nbytes;
} st_entry;

static int st_write_entries(const char *path, const st_entry *e, int n) {
    json_t *h = json_object();
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        json_t *t = json_object(), *sh = json_array();
        for (int d = 0; d < e[i].ndim; d++) json_array_append_new(sh, json_integer(e[i].shape[d]));
        json_object_set_new(t, "dtype", json_string(zi_dtype_name(e[i].dtype)));
        json_object_set_new(t, "shape", sh);
        json_object_set_new(t, "data_offsets", json_pack("[II]", (json_int_t)off, (json_int_t)(off + e[i].nbytes)));
        json_object_set_new(h, e[i].name, t);
        off += e[i].nbytes;
    }
    char *txt = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    size_t len = strlen(txt), padded = (len + 7) / 8 * 8;
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(txt);
        return -1;
    }
    uint8_t lb[8];
    for (int i = 0; i < 8; i++) lb[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    fwrite(lb, 1, 8, f);
    fwrite(txt, 1, len, f);
    for (size_t i = len; i < padded; i++) fputc(' ', f);
    for (int i = 0; i < n; i++) fwrite(e[i].data, 1, e[i].nbytes, f);
    free(txt);
    return fclose(f);
}

/* diffusers -> BFL/ComfyUI tensor name (docs/MODEL.md §3.6); n = number of levels. */
static void name_to_bfl(const char *in, char *out, size_t cap, int n) {
    int a, b;
    char side[16], rest[200];
    if (sscanf(in, "decoder.up_blocks.%d.resnets.%d.%199s", &a, &b, rest) == 3)
        snprintf(out, cap, "decoder.up.%d.block.%d.%s", n - 1 - a, b, rest);
    else if (sscanf(in, "decoder.up_blocks.%d.upsamplers.0.conv.%199s", &a, rest) == 2)
        snprintf(out, cap, "decoder.up.%d.upsample.conv.%s", n - 1 - a, rest);
    else if (sscanf(in, "encoder.down_blocks.%d.resnets.%d.%199s", &a, &b, rest) == 3)
        snprintf(out, cap, "encoder.down.%d.block.%d.%s", a, b, rest);
    else if (sscanf(in, "encoder.down_blocks.%d.downsamplers.0.conv.%199s", &a, rest) == 2)
        snprintf(out, cap, "encoder.down.%d.downsample.conv.%s", a, rest);
    else if (sscanf(in, "%15[a-z].mid_block.resnets.%d.%199s", side, &a, rest) == 3)
        snprintf(out, cap, "%s.mid.block_%d.%s", side, a + 1, rest);
    else if (sscanf(in, "%15[a-z].mid_block.attentions.0.%199s", side, rest) == 2) {
        static const char *const map[5][2] = {
            {"group_norm.", "norm."}, {"to_q.", "q."}, {"to_k.", "k."}, {"to_v.", "v."}, {"to_out.0.", "proj_out."}};
        for (int i = 0; i < 5; i++)
            if (!strncmp(rest, map[i][0], strlen(map[i][0])))
                snprintf(out, cap, "%s.mid.attn_1.%s%s", side, map[i][1], rest + strlen(map[i][0]));
    } else if (sscanf(in, "%15[a-z].conv_norm_out.%199s", side, rest) == 2)
        snprintf(out, cap, "%s.norm_out.%s", side, rest);
    else
        snprintf(out, cap, "%s", in);
    char *p = strstr(out, "conv_shortcut");
    if (p) memcpy(p, "nin_", 4), memmove(p + 4, p + 5, strlen(p + 5) + 1); /* conv_shortcut -> nin_shortcut */
}

static char vae_tmp[256];

static int sh(const char *cmd) { return system(cmd); }

/* Folder `sub` in the temp dir with the tiny config.json (if with_config) and one
 * safetensors file holding entries e. Returns the folder path in out. */
static void make_vae_dir(const char *fixtures, const char *sub, int with_config, const st_entry *e, int n, char *out,
                         size_t cap) {
    char cmd[2048], file[1024];
    snprintf(out, cap, "%s/%s", vae_tmp, sub);
    snprintf(cmd, sizeof cmd, "mkdir -p %s", out);
    if (sh(cmd)) return;
    if (with_config) {
        snprintf(cmd, sizeof cmd, "cp %s/tiny-zimage/vae/config.json %s/", fixtures, out);
        if (sh(cmd)) return;
    }
    snprintf(file, sizeof file, "%s/diffusion_pytorch_model.safetensors", out);
    st_write_entries(file, e, n);
}

static void expect_load_error(const char *dir, int parts, const char *want) {
    zi_vae *v = NULL;
    zi_err_clear();
    int rc = zi_vae_load_ex(&v, dir, parts);
    UNIT_CHECK(rc != 0 && strstr(zi_last_error(), want), "%s: expected error containing '%s', got rc=%d '%s'", dir,
               want, rc, zi_last_error());
    zi_vae_free(v);
}

static void test_vae_files(const char *fixtures) {
    char src[1024], dir[600];
    snprintf(src, sizeof src, "%s/tiny-zimage/vae/diffusion_pytorch_model.safetensors", fixtures);
    zi_st_file f;
    if (zi_st_open(&f, src)) {
        UNIT_CHECK(0, "cannot open %s: %s", src, zi_last_error());
        return;
    }
    int n = f.n_tensors;
    st_entry *e = calloc((size_t)n, sizeof *e);
    for (int i = 0; i < n; i++) {
        const zi_tensor *t = &f.tensors[i];
        snprintf(e[i].name, sizeof e[i].name, "%s", t->name);
        e[i].dtype = t->dtype;
        e[i].ndim = t->ndim;
        memcpy(e[i].shape, t->shape, sizeof t->shape);
        e[i].data = t->data;
        e[i].nbytes = t->nbytes;
    }

    /* 1. one tensor with the right size but the wrong shape */
    const char *bad = "decoder.up_blocks.1.resnets.0.conv1.weight";
    int ib = -1;
    for (int i = 0; i < n; i++)
        if (!strcmp(e[i].name, bad)) ib = i;
    UNIT_CHECK(ib >= 0, "tiny VAE lacks %s", bad);
    if (ib >= 0) {
        st_entry keep = e[ib];
        e[ib].ndim = 3;
        e[ib].shape[2] = 9; /* [32, 64, 3, 3] -> [32, 64, 9] */
        make_vae_dir(fixtures, "vae_badshape", 1, e, n, dir, sizeof dir);
        expect_load_error(dir, ZI_VAE_DECODER, "decoder.up_blocks.1.resnets.0.conv1.weight' has shape [32, 64, 9]");
        e[ib] = keep;
    }

    /* 2. a missing tensor */
    {
        st_entry *m = malloc(sizeof *m * (size_t)n);
        int k = 0;
        for (int i = 0; i < n; i++)
            if (strcmp(e[i].name, "decoder.conv_out.bias")) m[k++] = e[i];
        make_vae_dir(fixtures, "vae_missing", 1, m, k, dir, sizeof dir);
        expect_load_error(dir, ZI_VAE_DECODER, "missing tensor 'decoder.conv_out.bias'");
        free(m);
    }

    /* 3. decoder-only file: loads; encode names the first absent encoder tensor */
    {
        st_entry *m = malloc(sizeof *m * (size_t)n);
        int k = 0;
        for (int i = 0; i < n; i++)
            if (strncmp(e[i].name, "encoder.", 8)) m[k++] = e[i];
        make_vae_dir(fixtures, "vae_deconly", 1, m, k, dir, sizeof dir);
        zi_vae *v = NULL;
        int rc = zi_vae_load(&v, dir);
        UNIT_CHECK(rc == 0, "decoder-only VAE should load: %s", zi_last_error());
        if (rc == 0) {
            float img[3 * 8 * 8] = {0}, mom[32];
            zi_err_clear();
            rc = zi_vae_encode(v, img, 8, 8, mom);
            UNIT_CHECK(rc != 0 && strstr(zi_last_error(), "missing tensor 'encoder.conv_in.weight'"),
                       "encode without encoder: rc %d '%s'", rc, zi_last_error());
            zi_vae_free(v);
        }
        free(m);
    }

    /* 4. BFL names (attention weights as [C, C, 1, 1] convs) next to the tiny config */
    st_entry *bfl = malloc(sizeof *bfl * (size_t)n);
    for (int i = 0; i < n; i++) {
        bfl[i] = e[i];
        name_to_bfl(e[i].name, bfl[i].name, sizeof bfl[i].name, 4);
        if (strstr(bfl[i].name, ".attn_1.") && !strstr(bfl[i].name, ".norm.") && e[i].ndim == 2) {
            bfl[i].ndim = 4;
            bfl[i].shape[2] = bfl[i].shape[3] = 1;
        }
    }
    make_vae_dir(fixtures, "vae_bfl", 1, bfl, n, dir, sizeof dir);
    {
        char ddir[1100];
        snprintf(ddir, sizeof ddir, "%s/tiny-zimage/vae", fixtures);
        zi_vae *a = NULL, *b = NULL;
        int ra = zi_vae_load_ex(&a, ddir, ZI_VAE_DECODER | ZI_VAE_ENCODER);
        int rb = zi_vae_load_ex(&b, dir, ZI_VAE_DECODER | ZI_VAE_ENCODER);
        UNIT_CHECK(ra == 0 && rb == 0 && a->bfl == 0 && b->bfl == 1, "diffusers/BFL load: %d %d %s", ra, rb,
                   zi_last_error());
        if (ra == 0 && rb == 0) {
            int h = 3, w = 5, H = 24, W = 40;
            float *lat = rand_vec(16 * h * w), *ia = malloc(sizeof(float) * 3 * H * W);
            float *ib2 = malloc(sizeof(float) * 3 * H * W);
            int r1 = zi_vae_decode(a, lat, h, w, ia), r2 = zi_vae_decode(b, lat, h, w, ib2);
            UNIT_CHECK(r1 == 0 && r2 == 0 && !memcmp(ia, ib2, sizeof(float) * 3 * H * W),
                       "BFL-named decode differs from diffusers (%d %d)", r1, r2);
            float *ma = malloc(sizeof(float) * 32 * h * w), *mb = malloc(sizeof(float) * 32 * h * w);
            r1 = zi_vae_encode(a, ia, H, W, ma);
            r2 = zi_vae_encode(b, ia, H, W, mb);
            UNIT_CHECK(r1 == 0 && r2 == 0 && !memcmp(ma, mb, sizeof(float) * 32 * h * w),
                       "BFL-named encode differs from diffusers (%d %d)", r1, r2);
            /* bad sizes are errors, not crashes */
            UNIT_CHECK(zi_vae_encode(a, ia, 20, 40, ma) != 0 && strstr(zi_last_error(), "multiple of 8"),
                       "encode 20x40 should fail: %s", zi_last_error());
            UNIT_CHECK(zi_vae_decode(a, lat, 0, 5, ia) != 0, "decode 0x5 should fail");
            free(lat), free(ia), free(ib2), free(ma), free(mb);
        }
        zi_vae_free(a);
        zi_vae_free(b);
    }

    /* 5. a BFL single file (no config.json) gets the FLUX defaults: the tiny shapes mismatch */
    {
        char file[700];
        snprintf(file, sizeof file, "%s/ae.safetensors", vae_tmp);
        st_write_entries(file, bfl, n);
        expect_load_error(file, ZI_VAE_DECODER,
                          "decoder.conv_in.weight' has shape [64, 16, 3, 3], expected [512, 16, 3, 3]");
    }

    /* 6. not a VAE */
    {
        st_entry one = {.name = "foo.weight", .dtype = ZI_F32, .ndim = 1, .shape = {1}, .data = e[0].data, .nbytes = 4};
        make_vae_dir(fixtures, "vae_none", 0, &one, 1, dir, sizeof dir);
        expect_load_error(dir, ZI_VAE_DECODER, "not a VAE");
    }
    free(bfl);
    free(e);
    zi_st_close(&f);
}

void unit_vae(const char *fixtures) {
    test_conv_kernels();
    test_conv_bf16();
    snprintf(vae_tmp, sizeof vae_tmp, "/tmp/zimage-unit-vae-XXXXXX");
    if (!mkdtemp(vae_tmp)) {
        UNIT_CHECK(0, "mkdtemp failed");
        return;
    }
    test_vae_files(fixtures);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", vae_tmp);
    if (sh(cmd) != 0) UNIT_CHECK(0, "cleanup failed");
}
