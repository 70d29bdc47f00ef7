/* zimage_bench.c - compute benchmark for the DiT hot spots (docs/MODEL.md §9).
 *
 * Measures, in one program: (a) the machine's fp32 FMA (AVX-512 and AVX2) / bf16 dot / int8
 * VNNI peaks with register-only loops (each only where the CPU has it), (b) kn_linear GFLOP/s on the real DiT
 * shapes with BF16 weights, (c) kn_attention GFLOP/s (30 heads, hd 128), (d) with
 * --dit DIR, seconds per full DiT forward at 256x256 and 512x512 (zi_dit_forward),
 * (e) peak RSS. Timings are medians of --reps runs after one warm-up.
 *
 * Kernels run on the path ZIMAGE_ISA / --isa names (default: the best available).
 *
 * --precision f32|bf16 sets the kernels' precision; --compare-precision adds one DiT forward in the
 * other mode and prints the relative L2 difference of the outputs.
 *
 *   build/zimage_bench [--isa P] [--precision f32|bf16|int8] [--compare-precision] [--reps N] [--threads N] [--dit DIR] [--no-peak] [--no-linear]
 *                      [--no-attn] [--tokens M1,M2,..] [--shape M,K,N] [--attn-len L1,L2,..]
 *                      [--res R1,R2,..] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#define TARGET(s) __attribute__((target(s)))
#endif

#include "../src/common/dtype.h"
#include "../src/common/error.h"
#include "../src/dit/dit.h"
#include "../src/kernels/kernels.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds used by all threads of this process: on a machine shared with other jobs,
 * FLOP per CPU-second is the kernel's own speed, independent of how much of the machine
 * it got (OpenMP threads spinning idle count too, so it errs on the low side). */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    double wall, cpu; /* GFLOP per wall second, GFLOP per CPU second (= per core) */
} rate;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float rand_uniform(void) { /* [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static int nthreads(void) { return kn_get_threads(); }

/* ---------------------------------------------------------------- (a) peaks */

static volatile float peak_sink;

/* Each thread runs `iters` rounds of 16 independent 16-lane FMAs; returns GFLOP/s. */
#if defined(__x86_64__)
TARGET("avx512f")
#endif
static rate peak_fp32(long iters) {
#if defined(__x86_64__)
    if (!kn_isa_supported(KN_ISA_AVX512, NULL)) return (rate){0, 0};
    double t0 = now_s(), c0 = cpu_s();
#pragma omp parallel
    {
        __m512 a[16];
        for (int i = 0; i < 16; i++) a[i] = _mm512_set1_ps(0.001f * (float)i);
        __m512 b = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
        for (long it = 0; it < iters; it++) {
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++) a[i] = _mm512_fmadd_ps(a[i], b, c);
        }
        __m512 s = a[0];
        for (int i = 1; i < 16; i++) s = _mm512_add_ps(s, a[i]);
        peak_sink = _mm512_reduce_add_ps(s);
    }
    double dt = now_s() - t0, dc = cpu_s() - c0, fl = (double)iters * 16 * 16 * 2 * nthreads();
    return (rate){fl / dt * 1e-9, fl / dc * 1e-9};
#else
    (void)iters;
    return (rate){0, 0};
#endif
}

/* Each thread runs `iters` rounds of 12 independent 8-lane FMAs (AVX2). */
#if defined(__x86_64__)
TARGET("avx2,fma")
#endif
static rate peak_fp32_avx2(long iters) {
#if defined(__x86_64__)
    if (!kn_isa_supported(KN_ISA_AVX2, NULL)) return (rate){0, 0};
    double t0 = now_s(), c0 = cpu_s();
#pragma omp parallel
    {
        __m256 a[12];
        for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps(0.001f * (float)i);
        __m256 b = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
        for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
            for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], b, c);
        }
        __m256 s = a[0];
        for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, a[i]);
        float t[8];
        _mm256_storeu_ps(t, s);
        peak_sink = t[0] + t[7];
    }
    double dt = now_s() - t0, dc = cpu_s() - c0, fl = (double)iters * 12 * 8 * 2 * nthreads();
    return (rate){fl / dt * 1e-9, fl / dc * 1e-9};
