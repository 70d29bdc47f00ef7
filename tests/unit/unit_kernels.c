/* unit_kernels.c - src/kernels vs naive double-precision references, for every instruction-set
 * path the CPU supports (a SKIP line names the others and why).
 *
 * Sizes are deliberately not multiples of the tile sizes (14 x 32 microkernel,
 * 256-deep K blocks, 336-row M blocks, 2048-column N blocks, 112 x 128 attention
 * tiles) so every edge path runs. Tolerances are tight: a GEMM output may differ
 * from the double reference by 1e-6 * sum_k |x_k w_k| (fp32 rounding of a long sum),
 * attention outputs by 2e-6 absolute (values in [-1, 1]). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/kernels/kernels.h"
#include "../../src/common/error.h"
#include "../../src/common/quant.h"
#include "../../src/kernels/impl.h" /* the conv implicit GEMM (kernels-internal) */
#include "unit.h"

static uint64_t ku_rng = 88172645463325252ull;
static float ku_uniform(void) { /* [-1, 1) */
    ku_rng ^= ku_rng << 13;
    ku_rng ^= ku_rng >> 7;
    ku_rng ^= ku_rng << 17;
    return (float)((ku_rng >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static float *ku_rand(size_t n, float scale) {
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = ku_uniform() * scale;
    return p;
}

/* Weight matrix of dtype dt holding random values; wf gets the exact f32 values. */
static void *ku_weights(zi_dtype dt, int64_t N, int64_t K, int64_t ldw, float **wf) {
    size_t n = (size_t)(N * ldw);
    if (zi_dtype_is_block(dt)) { /* rows quantized by our quantizer; wf = their exact dequantized values */
        float *v = malloc(n * sizeof(float));
        void *w = malloc((size_t)N * zi_dtype_row_bytes(dt, ldw));
        *wf = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) v[i] = ku_uniform();
        zi_quantize(dt, v, w, (int64_t)n);
        zi_dequantize(dt, w, *wf, (int64_t)n);
        free(v);
        (void)K;
        return w;
    }
    void *w = malloc(n * zi_dtype_size(dt));
    *wf = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        float v = ku_uniform();
        if (dt == ZI_BF16) {
            uint16_t h = zi_f32_to_bf16(v);
            ((uint16_t *)w)[i] = h;
            (*wf)[i] = zi_bf16_to_f32(h);
        } else if (dt == ZI_F16) {
            uint16_t h = zi_f32_to_f16(v);
            ((uint16_t *)w)[i] = h;
            (*wf)[i] = zi_f16_to_f32(h);
        } else {
            ((float *)w)[i] = v;
            (*wf)[i] = v;
        }
    }
    (void)K;
    return w;
}

/* max over outputs of |y - ref| / (sum |x w| + tiny); with a sentinel check on ldy padding. */
static double ku_check_gemm(const float *y, int64_t ldy, const float *x, int64_t ldx, const float *wf, int64_t ldw,
                            const float *bias, int64_t M, int64_t N, int64_t K) {
    double worst = 0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = bias ? bias[j] : 0, a = bias ? fabs(bias[j]) : 0;
            for (int64_t e = 0; e < K; e++) {
                double p = (double)x[i * ldx + e] * wf[j * ldw + e];
                s += p, a += fabs(p);
            }
            double err = fabs(y[i * ldy + j] - s) / (a + 1e-30);
            if (!(err <= worst)) worst = isnan(err) ? INFINITY : err;
        }
    return worst;
}

static int ku_padding_intact(const float *y, int64_t ldy, int64_t M, int64_t N) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = N; j < ldy; j++)
            if (y[i * ldy + j] != -7.0f) return 0;
    return 1;
}

static void ku_linear_case(int64_t M, int64_t K, int64_t N, zi_dtype dt, int strided, int with_bias) {
    int64_t ldx = strided ? K + 5 : K, ldy = strided ? N + 3 : N;
    float *x = ku_rand((size_t)(M * ldx), 1.0f), *wf;
    void *w = ku_weights(dt, N, K, K, &wf);
    float *bias = with_bias ? ku_rand((size_t)N, 0.5f) : NULL;
    float *y = malloc(sizeof(float) * (size_t)(M * ldy));
    for (int64_t i = 0; i < M * ldy; i++) y[i] = -7.0f;
    kn_mat W = {.dtype = dt, .rows = N, .cols = K, .data = w};
    if (strided)
        kn_linear_strided(y, ldy, x, ldx, M, &W, bias);
    else
        kn_linear(y, x, M, &W, bias);
    double err = ku_check_gemm(y, ldy, x, ldx, wf, K, bias, M, N, K);
    UNIT_CHECK(err <= 1e-6, "kn_linear%s M=%lld K=%lld N=%lld %s bias=%d: rel err %.3g", strided ? "_strided" : "",
               (long long)M, (long long)K, (long long)N, zi_dtype_name(dt), with_bias, err);
    UNIT_CHECK(ku_padding_intact(y, ldy, M, N), "kn_linear M=%lld K=%lld N=%lld wrote outside [M, N]",
               (long long)M, (long long)K, (long long)N);
    free(x), free(w), free(wf), free(bias), free(y);
}

static void ku_gemm_nt_case(int64_t M, int64_t N, int64_t K) {
    int64_t lda = K + 2, ldb = K + 7, ldc = N + 1;
    float *a = ku_rand((size_t)(M * lda), 1.0f), *b = ku_rand((size_t)(N * ldb), 1.0f);
    float *c = malloc(sizeof(float) * (size_t)(M * ldc));
    for (int64_t i = 0; i < M * ldc; i++) c[i] = -7.0f;
    kn_gemm_nt(c, ldc, a, lda, b, ldb, M, N, K);
    double err = ku_check_gemm(c, ldc, a, lda, b, ldb, NULL, M, N, K);
    UNIT_CHECK(err <= 1e-6, "kn_gemm_nt M=%lld N=%lld K=%lld: rel err %.3g", (long long)M, (long long)N,
               (long long)K, err);
    UNIT_CHECK(ku_padding_intact(c, ldc, M, N), "kn_gemm_nt M=%lld N=%lld K=%lld wrote outside [M, N]",
               (long long)M, (long long)N, (long long)K);
    free(a), free(b), free(c);
}

