/* bench_int8.c - the int8 precision mode's GEMM (gemm_q8*) vs the f32 and bf16 modes on
 * block-quantized weights (PERF.md entry 23). Modes are alternated rep by rep in one run (A/B/C,
 * A/B/C, ...) so load from other jobs hits all alike; medians of --reps. Also the fp32 FMA peak
 * (AVX2, register-only loop) and the int16 vpmaddwd peak, measured in the same program.
 *
 *   build/bench_int8 [--reps N] [--threads N] [--types q8_0,q4_k] [--shape M,K,N]...
 * Types: q8_0, q4_0, q4_1, q4_k, q5_k, q6_k, q3_k, q2_k. --vs-avx2: a fourth mode, the avx2
 * (vpmaddwd) instance called directly, alternated with the others (to compare int8 instances).
 * Default shapes: the DiT at 512x512 (M = 1056: 3840x3840, 3840->10240, 10240->3840) and the text
 * encoder at 20 tokens (2560->9728, 9728->2560). Rates per wall second and per CPU second. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "../src/common/dtype.h"
#include "../src/common/error.h"
#include "../src/common/quant.h"
#include "../src/kernels/gemm_q8.h"
#include "../src/kernels/kernels.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
static uint64_t rs = 0x9E3779B97F4A7C15ull;
static float urand(void) {
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (float)((rs >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static volatile float sink;
#if defined(__x86_64__)
/* per thread 12 independent 8-lane FMAs per round (fp32) / 12 vpmaddwd + vpaddd (int16 MACs) */
__attribute__((target("avx2,fma"))) static double peak_fp32(long iters, int T, double *per_cpu) {
    double t0 = now_s(), c0 = cpu_s();
#pragma omp parallel num_threads(T)
    {
        __m256 a[12];
        for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps(0.001f * (float)i);
        __m256 b = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
        for (long it = 0; it < iters; it++)
#pragma GCC unroll 12
            for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], b, c);
        __m256 s = a[0];
        for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, a[i]);
        float t[8];
        _mm256_storeu_ps(t, s);
        sink = t[0];
    }
    double fl = (double)iters * 12 * 16 * T;
    *per_cpu = fl / (cpu_s() - c0) * 1e-9;
    return fl / (now_s() - t0) * 1e-9;
}
__attribute__((target("avx2"))) static double peak_madd(long iters, int T, double *per_cpu) {
    double t0 = now_s(), c0 = cpu_s();
#pragma omp parallel num_threads(T)
    {
        __m256i a[12];
        for (int i = 0; i < 12; i++) a[i] = _mm256_set1_epi32(i);
        __m256i x = _mm256_set1_epi16(3), y = _mm256_set1_epi16(-2);
        for (long it = 0; it < iters; it++)
#pragma GCC unroll 12
            for (int i = 0; i < 12; i++) a[i] = _mm256_add_epi32(a[i], _mm256_madd_epi16(x, y));
        __m256i s = a[0];
        for (int i = 1; i < 12; i++) s = _mm256_add_epi32(s, a[i]);
        sink = (float)_mm256_extract_epi32(s, 0);
        __asm__ volatile("" ::"x"(x), "x"(y));
    }
    double op = (double)iters * 12 * 32 * T; /* 16 MACs = 32 OP per vpmaddwd */
    *per_cpu = op / (cpu_s() - c0) * 1e-9;
    return op / (now_s() - t0) * 1e-9;
}
#endif

int main(int argc, char **argv) {
    int reps = 5, T = 2, nshape = 0, nmode = 3;
    int64_t shapes[8][3];
    const char *types = "q8_0,q4_k";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) T = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--types") && i + 1 < argc) types = argv[++i];
        else if (!strcmp(argv[i], "--vs-avx2")) nmode = 4;
        else if (!strcmp(argv[i], "--shape") && i + 1 < argc && nshape < 8) {
            long long a, b, c;
            if (sscanf(argv[++i], "%lld,%lld,%lld", &a, &b, &c) != 3 || a < 1 || b < 1 || c < 1) return 2;
            shapes[nshape][0] = a, shapes[nshape][1] = b, shapes[nshape][2] = c, nshape++;
        } else {
            fprintf(stderr, "usage: %s [--reps N] [--threads N] [--types q8_0,q4_k] [--shape M,K,N]...\n", argv[0]);
            return 2;
        }
    }
    if (reps < 1 || reps > 64) reps = 5;
    if (!nshape) {
        static const int64_t def[5][3] = {{1056, 3840, 3840}, {1056, 3840, 10240}, {1056, 10240, 3840},
                                          {20, 2560, 9728}, {20, 9728, 2560}};
        memcpy(shapes, def, sizeof def), nshape = 5;
    }
    kn_set_threads(T);
    kn_isa isa;
    if (kn_isa_default(&isa)) {
        fprintf(stderr, "%s\n", zi_last_error());
        return 2;
    }
    kn_set_isa(isa);
    printf("bench_int8: %d threads, path %s, int8 GEMM on %s, median of %d alternated reps\n", T, kn_isa_name(isa),
           kn_int8_describe(), reps);