#else
    (void)iters;
    return (rate){0, 0};
#endif
}

/* vdpbf16ps: 32 bf16 products per instruction (64 FLOP). */
#if defined(__x86_64__)
TARGET("avx512f,avx512bf16")
#endif
static rate peak_bf16(long iters) {
#if defined(__x86_64__)
    if (!kn_isa_supported(KN_ISA_AVX512BF16, NULL)) return (rate){0, 0};
    double t0 = now_s(), c0 = cpu_s();
#pragma omp parallel
    {
        __m512 a[16];
        for (int i = 0; i < 16; i++) a[i] = _mm512_set1_ps(0.001f * (float)i);
        __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3380);
        for (long it = 0; it < iters; it++) {
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++) a[i] = _mm512_dpbf16_ps(a[i], x, y);
        }
        __m512 s = a[0];
        for (int i = 1; i < 16; i++) s = _mm512_add_ps(s, a[i]);
        peak_sink = _mm512_reduce_add_ps(s);
    }
    double dt = now_s() - t0, dc = cpu_s() - c0, fl = (double)iters * 16 * 64 * nthreads();
    return (rate){fl / dt * 1e-9, fl / dc * 1e-9};
#else
    (void)iters;
    return (rate){0, 0};
#endif
}

/* vpdpbusd: 64 u8*s8 products per instruction (128 OP). Needs AVX512-VNNI: checked with the
 * compiler's CPU model (the kernels' cpu.c does not use VNNI yet). */
#if defined(__x86_64__)
TARGET("avx512f,avx512vnni")
#endif
static rate peak_int8(long iters) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (!kn_isa_supported(KN_ISA_AVX512, NULL) || !__builtin_cpu_supports("avx512vnni")) return (rate){0, 0};
    double t0 = now_s(), c0 = cpu_s();
#pragma omp parallel
    {
        __m512i a0 = _mm512_set1_epi32(0), a1 = _mm512_set1_epi32(1), a2 = _mm512_set1_epi32(2),
                a3 = _mm512_set1_epi32(3), a4 = _mm512_set1_epi32(4), a5 = _mm512_set1_epi32(5),
                a6 = _mm512_set1_epi32(6), a7 = _mm512_set1_epi32(7), a8 = _mm512_set1_epi32(8),
                a9 = _mm512_set1_epi32(9), a10 = _mm512_set1_epi32(10), a11 = _mm512_set1_epi32(11),
                a12 = _mm512_set1_epi32(12), a13 = _mm512_set1_epi32(13), a14 = _mm512_set1_epi32(14),
                a15 = _mm512_set1_epi32(15);
        __m512i x = _mm512_set1_epi8(3), y = _mm512_set1_epi8(-2);
        /* inline asm on plain variables: GCC 12 otherwise shuffles the destructive accumulators */
#define VNNI8(b0, b1, b2, b3, b4, b5, b6, b7)                                                                  \
    __asm__ volatile("vpdpbusd %[x], %[y], %[c0]\n\tvpdpbusd %[x], %[y], %[c1]\n\t"                          \
                     "vpdpbusd %[x], %[y], %[c2]\n\tvpdpbusd %[x], %[y], %[c3]\n\t"                          \
                     "vpdpbusd %[x], %[y], %[c4]\n\tvpdpbusd %[x], %[y], %[c5]\n\t"                          \
                     "vpdpbusd %[x], %[y], %[c6]\n\tvpdpbusd %[x], %[y], %[c7]"                                \
                     : [c0] "+v"(b0), [c1] "+v"(b1), [c2] "+v"(b2), [c3] "+v"(b3), [c4] "+v"(b4), [c5] "+v"(b5), \
                       [c6] "+v"(b6), [c7] "+v"(b7)                                                              \
                     : [x] "v"(x), [y] "v"(y))
        for (long it = 0; it < iters; it++) {
            VNNI8(a0, a1, a2, a3, a4, a5, a6, a7);
            VNNI8(a8, a9, a10, a11, a12, a13, a14, a15);
        }
#undef VNNI8
        __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)),
                                     _mm512_add_epi32(_mm512_add_epi32(a4, a5), _mm512_add_epi32(a6, a7)));
        s = _mm512_add_epi32(s, _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a8, a9), _mm512_add_epi32(a10, a11)),
                                                 _mm512_add_epi32(_mm512_add_epi32(a12, a13), _mm512_add_epi32(a14, a15))));
        peak_sink = (float)_mm512_reduce_add_epi32(s);
    }
    double dt = now_s() - t0, dc = cpu_s() - c0, fl = (double)iters * 16 * 128 * nthreads();
    return (rate){fl / dt * 1e-9, fl / dc * 1e-9};
