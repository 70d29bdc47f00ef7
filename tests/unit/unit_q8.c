/* unit_q8.c - the int8-activation GEMM (src/kernels/gemm_q8*.c, the int8 precision mode) vs a
 * double-precision reference built from the same quantized activations and weights, on every
 * instance this CPU runs (generic = the VNNI template on an emulated vpdpbusd, avx2, avx2u,
 * avx2s, avx512vnni, amx = TDPBSSD tiles; a SKIP line names the others and why) and on the
 * AMX-INT8 template on emulated tiles (amxemu, every CPU), plus the dispatch through kn_linear.
 *
 * The bound (docs/PRECISION.md, "int8 mode"): with exact int32 block sums, the only error is f32
 * rounding of the scale-and-accumulate sequence of gemm_q8.h. Every term passes through at most
 * n = 2 * K/B + (K blocks) + 3 roundings (B: the weight block, 32, or 16 for Q6_K, Q3_K, Q2_K),
 * so |y - ref| <= gamma_n * S, gamma_n = n u / (1 - n u), u = 2^-24, S = sum over weight blocks
 * of |dx dw isum| + |mw dx sum(qx)| + |bias| + |y0|. All instances must also agree bit for bit
 * (same float sequence) and not depend on the thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/common/error.h"
#include "../../src/common/quant.h"
#include "../../src/kernels/gemm_q8.h"
#include "../../src/kernels/kernels.h"
#include "unit.h"

static uint64_t kq_rng = 0x9E3779B97F4A7C15ull;
static float kq_uniform(void) { /* [-1, 1) */
    kq_rng ^= kq_rng << 13;
    kq_rng ^= kq_rng >> 7;
    kq_rng ^= kq_rng << 17;
    return (float)((kq_rng >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

/* x [M, ldx]: uniform, one row of zeros, a row with a 1e3 outlier per block, a 1e-30-scale row */
static float *kq_acts(int64_t M, int64_t K, int64_t ldx) {
    float *x = malloc(sizeof(float) * (size_t)(M * ldx));
    for (int64_t i = 0; i < M * ldx; i++) x[i] = kq_uniform();
    if (M > 3) {
        memset(x + 1 * ldx, 0, sizeof(float) * (size_t)K);
        for (int64_t k = 0; k < K; k += 32) x[2 * ldx + k + 5] = 1000.0f;
        for (int64_t k = 0; k < K; k++) x[3 * ldx + k] *= 1e-30f;
    }
    return x;
}

/* W [N, K] of type dt: quantized from uniform values (a shifted copy for offset types) */
static void *kq_weights(zi_dtype dt, int64_t N, int64_t K) {
    float *wf = malloc(sizeof(float) * (size_t)(N * K));
    for (int64_t i = 0; i < N * K; i++) wf[i] = 0.1f * kq_uniform() + (i / K % 3 == 1 ? 0.05f : 0.0f);
    size_t rb = zi_dtype_row_bytes(dt, K);
    char *w = malloc(rb * (size_t)N);
    for (int64_t r = 0; r < N; r++) zi_quantize(dt, wf + r * K, w + r * rb, K);
    free(wf);
    return w;
}

/* The reference: y0 (acc) + bias + sum over weight blocks of dx*q . (dw*qw - mw), exact in double
 * up to one rounding per product; *bound: the gamma_n * S of the header. */
static void kq_reference(const float *x, int64_t ldx, int64_t M, int64_t K, const void *w, zi_dtype dt, int64_t N,
                         const float *bias, const float *y0, int64_t ldy, double *ref, double *bound) {
    int wl = 32 / KN_Q8_HALVES(kn_q8_kind(dt)); /* weight block: 32 or 16 */
    int64_t nb = K / 32, nw = K / wl, nkb = (K + 255) / 256;
    int n = (int)(2 * nw + nkb + 3);
    double u = ldexp(1.0, -24), gam = n * u / (1 - n * u);
    int8_t *qx = malloc((size_t)K), *qw = malloc((size_t)K);
    float *dx = malloc(sizeof(float) * (size_t)nb), *sx = malloc(sizeof(float) * (size_t)nb);
    float *dw = malloc(sizeof(float) * (size_t)nw), *mw = malloc(sizeof(float) * (size_t)nw);
    size_t rb = zi_dtype_row_bytes(dt, K);
    for (int64_t i = 0; i < M; i++) {
        for (int64_t b = 0; b < nb; b++) kn_q8_quant_block(x + i * ldx + 32 * b, qx + 32 * b, &dx[b], &sx[b]);
        for (int64_t j = 0; j < N; j++) {
            kn_q8_unpack(dt, (const char *)w + j * rb, K, qw, dw, mw);
            double b0 = bias ? bias[j] : 0.0, a0 = y0 ? y0[i * ldy + j] : 0.0;
            double r = b0 + a0;
            double s = fabs(b0) + fabs(a0); /* the header's S: |bias| + |y0| apart (they may cancel in r) */
            for (int64_t b = 0; b < nw; b++) { /* weight block b, in activation block b * wl / 32 */
                long isum = 0, qsum = 0;
                double d = dx[b * wl / 32];
                for (int k = 0; k < wl; k++) isum += (long)qx[wl * b + k] * qw[wl * b + k], qsum += qx[wl * b + k];
                double t1 = d * dw[b] * (double)isum, t2 = (double)mw[b] * d * (double)qsum;
                r += t1 - t2;
                s += fabs(t1) + fabs(t2);
            }
            ref[i * N + j] = r;
            bound[i * N + j] = gam * s;
        }
    }
    free(qx), free(qw), free(dx), free(sx), free(dw), free(mw);
}

typedef int (*kq_fn)(float *, int64_t, const float *, int64_t, int64_t, int64_t, int64_t, const kn_wsrc *,
                     const float *, int, int);

/* one instance on one shape: vs the reference, and vs `want` (bitwise) when given; returns y */
static float *kq_run(kq_fn fn, const char *name, int64_t M, int64_t K, int64_t N, zi_dtype dt, int acc, int T,
                     const float *want) {
    int64_t ldx = K + 3, ldy = N + 5;
    uint64_t seed = kq_rng;
    float *x = kq_acts(M, K, ldx);
    void *w = kq_weights(dt, N, K);
    float *bias = malloc(sizeof(float) * (size_t)N), *y0 = malloc(sizeof(float) * (size_t)(M * ldy));
    float *y = malloc(sizeof(float) * (size_t)(M * ldy));
    for (int64_t j = 0; j < N; j++) bias[j] = kq_uniform();
    for (int64_t i = 0; i < M * ldy; i++) y0[i] = kq_uniform();
    memcpy(y, y0, sizeof(float) * (size_t)(M * ldy));
    kn_mat W = {.dtype = dt, .rows = N, .cols = K, .data = w};
    kn_wsrc B = kn_wsrc_of_mat(&W);
    int rc = fn(y, ldy, x, ldx, M, N, K, &B, bias, acc, T);
    double *ref = malloc(sizeof(double) * (size_t)(M * N)), *bnd = malloc(sizeof(double) * (size_t)(M * N));
    kq_reference(x, ldx, M, K, w, dt, N, bias, acc ? y0 : NULL, ldy, ref, bnd);
    double worst = 0; /* error / bound */
    int pad_ok = 1, same = 1;
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            double e = fabs(y[i * ldy + j] - ref[i * N + j]) / (bnd[i * N + j] + 1e-300);
            if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
            if (want && memcmp(&y[i * ldy + j], &want[i * N + j], 4)) same = 0;
        }
        for (int64_t j = N; j < ldy; j++) pad_ok &= y[i * ldy + j] == y0[i * ldy + j];
    }
    UNIT_CHECK(rc == 0 && worst <= 1.0, "int8 GEMM %s M=%lld K=%lld N=%lld %s acc=%d T=%d: rc %d, error %.3g x the bound",
               name, (long long)M, (long long)K, (long long)N, zi_dtype_name(dt), acc, T, rc, worst);
    UNIT_CHECK(pad_ok, "int8 GEMM %s M=%lld N=%lld wrote outside [M, N]", name, (long long)M, (long long)N);
    if (want)
        UNIT_CHECK(same, "int8 GEMM %s M=%lld K=%lld N=%lld %s acc=%d T=%d: not bit-identical to the generic instance",
                   name, (long long)M, (long long)K, (long long)N, zi_dtype_name(dt), acc, T);
    float *out = malloc(sizeof(float) * (size_t)(M * N));
    for (int64_t i = 0; i < M; i++) memcpy(out + i * N, y + i * ldy, sizeof(float) * (size_t)N);
    free(x), free(w), free(bias), free(y0), free(y), free(ref), free(bnd);
    kq_rng = seed; /* the next run on this case sees the same operands */
    return out;
}