/* Same bits for 1 and 2 threads, and for one call vs. row-by-row calls of the GEMM path. */
static void ku_linear_determinism(void) {
    int64_t M = 45, K = 300, N = 70;
    float *x = ku_rand((size_t)(M * K), 1.0f), *wf;
    void *w = ku_weights(ZI_BF16, N, K, K, &wf);
    float *y1 = malloc(sizeof(float) * (size_t)(M * N)), *y2 = malloc(sizeof(float) * (size_t)(M * N));
    kn_mat W = {.dtype = ZI_BF16, .rows = N, .cols = K, .data = w};
    int saved = kn_get_threads();
    kn_set_threads(1);
    kn_linear(y1, x, M, &W, NULL);
    kn_set_threads(2);
    kn_linear(y2, x, M, &W, NULL);
    kn_set_threads(saved);
    UNIT_CHECK(memcmp(y1, y2, sizeof(float) * (size_t)(M * N)) == 0, "kn_linear differs between 1 and 2 threads");
    free(x), free(w), free(wf), free(y1), free(y2);
}

static float *ku_round_bf16_copy(const float *x, size_t n) {
    float *r = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) r[i] = zi_bf16_to_f32(zi_f32_to_bf16(x[i]));
    return r;
}

/* bf16 precision mode: the kernel must compute exactly sum bf16(x) bf16(w) in f32, i.e. match the
 * double reference on rounded inputs at the f32 tolerance. */
static void ku_linear_bf16_case(int64_t M, int64_t K, int64_t N, zi_dtype dt) {
    float *x = ku_rand((size_t)(M * K), 1.0f), *wf;
    void *w = ku_weights(dt, N, K, K, &wf);
    float *bias = ku_rand((size_t)N, 0.5f), *y = malloc(sizeof(float) * (size_t)(M * N));
    kn_mat W = {.dtype = dt, .rows = N, .cols = K, .data = w};
    kn_set_precision(KN_PREC_BF16);
    kn_linear(y, x, M, &W, bias);
    kn_set_precision(KN_PREC_F32);
    float *xr = ku_round_bf16_copy(x, (size_t)(M * K)), *wr = ku_round_bf16_copy(wf, (size_t)(N * K));
    double err = ku_check_gemm(y, N, xr, K, wr, K, bias, M, N, K);
    UNIT_CHECK(err <= 1e-6, "kn_linear bf16 mode M=%lld K=%lld N=%lld %s: rel err %.3g vs rounded-input reference",
               (long long)M, (long long)K, (long long)N, zi_dtype_name(dt), err);
    free(x), free(w), free(wf), free(bias), free(y), free(xr), free(wr);
}

/* The AMX kernel's template on emulated tiles (gemm_amx_emulated.c): packing, tiling and write-back
 * checked on any CPU against the rounded-input reference (the real tile instructions run the same
 * code on AMX machines, where the amx path's tests below cover them). */
typedef int (*ku_conv_fn)(float *, const float *, int64_t, int64_t, int64_t, int, int64_t, int64_t, const kn_wsrc *,
                          const float *, int);
typedef int (*ku_gemm_bf16_fn)(float *, int64_t, const float *, int64_t, int64_t, int64_t, int64_t, const kn_wsrc *,
                               const float *, int, int);
static void ku_amx_run_case(ku_gemm_bf16_fn fn, const char *what, int64_t M, int64_t K, int64_t N, zi_dtype dt,
                            int acc) {
    float *x = ku_rand((size_t)(M * K), 1.0f), *wf;
    void *w = ku_weights(dt, N, K, K, &wf);
    float *bias = ku_rand((size_t)N, 0.5f), *y0 = ku_rand((size_t)(M * N), 2.0f), *y = malloc(sizeof(float) * (size_t)(M * N));
    memcpy(y, y0, sizeof(float) * (size_t)(M * N));
    kn_mat W = {.dtype = dt, .rows = N, .cols = K, .data = w};
    kn_wsrc B = kn_wsrc_of_mat(&W);
    int rc = fn(y, N, x, K, M, N, K, &B, bias, acc, 2);
    float *xr = ku_round_bf16_copy(x, (size_t)(M * K)), *wr = ku_round_bf16_copy(wf, (size_t)(N * K));
    double worst = 0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double r = (double)bias[j] + (acc ? y0[i * N + j] : 0), a = fabs(r);
            for (int64_t e = 0; e < K; e++) {
                double p = (double)xr[i * K + e] * wr[j * K + e];
                r += p, a += fabs(p);
            }
            double err = fabs(y[i * N + j] - r) / (a + 1e-30);
            if (!(err <= worst)) worst = isnan(err) ? INFINITY : err;
        }
    UNIT_CHECK(rc == 0 && worst <= 1e-6, "AMX kernel (%s) M=%lld K=%lld N=%lld %s acc=%d: rc %d rel err %.3g", what,
               (long long)M, (long long)K, (long long)N, zi_dtype_name(dt), acc, rc, worst);
    free(x), free(w), free(wf), free(bias), free(y0), free(y), free(xr), free(wr);
}

/* the template on emulated tiles everywhere, and on the real tiles where the CPU has AMX */
static void ku_amx_emulated_case(int64_t M, int64_t K, int64_t N, zi_dtype dt, int acc) {
    ku_amx_run_case(kn_gemm_bf16_amxemu, "emulated tiles", M, K, N, dt, acc);
#if defined(__x86_64__)
    if (kn_isa_supported(KN_ISA_AMX, NULL)) ku_amx_run_case(kn_gemm_bf16_amx, "AMX tiles", M, K, N, dt, acc);
#endif
}