#else
    (void)iters;
    return (rate){0, 0};
#endif
}

/* AMX: 4 independent accumulator tiles, each TDPBF16PS 16 x 16 x 32 MACs (16,384 FLOP), each
 * TDPBSSD 16 x 16 x 64 (32,768 OP); operands loaded once from a buffer, so register-only. */
#if defined(__x86_64__)
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((aligned(64))) bench_tilecfg;
static const bench_tilecfg bench_tiles = {.palette = 1,
                                          .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
                                          .rows = {16, 16, 16, 16, 16, 16, 16, 16}};
TARGET("amx-tile,amx-bf16,amx-int8")
static void amx_loop(long iters, int int8) {
    static const uint8_t buf[16 * 64] __attribute__((aligned(64))) = {1, 2, 3, 4, 5, 6, 7, 8};
    float out[16 * 16];
    _tile_loadconfig(&bench_tiles);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, buf, 64);
    _tile_loadd(5, buf, 64);
    _tile_loadd(6, buf, 64);
    _tile_loadd(7, buf, 64);
    if (int8)
        for (long it = 0; it < iters; it++) {
            _tile_dpbssd(0, 4, 6);
            _tile_dpbssd(1, 4, 7);
            _tile_dpbssd(2, 5, 6);
            _tile_dpbssd(3, 5, 7);
        }
    else
        for (long it = 0; it < iters; it++) {
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        }
    _tile_stored(0, out, 64);
    peak_sink = out[0];
    _tile_release();
}
#endif
static rate peak_amx(long iters, int int8) {
#if defined(__x86_64__)
    if (!kn_isa_supported(KN_ISA_AMX, NULL)) return (rate){0, 0};
    double t0 = now_s(), c0 = cpu_s();
#pragma omp parallel
    amx_loop(iters, int8);
    double dt = now_s() - t0, dc = cpu_s() - c0, fl = (double)iters * 4 * (int8 ? 32768 : 16384) * nthreads();
    return (rate){fl / dt * 1e-9, fl / dc * 1e-9};
#else
    (void)iters, (void)int8;
    return (rate){0, 0};
#endif
}
static rate peak_amx_bf16(long iters) { return peak_amx(iters, 0); }
static rate peak_amx_int8(long iters) { return peak_amx(iters, 1); }

/* median over reps of wall and CPU rates (separately) */
static rate rate_median(const double *wall_s, const double *cpu_s_, int n, double flops) {
    double w[64], c[64];
    for (int i = 0; i < n; i++) w[i] = wall_s[i], c[i] = cpu_s_[i];
    return (rate){flops / median(w, n) * 1e-9, flops / median(c, n) * 1e-9};
}

static rate peak_median(rate (*fn)(long), long iters, int reps) {
    double w[64], c[64];
    if (reps > 64) reps = 64;
    fn(iters / 4); /* warm-up (clocks, thread pool) */
    for (int r = 0; r < reps; r++) {
        rate x = fn(iters);
        w[r] = 1.0 / x.wall, c[r] = 1.0 / x.cpu;
    }
    return rate_median(w, c, reps, 1e9);
}

/* ---------------------------------------------------------------- (b) linear */

typedef struct {
    int64_t M, K, N;
} shape;