/* the activation quantizer: q in [-127, 127], d = max|x| / 127, |x - d q| <= d / 2 (+ rounding) */
static void kq_quant_checks(void) {
    float x[32], d, sx;
    int8_t q[32];
    int ok = 1;
    for (int t = 0; t < 200; t++) {
        float sc = ldexpf(1.0f, t % 60 - 30);
        for (int k = 0; k < 32; k++) x[k] = kq_uniform() * sc;
        kn_q8_quant_block(x, q, &d, &sx);
        float amax = 0;
        int sum = 0;
        for (int k = 0; k < 32; k++) amax = fabsf(x[k]) > amax ? fabsf(x[k]) : amax, sum += q[k];
        ok &= d == amax / 127.0f && sx == d * (float)sum;
        for (int k = 0; k < 32; k++) ok &= q[k] != -128 && fabs(x[k] - (double)d * q[k]) <= d * (0.5 + 1e-6);
    }
    UNIT_CHECK(ok, "kn_q8_quant_block: q out of range or |x - d q| > d/2");
    x[7] = NAN;
    kn_q8_quant_block(x, q, &d, &sx);
    UNIT_CHECK(isnan(d) && q[0] == 0, "kn_q8_quant_block: NaN input does not give d = NaN, q = 0");
}

/* kn_q8_unpack vs zi_dequantize (ggml's float expression d*q - m, two roundings; the signed
 * types without offset, Q8_0, Q6_K and Q3_K, exactly) */