/* kn_conv_bf16, the AMX implicit-GEMM conv of a staged tile: y[r][n] = bias[n] + sum over ky, kx, c
 * of bf16(stage[r + ky*sw + kx][c]) * bf16(W[n][(ky*k + kx)*cin + c]), on emulated tiles everywhere
 * and on real ones where the CPU has AMX. */
static void ku_conv_amx_run(ku_conv_fn fn, const char *what, int64_t cin, int k, int64_t sw, int64_t nrows, int64_t mt,
                            int64_t N, zi_dtype dt) {
    int64_t npix = nrows * sw, K = (int64_t)k * k * cin;
    if (mt - 1 + (k - 1) * (sw + 1) >= npix) { /* a patch past the stage: a bad case, not a kernel error */
        UNIT_CHECK(0, "AMX conv case: %lld pixels need more than %lld staged", (long long)mt, (long long)npix);
        return;
    }
    float *st = ku_rand((size_t)(npix * cin), 1.0f), *wf, *bias = ku_rand((size_t)N, 0.5f);
    void *w = ku_weights(dt, N, K, K, &wf);
    float *y = malloc(sizeof(float) * (size_t)(mt * N));
    kn_mat W = {.dtype = dt, .rows = N, .cols = K, .data = w};
    kn_wsrc B = kn_wsrc_of_mat(&W);
    int rc = fn(y, st, npix, sw, cin, k, mt, N, &B, bias, 2);
    double worst = 0;
    for (int64_t r = 0; r < mt && rc == 0; r++)
        for (int64_t n = 0; n < N; n++) {
            double ref = bias[n], mag = fabs(bias[n]);
            for (int t = 0; t < k * k; t++)
                for (int64_t c = 0; c < cin; c++) {
                    double p = (double)zi_bf16_to_f32(zi_f32_to_bf16(st[(r + (t / k) * sw + t % k) * cin + c])) *
                               zi_bf16_to_f32(zi_f32_to_bf16(wf[n * K + t * cin + c]));
                    ref += p, mag += fabs(p);
                }
            double e = fabs(y[r * N + n] - ref) / (mag + 1e-30);
            if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
        }
    UNIT_CHECK(rc == 0 && worst <= 1e-6, "AMX conv (%s) cin %lld k %d sw %lld mt %lld N %lld %s: rc %d rel err %.3g",
               what, (long long)cin, k, (long long)sw, (long long)mt, (long long)N, zi_dtype_name(dt), rc, worst);
    rc = fn(y, st, npix, sw, 48, 1, 1, N, &B, bias, 1); /* cin not a multiple of 32: not taken */
    UNIT_CHECK(rc == 1, "AMX conv (%s): cin 48 must be refused with 1, got %d", what, rc);
    free(st), free(wf), free(bias), free(w), free(y);
}

static void ku_conv_amx_case(int64_t cin, int k, int64_t sw, int64_t nrows, int64_t mt, int64_t N, zi_dtype dt) {
    ku_conv_amx_run(kn_conv_bf16_amxemu, "emulated tiles", cin, k, sw, nrows, mt, N, dt);
#if defined(__x86_64__)
    if (kn_isa_supported(KN_ISA_AMX, NULL)) ku_conv_amx_run(kn_conv_bf16_amx, "AMX tiles", cin, k, sw, nrows, mt, N, dt);
#endif
}

static void unit_linear(void) {
    static const int64_t shapes[][3] = {
        {1, 1, 1},   {1, 17, 5},   {2, 33, 47},   {3, 64, 9},    {4, 300, 13}, {5, 31, 33},  {13, 257, 65},
        {14, 256, 32}, {15, 513, 63}, {29, 100, 97}, {37, 530, 70}, {338, 40, 45}, {16, 20, 2090}, {9, 3, 200},
    };
    const zi_dtype dts[3] = {ZI_F32, ZI_BF16, ZI_F16};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int d = 0; d < 3; d++)
            ku_linear_case(shapes[s][0], shapes[s][1], shapes[s][2], dts[d], (int)((s + d) % 2), (int)((s + d) % 3 != 0));
    ku_linear_case(7, 0, 5, ZI_F32, 0, 1);           /* K = 0: y = bias */
    ku_linear_case(400, 50001, 5, ZI_BF16, 1, 1);    /* packed x exceeds one row super-block */
    ku_gemm_nt_case(1, 7, 19);
    ku_gemm_nt_case(19, 45, 70);
    ku_gemm_nt_case(50, 3, 260);
    ku_linear_determinism();
    ku_linear_bf16_case(3, 300, 17, ZI_F32); /* GEMV path */
    ku_linear_bf16_case(37, 530, 70, ZI_F32);
    ku_linear_bf16_case(29, 100, 97, ZI_BF16);
    ku_linear_bf16_case(15, 513, 63, ZI_F16);
}

/* ---------------------------------------------------------------- small-M GEMM */

/* The small-M GEMM (gemm_smallm_impl.h) of the current path, called directly: y (+)= x . W^T (+ bias)
 * vs a double reference (on bf16-rounded inputs in bf16 mode; on the dequantized weights for block
 * types), strided x and y (padding untouched), acc on random y, and the same bits for 1 and 3
 * threads. For M <= 4 it must also equal the packed GEMM's GEMV path bit for bit (same chains). */