static rate bench_linear(shape s, zi_dtype wt, int reps) {
    size_t xs = (size_t)(s.M * s.K), ws = (size_t)(s.N * s.K), ys = (size_t)(s.M * s.N);
    float *x = malloc(xs * sizeof(float)), *y = malloc(ys * sizeof(float));
    void *w = malloc(ws * zi_dtype_size(wt));
    if (!x || !y || !w) {
        fprintf(stderr, "out of memory for shape %lldx%lldx%lld\n", (long long)s.M, (long long)s.K,
                (long long)s.N);
        free(x), free(y), free(w);
        return (rate){0, 0};
    }
    for (size_t i = 0; i < xs; i++) x[i] = rand_uniform();
    float sc = 1.7320508f / sqrtf((float)s.K);
    for (size_t i = 0; i < ws; i++) {
        float v = rand_uniform() * sc;
        if (wt == ZI_BF16)
            ((uint16_t *)w)[i] = zi_f32_to_bf16(v);
        else if (wt == ZI_F16)
            ((uint16_t *)w)[i] = zi_f32_to_f16(v);
        else
            ((float *)w)[i] = v;
    }
    kn_mat W = {.dtype = wt, .rows = s.N, .cols = s.K, .data = w};
    double tw[64], tc[64];
    if (reps > 64) reps = 64;
    kn_linear(y, x, s.M, &W, NULL); /* warm-up */
    for (int r = 0; r < reps; r++) {
        double t0 = now_s(), c0 = cpu_s();
        kn_linear(y, x, s.M, &W, NULL);
        tw[r] = now_s() - t0, tc[r] = cpu_s() - c0;
    }
    free(x), free(y), free(w);
    return rate_median(tw, tc, reps, 2.0 * (double)s.M * (double)s.N * (double)s.K);
}

/* ---------------------------------------------------------------- (c) attention */

static rate bench_attention(int64_t L, int heads, int hd, int reps) {
    int64_t D = (int64_t)heads * hd;
    size_t n = (size_t)(L * D);
    float *q = malloc(n * sizeof(float)), *k = malloc(n * sizeof(float)), *v = malloc(n * sizeof(float));
    float *o = malloc(n * sizeof(float));
    if (!q || !k || !v || !o) {
        free(q), free(k), free(v), free(o);
        return (rate){0, 0};
    }
    for (size_t i = 0; i < n; i++) q[i] = 3.0f * rand_uniform(), k[i] = rand_uniform(), v[i] = rand_uniform();
    float scale = 1.0f / sqrtf((float)hd);
    double tw[64], tc[64];
    if (reps > 64) reps = 64;
    kn_attention(o, D, q, D, k, D, v, D, L, L, heads, heads, hd, scale, 0);
    for (int r = 0; r < reps; r++) {
        double t0 = now_s(), c0 = cpu_s();
        kn_attention(o, D, q, D, k, D, v, D, L, L, heads, heads, hd, scale, 0);
        tw[r] = now_s() - t0, tc[r] = cpu_s() - c0;
    }
    free(q), free(k), free(v), free(o);
    return rate_median(tw, tc, reps, 4.0 * (double)L * (double)L * (double)D);
}

/* ---------------------------------------------------------------- (d) DiT forward */

/* Spec 9.2 FLOP estimate of one forward. */
static double dit_flops(const zi_dit_config *c, int64_t limg_pad, int64_t lc_pad) {
    double D = c->dim, F = c->ffn_dim, L = (double)(limg_pad + lc_pad);
    double P = 2.0 * (4.0 * D * D + 3.0 * D * F);
    double li = (double)limg_pad, lc = (double)lc_pad;
    return c->n_layers * (P * L + 4 * D * L * L) + c->n_refiner * (P * li + 4 * D * li * li) +
           c->n_refiner * (P * lc + 4 * D * lc * lc) + 2 * li * 64 * D + 2 * lc * c->cap_feat_dim * D +
           2 * L * D * 64;
}

/* --compare-precision: one more forward in the other precision mode; relative L2 of the difference. */
static int bench_compare = 0;