static void kq_unpack_checks(zi_dtype dt) {
    int64_t K = 512;
    int wl = 32 / KN_Q8_HALVES(kn_q8_kind(dt)), exact = !KN_Q8_OFFSET(kn_q8_kind(dt));
    void *w = kq_weights(dt, 3, K);
    float *deq = malloc(sizeof(float) * (size_t)K), d[32], m[32];
    int8_t q[512];
    size_t rb = zi_dtype_row_bytes(dt, K);
    int ok = 1;
    for (int r = 0; r < 3; r++) {
        zi_dequantize(dt, (const char *)w + r * rb, deq, K);
        kn_q8_unpack(dt, (const char *)w + r * rb, K, q, d, m);
        for (int64_t k = 0; k < K; k++) {
            double ex = (double)d[k / wl] * q[k] - m[k / wl];
            ok &= exact ? deq[k] == ex : fabs(deq[k] - ex) <= ldexp(1.0, -23) * (fabs((double)d[k / wl] * q[k]) + fabs(m[k / wl]));
        }
    }
    UNIT_CHECK(ok, "kn_q8_unpack %s disagrees with zi_dequantize", zi_dtype_name(dt));
    free(w), free(deq);
}

static const zi_dtype kq_types[] = {ZI_Q8_0, ZI_Q4_0, ZI_Q4_1, ZI_Q5_0, ZI_Q5_1, ZI_Q4_K, ZI_Q5_K, ZI_Q6_K, ZI_Q3_K, ZI_Q2_K};
#define KQ_NTYPES (int)(sizeof kq_types / sizeof kq_types[0])