static void ku_smallm_case(int64_t M, int64_t K, int64_t N, zi_dtype dt, int strided, int with_bias, int acc, int bf16) {
    const kn_impl *im = kn_impl_get();
    int64_t ldx = strided ? K + 3 : K, ldy = strided ? N + 5 : N;
    float *x = ku_rand((size_t)(M * ldx), 1.0f), *wf = NULL;
    void *w;
    if (zi_dtype_is_block(dt)) {
        wf = ku_rand((size_t)(N * K), 1.0f);
        w = malloc(zi_dtype_row_bytes(dt, K) * (size_t)N);
        zi_quantize_rows(dt, wf, w, N, K, NULL);
        for (int64_t n = 0; n < N; n++) zi_dequantize(dt, (const char *)w + (size_t)n * zi_dtype_row_bytes(dt, K), wf + n * K, K);
    } else {
        w = ku_weights(dt, N, K, K, &wf);
    }
    float *bias = with_bias ? ku_rand((size_t)N, 0.5f) : NULL;
    float *y0 = ku_rand((size_t)(M * ldy), 2.0f), *y1 = malloc(sizeof(float) * (size_t)(M * ldy));
    float *y3 = malloc(sizeof(float) * (size_t)(M * ldy));
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = N; j < ldy; j++) y0[i * ldy + j] = -7.0f;
    memcpy(y1, y0, sizeof(float) * (size_t)(M * ldy));
    memcpy(y3, y0, sizeof(float) * (size_t)(M * ldy));
    kn_mat W = {.dtype = dt, .rows = N, .cols = K, .data = w};
    kn_wsrc B = kn_wsrc_of_mat(&W);
    int rc1 = im->gemm_smallm(y1, ldy, x, ldx, M, N, K, &B, bias, acc, bf16, 1);
    int rc3 = im->gemm_smallm(y3, ldy, x, ldx, M, N, K, &B, bias, acc, bf16, 3);
    const float *xr = x, *wr = wf;
    float *xb = NULL, *wb = NULL;
    if (bf16) xr = xb = ku_round_bf16_copy(x, (size_t)(M * ldx)), wr = wb = ku_round_bf16_copy(wf, (size_t)(N * K));
    double worst = 0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double r = (bias ? bias[j] : 0.0) + (acc ? y0[i * ldy + j] : 0.0), a = fabs(r);
            for (int64_t e = 0; e < K; e++) {
                double p = (double)xr[i * ldx + e] * wr[j * K + e];
                r += p, a += fabs(p);
            }
            double err = fabs(y1[i * ldy + j] - r) / (a + 1e-30);
            if (!(err <= worst)) worst = isnan(err) ? INFINITY : err;
        }
    UNIT_CHECK(rc1 == 0 && rc3 == 0 && worst <= 1e-6,
               "small-M GEMM M=%lld K=%lld N=%lld %s strided=%d bias=%d acc=%d bf16=%d: rc %d/%d rel err %.3g",
               (long long)M, (long long)K, (long long)N, zi_dtype_name(dt), strided, with_bias, acc, bf16, rc1, rc3, worst);
    UNIT_CHECK(memcmp(y1, y3, sizeof(float) * (size_t)(M * ldy)) == 0,
               "small-M GEMM M=%lld K=%lld N=%lld %s: 1 and 3 threads differ", (long long)M, (long long)K, (long long)N,
               zi_dtype_name(dt));
    UNIT_CHECK(ku_padding_intact(y1, ldy, M, N), "small-M GEMM M=%lld K=%lld N=%lld wrote outside [M, N]", (long long)M,
               (long long)K, (long long)N);
    if (M <= 4) { /* the packed GEMM's GEMV path: the same lane chains */
        float *yg = malloc(sizeof(float) * (size_t)(M * ldy));
        memcpy(yg, y0, sizeof(float) * (size_t)(M * ldy));
        int rcg = im->gemm(yg, ldy, x, ldx, M, N, K, &B, bias, acc, bf16, 2);
        UNIT_CHECK(rcg == 0 && memcmp(y1, yg, sizeof(float) * (size_t)(M * ldy)) == 0,
                   "small-M GEMM M=%lld K=%lld N=%lld %s bf16=%d: differs from the GEMV path", (long long)M, (long long)K,
                   (long long)N, zi_dtype_name(dt), bf16);
        free(yg);
    }
    free(x), free(w), free(wf), free(bias), free(y0), free(y1), free(y3), free(xb), free(wb);
}

static void unit_smallm(void) {
    static const int64_t ms[] = {1, 2, 3, 5, 6, 7, 8, 13, 20, 21, 32, 33}; /* crossover 20: dispatch.c */
    static const int64_t kn[][2] = {{300, 45}, {37, 17}, {513, 70}, {5, 3}};
    const zi_dtype dts[3] = {ZI_F32, ZI_BF16, ZI_F16};
    int c = 0;
    for (size_t m = 0; m < sizeof ms / sizeof ms[0]; m++)
        for (size_t s = 0; s < sizeof kn / sizeof kn[0]; s++, c++)
            ku_smallm_case(ms[m], kn[s][0], kn[s][1], dts[c % 3], c % 2, c % 3 != 1, c % 4 == 3, c % 5 == 2);
    for (int d = 0; d < 3; d++)
        for (int bf16 = 0; bf16 < 2; bf16++) ku_smallm_case(20, 529, 33, dts[d], 1, 1, 0, bf16);
    ku_smallm_case(4, 544, 37, ZI_Q8_0, 1, 1, 1, 0); /* quantized: chunks through kn_wsrc_to_f32 */
    ku_smallm_case(20, 544, 37, ZI_Q8_0, 0, 1, 0, 1);
    ku_smallm_case(9, 512, 21, ZI_Q4_K, 1, 0, 0, 0);
    ku_smallm_case(7, 0, 5, ZI_F32, 0, 1, 1, 0); /* K = 0: y (+)= bias */
}

/* ---------------------------------------------------------------- attention */