static int bench_dit(const char *dir, const int *res, int nres, int reps) {
    zi_dit *m = NULL;
    double t0 = now_s();
    if (zi_dit_load(&m, dir) != 0) {
        fprintf(stderr, "zi_dit_load(%s): %s\n", dir, zi_last_error());
        return -1;
    }
    printf("\nDiT forward (%s, load %.2f s; weights mmapped, first run pages them in)\n", dir, now_s() - t0);
    printf("  %-10s %8s %8s %10s %10s %10s\n", "res", "img_tok", "cap_tok", "TFLOP", "s/forward", "GFLOP/s");
    const zi_dit_config *c = &m->cfg;
    int cap_len = 32, rc = 0;
    for (int ri = 0; ri < nres; ri++) {
        int hw = res[ri] / 8;
        int64_t limg = (int64_t)(hw / 2) * (hw / 2), limg_pad = (limg + 31) / 32 * 32;
        size_t nx = (size_t)c->in_channels * hw * hw;
        float *x = malloc(nx * sizeof(float)), *out = malloc(nx * sizeof(float));
        float *cap = malloc((size_t)cap_len * c->cap_feat_dim * sizeof(float));
        if (!x || !out || !cap) {
            free(x), free(out), free(cap);
            rc = -1;
            break;
        }
        for (size_t i = 0; i < nx; i++) x[i] = rand_uniform();
        for (size_t i = 0; i < (size_t)cap_len * c->cap_feat_dim; i++) cap[i] = rand_uniform();
        double t[16];
        int nrep = reps < 16 ? reps : 16;
        for (int r = 0; r < nrep; r++) {
            double s0 = now_s();
            if (zi_dit_forward(m, x, hw, hw, 0.5f, cap, cap_len, out, NULL, NULL) != 0) {
                fprintf(stderr, "zi_dit_forward: %s\n", zi_last_error());
                rc = -1;
                break;
            }
            t[r] = now_s() - s0;
        }
        if (rc == 0) {
            double fin = 0;
            for (size_t i = 0; i < nx; i++) fin += isfinite(out[i]) ? 0 : 1;
            double tf = dit_flops(c, limg_pad, 32), med = median(t, nrep);
            printf("  %4dx%-5d %8lld %8d %10.2f %10.2f %10.1f%s\n", res[ri], res[ri], (long long)limg_pad, 32,
                   tf * 1e-12, med, tf / med * 1e-9, fin ? "  (NON-FINITE OUTPUT)" : "");
            fflush(stdout);
            float *out2 = bench_compare ? malloc(nx * sizeof(float)) : NULL;
            if (out2) {
                kn_precision p0 = kn_get_precision();
                kn_set_precision(p0 == KN_PREC_F32 ? KN_PREC_BF16 : KN_PREC_F32);
                double s0 = now_s();
                int rc2 = zi_dit_forward(m, x, hw, hw, 0.5f, cap, cap_len, out2, NULL, NULL);
                double t2 = now_s() - s0;
                kn_set_precision(p0);
                double d2 = 0, r2 = 0;
                for (size_t i = 0; i < nx; i++) {
                    double d = (double)out2[i] - (double)out[i];
                    d2 += d * d, r2 += (double)out[i] * out[i];
                }
                if (rc2 == 0)
                    printf("    %s vs %s: relative L2 of the DiT output %.3e (%s forward %.2f s)\n",
                           p0 == KN_PREC_F32 ? "bf16" : "f32", p0 == KN_PREC_F32 ? "f32" : "bf16", sqrt(d2 / r2),
                           p0 == KN_PREC_F32 ? "bf16" : "f32", t2);
                free(out2);
            }
        }
        free(x), free(out), free(cap);
        if (rc) break;
    }
    zi_dit_free(m);
    return rc;
}

/* ---------------------------------------------------------------- main */

static int parse_list(const char *s, int64_t *v, int max) {
    int n = 0;
    while (*s && n < max) {
        char *e;
        long long x = strtoll(s, &e, 10);
        if (e == s || x <= 0) return -1;
        v[n++] = x;
        s = *e == ',' ? e + 1 : e;
        if (*e && *e != ',') return -1;
    }
    return n;
}