/* kn_linear in the int8 mode takes the int8 GEMM for M > 4 (bit-identical to the instance),
 * the bf16 mode's path for M <= 4 and for types without an int8 form. */
static void kq_dispatch_checks(void) {
    int64_t K = 512, N = 40;
    kn_precision saved = kn_get_precision();
    for (int c = 0; c < 5; c++) { /* int8: Q4_K, Q6_K, Q2_K at M = 21; bf16 path: Q4_K M = 3, F16 */
        static const zi_dtype dts[] = {ZI_Q4_K, ZI_Q4_K, ZI_F16, ZI_Q6_K, ZI_Q2_K};
        zi_dtype dt = dts[c];
        int64_t M = c == 1 ? 3 : 21;
        float *x = kq_acts(M, K, K), *y = malloc(sizeof(float) * (size_t)(M * N)), *z = malloc(sizeof(float) * (size_t)(M * N));
        void *w;
        if (dt == ZI_F16) {
            uint16_t *h = malloc(sizeof(uint16_t) * (size_t)(N * K));
            for (int64_t i = 0; i < N * K; i++) h[i] = zi_f32_to_f16(0.1f * kq_uniform());
            w = h;
        } else {
            w = kq_weights(dt, N, K);
        }
        kn_mat W = {.dtype = dt, .rows = N, .cols = K, .data = w};
        kn_wsrc B = kn_wsrc_of_mat(&W);
        kn_set_precision(KN_PREC_INT8);
        int rc = kn_linear(y, x, M, &W, NULL);
        if (c != 1 && c != 2) {
            rc |= kn_gemm_q8_get(dt, NULL)(z, N, x, K, M, N, K, &B, NULL, 0, 1);
        } else {
            kn_set_precision(KN_PREC_BF16);
            rc |= kn_linear(z, x, M, &W, NULL);
        }
        UNIT_CHECK(rc == 0 && !memcmp(y, z, sizeof(float) * (size_t)(M * N)),
                   "kn_linear int8 mode M=%lld %s: not the %s path", (long long)M, zi_dtype_name(dt),
                   c != 1 && c != 2 ? "int8" : "bf16 mode's");
        free(x), free(y), free(z), free(w);
    }
    kn_set_precision(saved);
}

/* a NaN activation makes its own output row NaN and nothing else */
static void kq_nan_check(kq_fn fn, const char *name, zi_dtype dt) {
    int64_t M = 7, K = zi_dtype_block_elems(dt) > 64 ? 256 : 64, N = 20;
    float *x = kq_acts(M, K, K), *y = malloc(sizeof(float) * (size_t)(M * N));
    x[4 * K + 40] = NAN;
    void *w = kq_weights(dt, N, K);
    kn_mat W = {.dtype = dt, .rows = N, .cols = K, .data = w};
    kn_wsrc B = kn_wsrc_of_mat(&W);
    int rc = fn(y, N, x, K, M, N, K, &B, NULL, 0, 1), ok = rc == 0;
    for (int64_t i = 0; i < M * N; i++) ok &= (i / N == 4) == (isnan(y[i]) != 0);
    UNIT_CHECK(ok, "int8 GEMM %s %s: a NaN activation does not give exactly its row NaN", name, zi_dtype_name(dt));
    free(x), free(y), free(w);
}