/* Naive reference in double: softmax over visible keys of scale * q.k, times v. */
static void ku_attention_ref(double *ref, const float *q, int64_t ldq, const float *k, int64_t ldk, const float *v,
                             int64_t ldv, int64_t Lq, int64_t Lk, int H, int Hkv, int hd, float scale, int causal) {
    double *s = malloc(sizeof(double) * (size_t)Lk);
    for (int h = 0; h < H; h++) {
        int g = h / (H / Hkv);
        for (int64_t i = 0; i < Lq; i++) {
            int64_t n = causal ? (i + 1 < Lk ? i + 1 : Lk) : Lk;
            double mx = -INFINITY, sum = 0;
            for (int64_t j = 0; j < n; j++) {
                double d = 0;
                for (int e = 0; e < hd; e++) d += (double)q[i * ldq + h * hd + e] * k[j * ldk + g * hd + e];
                s[j] = d * scale;
                if (s[j] > mx) mx = s[j];
            }
            for (int64_t j = 0; j < n; j++) sum += s[j] = exp(s[j] - mx);
            for (int e = 0; e < hd; e++) {
                double o = 0;
                for (int64_t j = 0; j < n; j++) o += s[j] * v[j * ldv + g * hd + e];
                ref[(i * H + h) * hd + e] = n ? o / sum : 0;
            }
        }
    }
    free(s);
}

static void ku_attention_case(int64_t Lq, int64_t Lk, int H, int Hkv, int hd, int causal, int pad, float qscale) {
    int64_t ldq = (int64_t)H * hd + pad, ldk = (int64_t)Hkv * hd + 2 * pad, ldv = (int64_t)Hkv * hd + 3 * pad;
    int64_t ldo = (int64_t)H * hd + pad;
    float *q = ku_rand((size_t)(Lq * ldq), qscale), *k = ku_rand((size_t)(Lk * ldk), 1.0f);
    float *v = ku_rand((size_t)(Lk * ldv), 1.0f), *o = malloc(sizeof(float) * (size_t)(Lq * ldo));
    double *ref = malloc(sizeof(double) * (size_t)(Lq * H * hd));
    for (int64_t i = 0; i < Lq * ldo; i++) o[i] = -7.0f;
    float scale = 1.0f / sqrtf((float)hd);
    kn_attention(o, ldo, q, ldq, k, ldk, v, ldv, Lq, Lk, H, Hkv, hd, scale, causal);
    ku_attention_ref(ref, q, ldq, k, ldk, v, ldv, Lq, Lk, H, Hkv, hd, scale, causal);
    double worst = 0;
    int pad_ok = 1;
    for (int64_t i = 0; i < Lq; i++) {
        for (int64_t c = 0; c < (int64_t)H * hd; c++) {
            double err = fabs(o[i * ldo + c] - ref[i * H * hd + c]);
            if (!(err <= worst)) worst = isnan(err) ? INFINITY : err;
        }
        for (int64_t c = (int64_t)H * hd; c < ldo; c++) pad_ok &= o[i * ldo + c] == -7.0f;
    }
    UNIT_CHECK(worst <= 2e-6, "kn_attention Lq=%lld Lk=%lld H=%d Hkv=%d hd=%d causal=%d: max abs err %.3g",
               (long long)Lq, (long long)Lk, H, Hkv, hd, causal, worst);
    UNIT_CHECK(pad_ok, "kn_attention Lq=%lld hd=%d wrote outside the heads", (long long)Lq, hd);
    free(q), free(k), free(v), free(o), free(ref);
}

/* bf16 precision mode: Q, K, V rounded (exact in the reference), and P rounded to bf16 before
 * P.V while the softmax sum stays f32. Each p_j then carries a relative error <= 2^-9, so the
 * output sum_j p_j v_j / sum_j p_j moves by at most 2^-9 max|v| = 2^-9 (v in [-1, 1]), plus the
 * f32 error (2e-6): that is the bound checked, derived, not fitted. */
typedef int (*ku_attention_bf16_fn)(float *out, int64_t ldo, const float *q, int64_t ldq, const float *k,
                                    int64_t ldk, const float *v, int64_t ldv, int64_t Lq, int64_t Lk, int n_heads,
                                    int n_kv_heads, int hd, float scale, int causal, int T);

/* fn NULL: kn_attention in bf16 mode on the current path; else that kernel directly (2 threads). */
static void ku_attention_bf16_run(ku_attention_bf16_fn fn, const char *what, int64_t Lq, int64_t Lk, int H, int Hkv,
                                  int hd, int causal, int pad) {
    int64_t ldq = (int64_t)H * hd + pad, ldk = (int64_t)Hkv * hd + 2 * pad, ldv = (int64_t)Hkv * hd + 3 * pad;
    int64_t ldo = (int64_t)H * hd + pad;
    float *q = ku_rand((size_t)(Lq * ldq), 2.0f), *k = ku_rand((size_t)(Lk * ldk), 1.0f);
    float *v = ku_rand((size_t)(Lk * ldv), 1.0f), *o = malloc(sizeof(float) * (size_t)(Lq * ldo));
    double *ref = malloc(sizeof(double) * (size_t)(Lq * H * hd));
    for (int64_t i = 0; i < Lq * ldo; i++) o[i] = -7.0f;
    float scale = 1.0f / sqrtf((float)hd);
    int rc;
    if (fn) {
        rc = fn(o, ldo, q, ldq, k, ldk, v, ldv, Lq, Lk, H, Hkv, hd, scale, causal, 2);
    } else {
        kn_set_precision(KN_PREC_BF16);
        rc = kn_attention(o, ldo, q, ldq, k, ldk, v, ldv, Lq, Lk, H, Hkv, hd, scale, causal);
        kn_set_precision(KN_PREC_F32);
    }
    UNIT_CHECK(rc == 0, "%s: returned %d", what, rc);
    float *qr = ku_round_bf16_copy(q, (size_t)(Lq * ldq)), *kr = ku_round_bf16_copy(k, (size_t)(Lk * ldk));
    float *vr = ku_round_bf16_copy(v, (size_t)(Lk * ldv));
    ku_attention_ref(ref, qr, ldq, kr, ldk, vr, ldv, Lq, Lk, H, Hkv, hd, scale, causal);
    double worst = 0;
    int pad_ok = 1;
    for (int64_t i = 0; i < Lq; i++) {
        for (int64_t c = 0; c < (int64_t)H * hd; c++) {
            double err = fabs(o[i * ldo + c] - ref[i * H * hd + c]);
            if (!(err <= worst)) worst = isnan(err) ? INFINITY : err;
        }
        for (int64_t c = (int64_t)H * hd; c < ldo; c++) pad_ok &= o[i * ldo + c] == -7.0f;
    }
    UNIT_CHECK(worst <= 1.0 / 512 + 2e-6, "%s Lq=%lld Lk=%lld H=%d Hkv=%d hd=%d causal=%d: max abs err %.3g", what,
               (long long)Lq, (long long)Lk, H, Hkv, hd, causal, worst);
    UNIT_CHECK(pad_ok, "%s Lq=%lld hd=%d wrote outside the heads", what, (long long)Lq, hd);
    free(q), free(k), free(v), free(o), free(ref), free(qr), free(kr), free(vr);
}