int main(int argc, char **argv) {
    int reps = 5, threads = 2, do_peak = 1, do_lin = 1, do_attn = 1;
    const char *isa_name = NULL;
    const char *dit_dir = NULL;
    int64_t tokens[8] = {1056, 4224}, alen[8] = {1056, 4224}, resl[8] = {256, 512}, one[3];
    int ntok = 2, nalen = 2, nres = 2, have_one = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *nx = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--reps") && nx)
            reps = atoi(argv[++i]);
        else if (!strcmp(a, "--isa") && nx)
            isa_name = argv[++i];
        else if (!strcmp(a, "--precision") && nx) {
            const char *pv = argv[++i];
            if (strcmp(pv, "f32") && strcmp(pv, "bf16") && strcmp(pv, "int8")) ntok = -1;
            kn_set_precision(!strcmp(pv, "bf16") ? KN_PREC_BF16 : !strcmp(pv, "int8") ? KN_PREC_INT8 : KN_PREC_F32);
        } else if (!strcmp(a, "--compare-precision"))
            bench_compare = 1;
        else if (!strcmp(a, "--threads") && nx)
            threads = atoi(argv[++i]);
        else if (!strcmp(a, "--dit") && nx)
            dit_dir = argv[++i];
        else if (!strcmp(a, "--no-peak"))
            do_peak = 0;
        else if (!strcmp(a, "--no-linear"))
            do_lin = 0;
        else if (!strcmp(a, "--no-attn"))
            do_attn = 0;
        else if (!strcmp(a, "--tokens") && nx)
            ntok = parse_list(argv[++i], tokens, 8);
        else if (!strcmp(a, "--attn-len") && nx)
            nalen = parse_list(argv[++i], alen, 8);
        else if (!strcmp(a, "--res") && nx)
            nres = parse_list(argv[++i], resl, 8);
        else if (!strcmp(a, "--shape") && nx) {
            have_one = parse_list(argv[++i], one, 3) == 3;
            if (!have_one) ntok = -1;
        } else {
            fprintf(stderr, "usage: %s [--isa P] [--precision f32|bf16|int8] [--compare-precision] [--reps N] [--threads N] [--dit DIR] [--no-peak] [--no-linear] [--no-attn]\n"
                            "          [--tokens M1,M2] [--shape M,K,N] [--attn-len L1,L2] [--res R1,R2]\n",
                    argv[0]);
            return 2;
        }
    }
    if (reps < 1 || ntok < 0 || nalen < 0 || nres < 0) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    kn_set_threads(threads);
    kn_isa isa;
    if (isa_name ? kn_isa_parse(isa_name, &isa) : kn_isa_default(&isa)) {
        fprintf(stderr, "%s\n", zi_last_error());
        return 2;
    }
    const char *why;
    if (!kn_isa_supported(isa, &why)) {
        fprintf(stderr, "path %s not available: %s\n", kn_isa_name(isa), why);
        return 2;
    }
    kn_set_isa(isa);
    printf("zimage_bench: %d threads, median of %d runs, path %s (%s kernels)\n", kn_get_threads(), reps,
           kn_isa_name(isa), kn_kernel_name());

    /* the fp32 peak of the kernels' own vector unit is the reference for the % columns */
    int avx512_kernels = !strcmp(kn_kernel_name(), "avx512");
    rate pf32 = {0, 0}, pmx = {0, 0};
    if (do_peak) {
        rate p512 = peak_median(peak_fp32, 50000000, reps);
        rate p256 = peak_median(peak_fp32_avx2, 50000000, reps);
        rate pbf = peak_median(peak_bf16, 50000000, reps);
        rate pi8 = peak_median(peak_int8, 50000000, reps);
        rate pamx = peak_median(peak_amx_bf16, 2000000, reps), pamx8 = peak_median(peak_amx_int8, 2000000, reps);
        printf("\nPeaks (register-only loops; per-core = per CPU-second, immune to other jobs; 0 = not on this CPU)\n");
        printf("  fp32 FMA zmm  %8.1f GFLOP/s   (%.1f per core)\n", p512.wall, p512.cpu);
        printf("  fp32 FMA ymm  %8.1f GFLOP/s   (%.1f per core)\n", p256.wall, p256.cpu);
        printf("  bf16 dot      %8.1f GFLOP/s   (%.1f per core)\n", pbf.wall, pbf.cpu);
        printf("  int8 VNNI     %8.1f GOP/s     (%.1f per core)\n", pi8.wall, pi8.cpu);
        printf("  AMX-BF16      %8.1f GFLOP/s   (%.1f per core)\n", pamx.wall, pamx.cpu);
        printf("  AMX-INT8      %8.1f GOP/s     (%.1f per core)\n", pamx8.wall, pamx8.cpu);
        /* bf16 mode: the linear table also compares with the peak of the unit its GEMM runs on */
        if (kn_get_precision() == KN_PREC_BF16) pmx = isa == KN_ISA_AMX ? pamx : isa == KN_ISA_AVX512BF16 ? pbf : pmx;
        pf32 = avx512_kernels ? p512 : p256;
    } else {
        pf32 = avx512_kernels ? peak_fp32(2000000) : peak_fp32_avx2(2000000); /* quick estimate */
    }

    if (do_lin) {
        shape sh[16];
        int ns = 0;
        if (have_one) {
            sh[ns++] = (shape){one[0], one[1], one[2]};
        } else {
            static const int64_t kn[3][2] = {{3840, 3840}, {3840, 10240}, {10240, 3840}};
            for (int t = 0; t < ntok; t++)
                for (int j = 0; j < 3; j++) sh[ns++] = (shape){tokens[t], kn[j][0], kn[j][1]};
        }
        printf("\nkn_linear, BF16 weights, y[M,N] = x[M,K] W[N,K]^T\n");
        printf("  %6s %6s %6s %10s %10s %8s %10s %8s%s\n", "M", "K", "N", "GFLOP/s", "s/call", "%fp32pk", "GF/cpu-s",
               "%core-pk", pmx.wall > 0 ? "  %bf16pk %bf16core" : "");
        for (int i = 0; i < ns; i++) {
            rate g = bench_linear(sh[i], ZI_BF16, reps);
            double fl = 2.0 * (double)sh[i].M * (double)sh[i].K * (double)sh[i].N;
            printf("  %6lld %6lld %6lld %10.1f %10.4f %7.1f%% %10.1f %7.1f%%", (long long)sh[i].M, (long long)sh[i].K,
                   (long long)sh[i].N, g.wall, g.wall > 0 ? fl / g.wall * 1e-9 : 0.0,
                   pf32.wall > 0 ? 100.0 * g.wall / pf32.wall : 0.0, g.cpu, pf32.cpu > 0 ? 100.0 * g.cpu / pf32.cpu : 0.0);
            if (pmx.wall > 0) printf("  %7.1f%% %8.1f%%", 100.0 * g.wall / pmx.wall, 100.0 * g.cpu / pmx.cpu);
            printf("\n");
            fflush(stdout);
        }
    }

    if (do_attn) {
        printf("\nkn_attention, 30 heads, hd 128, non-causal (FLOP = 4 L^2 D)\n");
        printf("  %6s %10s %10s %8s %10s %8s\n", "L", "GFLOP/s", "s/call", "%fp32pk", "GF/cpu-s", "%core-pk");
        for (int i = 0; i < nalen; i++) {
            rate g = bench_attention(alen[i], 30, 128, reps);
            double fl = 4.0 * (double)alen[i] * (double)alen[i] * 3840.0;
            printf("  %6lld %10.1f %10.3f %7.1f%% %10.1f %7.1f%%\n", (long long)alen[i], g.wall,
                   g.wall > 0 ? fl / g.wall * 1e-9 : 0.0, pf32.wall > 0 ? 100.0 * g.wall / pf32.wall : 0.0, g.cpu,
                   pf32.cpu > 0 ? 100.0 * g.cpu / pf32.cpu : 0.0);
            fflush(stdout);
        }
    }

    int rc = 0;
    if (dit_dir) {
        int res[8];
        for (int i = 0; i < nres; i++) res[i] = (int)resl[i];
        rc = bench_dit(dit_dir, res, nres, reps < 3 ? reps : 3) ? 1 : 0;
    }

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("\npeak RSS: %.1f MiB\n", (double)ru.ru_maxrss / 1024.0);
    return rc;
}