/* The AMX-INT8 template (gemm_q8_amx_impl.h: 32 x 32 tile blocks, one TDPBSSD per 32-block, int32
 * tiles scaled per block) on shapes around its tile edges: M, N at 31/32/33 and past the 256-row
 * group, K of one block and a ragged K tail, 1 and 3 threads; every type with 32-element weight
 * blocks (kinds 1 and 2; Q6_K/Q3_K/Q2_K go to avx512vnni on AMX CPUs), vs the reference and
 * bit for bit vs the generic instance. fn: the emulated or the real instance. */
static void kq_amx_checks(kq_fn fn, const char *name) {
    static const int64_t shapes[][3] = {{32, 32, 32}, {33, 96, 31}, {31, 288, 33}, {259, 64, 65}, {64, 544, 96}};
    for (int t = 0; t < KQ_NTYPES; t++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            zi_dtype dt = kq_types[t];
            if (kn_q8_kind(dt) != 1 && kn_q8_kind(dt) != 2) continue; /* 16-element blocks: not on AMX */
            int64_t M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
            if (K % zi_dtype_block_elems(dt)) K = (K + 255) / 256 * 256;
            int acc = (int)((s + t) & 1), T = s & 1 ? 3 : 1;
            float *g = kq_run(kn_gemm_q8_generic, "generic (emulated VNNI)", M, K, N, dt, acc, 1, NULL);
            free(kq_run(fn, name, M, K, N, dt, acc, T, g));
            free(g);
        }
    kq_nan_check(fn, name, ZI_Q8_0), kq_nan_check(fn, name, ZI_Q4_K);
}

/* kn_gemm_q8_get: the amx instance on the amx path exactly where the CPU has AMX-INT8, never elsewhere */
static void kq_choice_checks(int have_amx8) {
    kn_isa saved = kn_get_isa();
    for (int i = 0; i < KN_ISA_COUNT; i++) {
        if (!kn_isa_supported((kn_isa)i, NULL)) continue;
        kn_set_isa((kn_isa)i);
        for (int t = 0; t < KQ_NTYPES; t++) {
            const char *nm = NULL;
            kn_gemm_q8_fn f = kn_gemm_q8_get(kq_types[t], &nm);
            int kind = kn_q8_kind(kq_types[t]);
            int want = have_amx8 && i == KN_ISA_AMX && (kind == 1 || kind == 2); /* 16-element blocks: avx512vnni */
#if defined(__x86_64__)
            int is_amx = f == kn_gemm_q8_amx;
#else
            int is_amx = 0;
#endif
            UNIT_CHECK(is_amx == want && f != kn_gemm_q8_amxemu && nm && (strstr(nm, "TDPBSSD") != NULL) == want,
                       "kn_gemm_q8_get on path %s for %s: '%s' (AMX-INT8 instance expected: %d)",
                       kn_isa_name((kn_isa)i), zi_dtype_name(kq_types[t]), nm ? nm : "(null)", want);
        }
    }
    kn_set_isa(saved);
}