static void ku_attention_bf16_case(int64_t Lq, int64_t Lk, int H, int Hkv, int hd, int causal, int pad) {
    ku_attention_bf16_run(NULL, "kn_attention bf16 mode", Lq, Lk, H, Hkv, hd, causal, pad);
}

/* The AMX attention on emulated tiles (any CPU): same cases, same bound. */
static void unit_attention_amx_emulated(void) {
    static const int c[][7] = {{150, 150, 2, 2, 128, 0, 0}, {70, 70, 3, 3, 40, 1, 0},  {300, 300, 4, 1, 32, 1, 1},
                               {19, 19, 2, 2, 5, 0, 2},     {7, 301, 3, 3, 40, 0, 0},  {130, 129, 6, 2, 48, 1, 3},
                               {1, 1, 1, 1, 1, 1, 0},       {33, 65, 1, 1, 512, 0, 0}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        ku_attention_bf16_run(kn_attention_bf16_amxemu, "AMX attention (emulated tiles)", c[i][0], c[i][1], c[i][2],
                              c[i][3], c[i][4], c[i][5], c[i][6]);
}

static void unit_attention(void) {
    /* bf16 mode: on avx512bf16 and c it runs attention_bf16_impl.h (vdpbf16ps / its emulation),
     * elsewhere the fp32 template with rounded inputs; same bound for both */
    ku_attention_bf16_case(150, 150, 2, 2, 128, 0, 0); /* DiT head size, 2 key tiles */
    ku_attention_bf16_case(70, 70, 3, 3, 40, 1, 0);
    ku_attention_bf16_case(300, 300, 4, 1, 32, 1, 1);  /* causal, GQA, several tiles and query blocks */
    ku_attention_bf16_case(19, 19, 2, 2, 5, 0, 2);     /* odd head size */
    ku_attention_bf16_case(7, 301, 3, 3, 40, 0, 0);    /* Lq != Lk, odd key count */
    ku_attention_bf16_case(130, 129, 6, 2, 48, 1, 3);  /* causal, GQA, Lq > Lk, odd keys */
    ku_attention_bf16_case(1, 1, 1, 1, 1, 1, 0);
    ku_attention_case(37, 37, 3, 3, 24, 0, 0, 1.0f);
    ku_attention_case(45, 45, 4, 2, 16, 1, 3, 1.0f);    /* GQA, causal */
    ku_attention_case(150, 150, 2, 2, 128, 0, 0, 3.0f); /* DiT head size, 2 key tiles */
    ku_attention_case(300, 300, 4, 1, 32, 1, 1, 2.0f);  /* causal across several tiles and query blocks */
    ku_attention_case(70, 70, 1, 1, 512, 0, 0, 1.0f);   /* VAE: one head of 512 */
    ku_attention_case(19, 19, 2, 2, 5, 0, 2, 1.0f);     /* odd head size */
    ku_attention_case(7, 300, 3, 3, 40, 0, 0, 4.0f);    /* Lq != Lk */
    ku_attention_case(130, 129, 6, 2, 48, 1, 0, 1.0f);  /* causal, GQA, Lq > Lk */
    ku_attention_case(1, 1, 1, 1, 1, 1, 0, 1.0f);
}

/* ---------------------------------------------------------------- elementwise / norms / rope */

static void unit_elementwise(void) {
    int64_t n = 70001;
    float *x = ku_rand((size_t)n, 30.0f), *u = ku_rand((size_t)n, 2.0f);
    x[0] = -120.0f, x[1] = 120.0f, x[2] = 0.0f, x[3] = -88.5f, x[4] = 1e-8f;
    float *a = malloc(sizeof(float) * (size_t)n), *b = malloc(sizeof(float) * (size_t)n);
    memcpy(a, x, sizeof(float) * (size_t)n);
    memcpy(b, x, sizeof(float) * (size_t)n);
    kn_silu(a, n);
    kn_swiglu(b, u, n);
    double ws = 0, wg = 0;
    for (int64_t i = 0; i < n; i++) {
        double s = (double)x[i] / (1.0 + exp(-(double)x[i]));
        double es = fabs(a[i] - s) / (fabs(s) + 1e-30), eg = fabs(b[i] - s * u[i]) / (fabs(s * u[i]) + 1e-30);
        if (s == 0) es = fabs(a[i]), eg = fabs(b[i]);
        if (!(es <= ws)) ws = isnan(es) ? INFINITY : es;
        if (!(eg <= wg)) wg = isnan(eg) ? INFINITY : eg;
    }
    UNIT_CHECK(ws <= 1e-6, "kn_silu: max rel err %.3g", ws);
    UNIT_CHECK(wg <= 1e-6, "kn_swiglu: max rel err %.3g", wg);
    free(x), free(u), free(a), free(b);
}

static void unit_norms(void) {
    int64_t M = 33, D = 3841 - 1024;
    float *x = ku_rand((size_t)(M * D), 3.0f), *g = ku_rand((size_t)D, 1.0f);
    float *y = malloc(sizeof(float) * (size_t)(M * D)), *z = malloc(sizeof(float) * (size_t)(M * D));
    kn_rmsnorm(y, x, M, D, g, 1e-5f);
    kn_layernorm(z, x, M, D, 1e-6f);
    double wr = 0, wl = 0;
    for (int64_t i = 0; i < M; i++) {
        double ss = 0, s = 0, vv = 0;
        for (int64_t j = 0; j < D; j++) ss += (double)x[i * D + j] * x[i * D + j], s += x[i * D + j];
        double mean = s / D;
        for (int64_t j = 0; j < D; j++) vv += (x[i * D + j] - mean) * (x[i * D + j] - mean);
        double r = 1.0 / sqrt(ss / D + 1e-5), rl = 1.0 / sqrt(vv / D + 1e-6);
        for (int64_t j = 0; j < D; j++) {
            double er = fabs(y[i * D + j] - x[i * D + j] * r * g[j]), el = fabs(z[i * D + j] - (x[i * D + j] - mean) * rl);
            if (!(er <= wr)) wr = isnan(er) ? INFINITY : er;
            if (!(el <= wl)) wl = isnan(el) ? INFINITY : el;
        }
    }
    UNIT_CHECK(wr <= 2e-6, "kn_rmsnorm: max abs err %.3g", wr);
    UNIT_CHECK(wl <= 2e-6, "kn_layernorm: max abs err %.3g", wl);
    free(x), free(g), free(y), free(z);
}

static void unit_rope(void) {
    int64_t L = 9, ld = 3 * 8 + 4;
    int H = 3, hd = 8, half = 4;
    float *x = ku_rand((size_t)(L * ld), 1.0f), *a = malloc(sizeof(float) * (size_t)(L * ld));
    float *b = malloc(sizeof(float) * (size_t)(L * ld));
    float *c = malloc(sizeof(float) * (size_t)(L * half)), *s = malloc(sizeof(float) * (size_t)(L * half));
    for (int64_t i = 0; i < L * half; i++) c[i] = cosf(0.3f * (float)i), s[i] = sinf(0.3f * (float)i);
    memcpy(a, x, sizeof(float) * (size_t)(L * ld));
    memcpy(b, x, sizeof(float) * (size_t)(L * ld));
    kn_rope_interleaved(a, L, H, hd, ld, c, s);
    kn_rope_halfsplit(b, L, H, hd, ld, c, s);
    double wi = 0, wh = 0;
    int pad_ok = 1;
    for (int64_t i = 0; i < L; i++) {
        for (int h = 0; h < H; h++)
            for (int p = 0; p < half; p++) {
                const float *v = x + i * ld + h * hd;
                double cc = c[i * half + p], ss = s[i * half + p];
                double i0 = v[2 * p] * cc - v[2 * p + 1] * ss, i1 = v[2 * p] * ss + v[2 * p + 1] * cc;
                double h0 = v[p] * cc - v[p + half] * ss, h1 = v[p + half] * cc + v[p] * ss;
                const float *ai = a + i * ld + h * hd, *bi = b + i * ld + h * hd;
                wi = fmax(wi, fmax(fabs(ai[2 * p] - i0), fabs(ai[2 * p + 1] - i1)));
                wh = fmax(wh, fmax(fabs(bi[p] - h0), fabs(bi[p + half] - h1)));
            }
        for (int64_t j = (int64_t)H * hd; j < ld; j++) pad_ok &= a[i * ld + j] == x[i * ld + j] && b[i * ld + j] == x[i * ld + j];
    }
    UNIT_CHECK(wi <= 1e-6, "kn_rope_interleaved: max abs err %.3g", wi);
    UNIT_CHECK(wh <= 1e-6, "kn_rope_halfsplit: max abs err %.3g", wh);
    UNIT_CHECK(pad_ok, "rope touched columns past the heads");
    free(x), free(a), free(b), free(c), free(s);
}

/* Implicit GEMM over the patches of a staged input [rows, sw, cin] vs the explicit patch
 * matrix and a double reference, for each weight dtype, plain (acc 0) and accumulating (acc 1). */
static void ku_patches_case(int64_t cin, int kw, int s, int64_t Wo, int64_t nrow, int64_t N, zi_dtype dt, int acc) {
    int64_t sw = (Wo - 1) * s + kw, rows = (nrow - 1) * s + kw, K = (int64_t)kw * kw * cin, M = nrow * Wo;
    float *x = ku_rand((size_t)(rows * sw * cin), 1.0f), *wf, *bias = ku_rand((size_t)N, 1.0f);
    void *w = ku_weights(dt, N, K, K, &wf);
    float *patch = malloc(sizeof(float) * (size_t)(M * K));
    for (int64_t i = 0; i < M; i++) /* patch[i, (ky*kw + kx)*cin + c] = x[oy*s + ky, ox*s + kx, c] */
        for (int64_t t = 0; t < (int64_t)kw * kw; t++)
            memcpy(patch + i * K + t * cin, x + (((i / Wo) * s + t / kw) * sw + (i % Wo) * s + t % kw) * cin,
                   sizeof(float) * (size_t)cin);
    float *y0 = ku_rand((size_t)(M * N), 4.0f), *y = malloc(sizeof(float) * (size_t)(M * N));
    memcpy(y, y0, sizeof(float) * (size_t)(M * N));
    kn_mat W = {.dtype = dt, .rows = N, .cols = K, .data = w};
    const kn_impl *im = kn_impl_get();
    kn_wsrc B = kn_wsrc_of_mat(&W);
    size_t nbp = im->packw_floats(N, K);
    float *bp = aligned_alloc(64, (nbp * sizeof(float) + 63) / 64 * 64);
    im->packw(bp, &B, N, K, (int64_t)kw * cin, kn_get_threads());
    kn_patch_src A = {x, sw, cin, Wo, kw, s};
    int rc = im->gemm_patches(y, &A, M, N, K, bp, bias, acc, kn_get_threads());
    UNIT_CHECK(rc == 0, "gemm_patches failed: %s", zi_last_error());
    double worst = 0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double r = (double)bias[j] + (acc ? y0[i * N + j] : 0), a = fabs(r);
            for (int64_t e = 0; e < K; e++) {
                double p = (double)patch[i * K + e] * wf[j * K + e];
                r += p, a += fabs(p);
            }
            double err = fabs(y[i * N + j] - r) / (a + 1e-30);
            if (!(err <= worst)) worst = isnan(err) ? INFINITY : err;
        }
    UNIT_CHECK(worst <= 1e-6, "kn_gemm_patches cin=%lld k=%d s=%d Wo=%lld rows=%lld N=%lld dt=%d acc=%d: rel err %.3g",
               (long long)cin, kw, s, (long long)Wo, (long long)nrow, (long long)N, (int)dt, acc, worst);
    free(x), free(wf), free(bias), free(w), free(patch), free(y0), free(y), free(bp);
}