#if defined(__x86_64__)
    if (kn_isa_supported(KN_ISA_AVX2, NULL)) {
        double pw[64], pc[64], mw[64], mc[64];
        for (int r = 0; r < reps; r++) pw[r] = peak_fp32(20000000, T, &pc[r]), mw[r] = peak_madd(20000000, T, &mc[r]);
        printf("peaks: fp32 FMA ymm %.1f GFLOP/s (%.1f per CPU-s); int16 vpmaddwd %.1f GOP/s (%.1f per CPU-s)\n",
               median(pw, reps), median(pc, reps), median(mw, reps), median(mc, reps));
    }
#endif
    static const char *mname[3] = {"f32", "bf16", "int8"};
    static const kn_precision mode[3] = {KN_PREC_F32, KN_PREC_BF16, KN_PREC_INT8};
    printf("%-5s %6s %6s %6s | %21s | %21s | %21s | int8/f32\n", "type", "M", "K", "N", "f32 GF/s (per CPU-s)",
           "bf16 GF/s (per CPU-s)", "int8 GOP/s (per CPU-s)");
    char tl[256];
    snprintf(tl, sizeof tl, "%s", types);
    for (char *tn = strtok(tl, ","); tn; tn = strtok(NULL, ",")) {
        zi_dtype dt;
        if (!strcmp(tn, "q8_0")) dt = ZI_Q8_0;
        else if (!strcmp(tn, "q4_0")) dt = ZI_Q4_0;
        else if (!strcmp(tn, "q4_k")) dt = ZI_Q4_K;
        else if (!strcmp(tn, "q5_k")) dt = ZI_Q5_K;
        else if (!strcmp(tn, "q4_1")) dt = ZI_Q4_1;
        else if (!strcmp(tn, "q6_k")) dt = ZI_Q6_K;
        else if (!strcmp(tn, "q3_k")) dt = ZI_Q3_K;
        else if (!strcmp(tn, "q2_k")) dt = ZI_Q2_K;
        else {
            fprintf(stderr, "unknown type %s\n", tn);
            return 2;
        }
        for (int s = 0; s < nshape; s++) {
            int64_t M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
            float *x = malloc(sizeof(float) * (size_t)(M * K)), *y = malloc(sizeof(float) * (size_t)(M * N));
            float *row = malloc(sizeof(float) * (size_t)K);
            size_t rb = zi_dtype_row_bytes(dt, K);
            char *w = malloc(rb * (size_t)N);
            if (!x || !y || !row || !w) return 1;
            for (int64_t i = 0; i < M * K; i++) x[i] = urand();
            for (int64_t r = 0; r < N; r++) {
                for (int64_t k = 0; k < K; k++) row[k] = urand() / sqrtf((float)K);
                zi_quantize(dt, row, w + r * rb, K);
            }
            kn_mat W = {.dtype = dt, .rows = N, .cols = K, .data = w};
            double tw[4][64], tc[4][64], fl = 2.0 * (double)M * (double)N * (double)K;
            kn_wsrc B = kn_wsrc_of_mat(&W);
            for (int r = -1; r < reps; r++) /* r = -1: warm-up */
                for (int m = 0; m < nmode; m++) {
                    kn_set_precision(mode[m < 3 ? m : 2]);
                    double t0 = now_s(), c0 = cpu_s();
                    int rc = 1;
#if defined(__x86_64__)
                    if (m == 3) rc = kn_gemm_q8_avx2(y, N, x, K, M, N, K, &B, NULL, 0, T);
#endif
                    if (m < 3 ? kn_linear(y, x, M, &W, NULL) : rc) {
                        fprintf(stderr, "%s\n", zi_last_error());
                        return 1;
                    }
                    if (r >= 0) tw[m][r] = now_s() - t0, tc[m][r] = cpu_s() - c0;
                }
            double g[4], gc[4];
            for (int m = 0; m < nmode; m++) g[m] = fl / median(tw[m], reps) * 1e-9, gc[m] = fl / median(tc[m], reps) * 1e-9;
            printf("%-5s %6lld %6lld %6lld | %9.1f (%9.1f) | %9.1f (%9.1f) | %9.1f (%9.1f) | %.2fx (%.2fx)\n", tn,
                   (long long)M, (long long)K, (long long)N, g[0], gc[0], g[1], gc[1], g[2], gc[2], g[2] / g[0],
                   gc[2] / gc[0]);
            if (nmode == 4)
                printf("      avx2 (vpmaddwd) instance: %9.1f (%9.1f) GOP/s; int8 / avx2 %.2fx (%.2fx)\n", g[3], gc[3],
                       g[2] / g[3], gc[2] / gc[3]);
            fflush(stdout);
            (void)mname;
            free(x), free(y), free(row), free(w);
        }
    }
    return 0;
}