void unit_q8(void) {
    static const int64_t shapes[][3] = {
        {5, 32, 1}, {9, 64, 33}, {37, 544, 70}, {300, 288, 45}, {6, 256, 16}, {17, 800, 131},
    };
    kq_quant_checks();
    for (int t = 0; t < KQ_NTYPES; t++) kq_unpack_checks(kq_types[t]);
    const char *why_avx2 = NULL;
    int have_avx2 = 0, have_vnni = 0;
#if defined(__x86_64__)
    have_avx2 = kn_isa_supported(KN_ISA_AVX2, &why_avx2);
    have_vnni = kn_cpu_has_avx512vnni();
#else
    why_avx2 = "not an x86-64 build";
#endif
    if (!have_avx2) printf("  SKIP int8 GEMM path avx2: %s\n", why_avx2);
    if (!have_vnni) printf("  SKIP int8 GEMM path avx512vnni: the CPU lacks AVX512-VNNI (its template ran as generic, emulated vpdpbusd)\n");
    const char *why_amx = "not an x86-64 build", *why_path = NULL;
    int have_amx8 = 0;
#if defined(__x86_64__)
    have_amx8 = kn_cpu_has_amx_int8();
    why_amx = kn_isa_supported(KN_ISA_AMX, &why_path) ? "the CPU lacks AMX-INT8" : "no amx path";
#endif
    if (!have_amx8)
        printf("  SKIP int8 GEMM path amx (TDPBSSD): %s%s%s (its template ran on emulated tiles)\n", why_amx,
               why_path ? ": " : "", why_path ? why_path : "");
    for (int t = 0; t < KQ_NTYPES; t++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            zi_dtype dt = kq_types[t];
            int64_t M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
            if (K % zi_dtype_block_elems(dt)) K = (K + 255) / 256 * 256; /* k-quants: whole 256 blocks */
            int acc = (int)((s + t) & 1);
            int amx_kind = kn_q8_kind(dt) == 1 || kn_q8_kind(dt) == 2; /* the AMX instance: 32-element weight blocks */
            float *g = kq_run(kn_gemm_q8_generic, "generic (emulated VNNI)", M, K, N, dt, acc, 2, NULL);
            free(kq_run(kn_gemm_q8_generic, "generic (emulated VNNI)", M, K, N, dt, acc, 1, g));
#if defined(__x86_64__)
            if (have_avx2) free(kq_run(kn_gemm_q8_avx2, "avx2", M, K, N, dt, acc, 2, g));
            if (have_avx2 && kn_q8_kind(dt) == 3) free(kq_run(kn_gemm_q8_avx2s, "avx2s", M, K, N, dt, acc, 2, g));
            if (have_avx2 && KN_Q8_OFFSET(kn_q8_kind(dt))) free(kq_run(kn_gemm_q8_avx2u, "avx2u", M, K, N, dt, acc, 2, g));
            if (have_vnni) free(kq_run(kn_gemm_q8_avx512vnni, "avx512vnni", M, K, N, dt, acc, 2, g));
            if (have_amx8 && amx_kind) free(kq_run(kn_gemm_q8_amx, "amx (TDPBSSD)", M, K, N, dt, acc, 2, g));
#endif
            if (amx_kind) free(kq_run(kn_gemm_q8_amxemu, "amx (emulated tiles)", M, K, N, dt, acc, 2, g));
            free(g);
        }
    kq_amx_checks(kn_gemm_q8_amxemu, "amx (emulated tiles)");
#if defined(__x86_64__)
    if (have_amx8) kq_amx_checks(kn_gemm_q8_amx, "amx (TDPBSSD)");
#endif
    kq_choice_checks(have_amx8);
    kq_dispatch_checks();
    kq_nan_check(kn_gemm_q8_generic, "generic", ZI_Q4_0), kq_nan_check(kn_gemm_q8_generic, "generic", ZI_Q2_K);
#if defined(__x86_64__)
    if (have_avx2) {
        kq_nan_check(kn_gemm_q8_avx2, "avx2", ZI_Q4_0), kq_nan_check(kn_gemm_q8_avx2u, "avx2u", ZI_Q4_0);
        kq_nan_check(kn_gemm_q8_avx2, "avx2", ZI_Q6_K), kq_nan_check(kn_gemm_q8_avx2u, "avx2u", ZI_Q2_K);
        kq_nan_check(kn_gemm_q8_avx2s, "avx2s", ZI_Q6_K), kq_nan_check(kn_gemm_q8_avx2s, "avx2s", ZI_Q3_K);
    }
    if (have_vnni) kq_nan_check(kn_gemm_q8_avx512vnni, "avx512vnni", ZI_Q3_K);
#endif
    printf("  int8 GEMM: %d types, generic%s%s + amx on emulated tiles%s\n", KQ_NTYPES,
           have_avx2 ? " + avx2 + avx2u + avx2s" : "", have_vnni ? " + avx512vnni" : "", have_amx8 ? " + amx (TDPBSSD)" : "");
}