static void unit_patches(void) {
    ku_patches_case(5, 3, 1, 9, 4, 7, ZI_F32, 0);       /* runs not 16-aligned, all panels wrap */
    ku_patches_case(100, 3, 1, 31, 5, 45, ZI_BF16, 1);  /* 2 K blocks per run, in-place panels */
    ku_patches_case(96, 3, 2, 20, 3, 70, ZI_F16, 0);    /* stride 2 */
    ku_patches_case(16, 3, 1, 15, 30, 33, ZI_F32, 1);   /* 450 rows: two 336-row items */
    ku_patches_case(300, 1, 1, 341, 1, 40, ZI_BF16, 0); /* 1x1: one row of pixels */
}

void unit_kernels(void) {
    ku_amx_emulated_case(37, 530, 70, ZI_BF16, 0);
    ku_amx_emulated_case(64, 64, 32, ZI_F32, 1);
    ku_amx_emulated_case(5, 31, 33, ZI_F16, 0);
    ku_amx_emulated_case(300, 257, 45, ZI_BF16, 1); /* several 32-row blocks, K tail */
    /* the W-direct form (bf16 W, K and N multiples of 32, row stride not a multiple of 4 KiB) */
    ku_amx_emulated_case(37, 256, 64, ZI_BF16, 0);
    ku_amx_emulated_case(70, 1088, 96, ZI_BF16, 1); /* 5 K blocks, the last 64 deep; 3 W blocks */
    ku_amx_emulated_case(600, 64, 32, ZI_BF16, 1);  /* 2 row ranges (512 rows per item), 600 % 16 = 8 */
    ku_amx_emulated_case(16, 96, 288, ZI_BF16, 0);  /* 2 W-row items (256 + 32) */
    ku_amx_emulated_case(33, 2048, 64, ZI_BF16, 1); /* row stride 4 KiB: W blocks copied first */
    ku_amx_emulated_case(9, 64, 32, ZI_F16, 0);     /* not bf16: the packed form */
    ku_amx_emulated_case(45, 320, 64, ZI_Q8_0, 1);  /* Q8_0: W blocks dequantized to bf16 rows (2 K blocks) */
    ku_amx_emulated_case(40, 96, 40, ZI_Q8_0, 0);   /* N % 32 != 0: the packed form */
    ku_amx_emulated_case(45, 512, 64, ZI_Q4_K, 1);  /* Q4_K: W blocks dequantized to bf16 rows */
    ku_amx_emulated_case(20, 256, 32, ZI_Q4_K, 0);
    ku_amx_emulated_case(20, 288, 32, ZI_Q5_0, 0);  /* other block types: the packed form */
    /* mt = (rows - k) sw + sw - k + 1 output pixels, as conv.c stages them */
    ku_conv_amx_case(32, 3, 12, 5, 2 * 12 + 10, 32, ZI_BF16);   /* 34 pixels: a partial 32-row block */
    ku_conv_amx_case(64, 3, 9, 4, 1 * 9 + 7, 64, ZI_F32);       /* f32 weights: converted blocks */
    ku_conv_amx_case(96, 1, 40, 1, 40, 96, ZI_BF16);            /* 1x1, K = 96: a 3-chunk K block */
    ku_conv_amx_case(32, 3, 30, 22, 19 * 30 + 28, 32, ZI_BF16); /* 598 pixels: 2 row ranges */
    unit_attention_amx_emulated();
    kn_isa saved = kn_get_isa();
    for (int i = 0; i < KN_ISA_COUNT; i++) {
        const char *why;
        if (!kn_isa_supported((kn_isa)i, &why)) {
            printf("  SKIP kernels path %s: %s\n", kn_isa_name((kn_isa)i), why);
            continue;
        }
        kn_set_isa((kn_isa)i);
        int before = unit_failures;
        unit_patches();
        unit_linear();
        unit_smallm();
        unit_attention();
        unit_elementwise();
        unit_norms();
        unit_rope();
        printf("  kernels path %s (%s kernels): %s\n", kn_isa_name((kn_isa)i), kn_kernel_name(),
               unit_failures == before ? "ok" : "FAILED");
    }
    kn_set_isa(saved);
}
