/* bench_smallm.c - small-M linear layers: the packed GEMM (impl->gemm: packed panels, or its GEMV
 * path for M <= 4) against the small-M GEMM (impl->gemm_smallm, gemm_smallm_impl.h) on the same
 * data, alternating the two in one run (A B A B ...) so both see the same machine load.
 *
 *   build/bench_smallm [--reps N] [--threads N] [--isa P] [--bf16] [--dtype bf16|f32|f16|q8_0|q4_0]
 *                      [--shapes M,K,N:M,K,N:...] [--m-sweep K,N]
 *
 * Prints the fp32 FMA peak (AVX2 register loop) and the read bandwidth of a 512 MiB buffer, both
 * measured here, then per shape: median ms per call of each kernel, GFLOP/s, GB/s of weights
 * streamed, the speed-up, and the max relative difference of the two outputs. Weights rotate
 * through copies totalling >= 256 MiB so each call streams them from DRAM (as the text encoder,
 * 8 GB read once, does), not from the L3 cache. */
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
#include "../src/kernels/impl.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds of all threads of this process (run with OMP_WAIT_POLICY=passive so idle threads
 * do not spin): on a machine shared with other jobs, work per CPU-second is the kernel's own speed. */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float urand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static volatile float sink;

#if defined(__x86_64__)
__attribute__((target("avx2,fma")))
#endif
static double peak_fp32_avx2(int T) {
#if defined(__x86_64__)
    long iters = 50 * 1000 * 1000;
    double t0 = now_s();
#pragma omp parallel num_threads(T)
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
        sink = t[0] + t[7];
    }
    return (double)iters * 12 * 8 * 2 * T / (now_s() - t0) * 1e-9;
#else
    (void)T;
    return 0;
#endif
}

/* GB/s reading a 512 MiB buffer (T threads, 64-bit adds the compiler vectorizes); median of 5. */
static double read_bandwidth(int T) {
    size_t n = (size_t)64 << 20; /* uint64 words */
    uint64_t *b = malloc(n * sizeof *b);
    if (!b) return 0;
    for (size_t i = 0; i < n; i++) b[i] = i;
    double t[5];
    for (int r = 0; r < 5; r++) {
        uint64_t s = 0;
        double t0 = now_s();
#pragma omp parallel for num_threads(T) reduction(+ : s) schedule(static)
        for (size_t i = 0; i < n; i++) s += b[i];
        t[r] = now_s() - t0;
        sink = (float)s;
    }
    free(b);
    return (double)n * 8 / median(t, 5) * 1e-9;
}

typedef int (*gemm_fn)(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M, int64_t N, int64_t K,
                       const kn_wsrc *B, const float *bias, int acc, int bf16, int T);

static void run_shape(int64_t M, int64_t K, int64_t N, zi_dtype dt, int bf16, int reps, int T) {
    const kn_impl *im = kn_impl_get();
    size_t rowb = zi_dtype_row_bytes(dt, K), wb = rowb * (size_t)N;
    int ncopy = getenv("SM_HOT") ? 1 : (int)(((size_t)256 << 20) / wb) + 1; /* SM_HOT: weights stay in cache */
    float *row = malloc(sizeof(float) * (size_t)K);
    char *w = malloc(wb * (size_t)ncopy);
    for (int64_t n = 0; n < N; n++) {
        for (int64_t k = 0; k < K; k++) row[k] = urand() * 0.05f;
        char *d = w + (size_t)n * rowb;
        if (dt == ZI_F32) memcpy(d, row, rowb);
        else if (dt == ZI_BF16) for (int64_t k = 0; k < K; k++) ((uint16_t *)d)[k] = zi_f32_to_bf16(row[k]);
        else if (dt == ZI_F16) for (int64_t k = 0; k < K; k++) ((uint16_t *)d)[k] = zi_f32_to_f16(row[k]);
        else zi_quantize_rows(dt, row, d, 1, K, NULL);
    }
    for (int c = 1; c < ncopy; c++) memcpy(w + (size_t)c * wb, w, wb);
    float *x = malloc(sizeof(float) * (size_t)(M * K)), *bias = malloc(sizeof(float) * (size_t)N);
    float *y0 = malloc(sizeof(float) * (size_t)(M * N)), *y1 = malloc(sizeof(float) * (size_t)(M * N));
    for (int64_t i = 0; i < M * K; i++) x[i] = urand();
    for (int64_t i = 0; i < N; i++) bias[i] = urand();
    gemm_fn fn[2] = {im->gemm, im->gemm_smallm};
    if (getenv("SM_SAME")) fn[0] = fn[1]; /* calibration: the same kernel twice */
    float *ys[2] = {y0, y1};
    double *t[2] = {malloc(sizeof(double) * (size_t)reps), malloc(sizeof(double) * (size_t)reps)};
    double *u[2] = {malloc(sizeof(double) * (size_t)reps), malloc(sizeof(double) * (size_t)reps)};
    int copy = 0;
    for (int r = -1; r < reps; r++)
        for (int a = 0; a < 2; a++) {
            kn_mat W = {.dtype = dt, .rows = N, .cols = K, .data = w + (size_t)copy * wb};
            copy = (copy + 1) % ncopy;
            kn_wsrc B = kn_wsrc_of_mat(&W);
            double t0 = now_s(), c0 = cpu_s();
            if (fn[a](ys[a], N, x, K, M, N, K, &B, bias, 0, bf16, T)) {
                fprintf(stderr, "bench_smallm: %s\n", zi_last_error());
                exit(1);
            }
            if (r >= 0) t[a][r] = now_s() - t0, u[a][r] = cpu_s() - c0;
        }
    double diff = 0;
    for (int64_t i = 0; i < M * N; i++) {
        double d = fabs((double)y0[i] - y1[i]) / (fabs((double)y0[i]) + 1e-3);
        if (d > diff) diff = d;
    }
    double ta = median(t[0], reps), tb = median(t[1], reps), fl = 2.0 * M * N * K;
    double ua = median(u[0], reps), ub = median(u[1], reps);
    printf("%4lld %5lld %6lld %-5s %s | packed %7.3f ms %6.1f GF/s %5.1f GB/s %6.1f GF/cpu-s | small-M %7.3f ms %6.1f GF/s "
           "%5.1f GB/s %6.1f GF/cpu-s | x%.2f wall x%.2f cpu | diff %.1e\n",
           (long long)M, (long long)K, (long long)N, zi_dtype_name(dt), bf16 ? "bf16" : "f32 ", ta * 1e3, fl / ta * 1e-9,
           wb / ta * 1e-9, fl / ua * 1e-9, tb * 1e3, fl / tb * 1e-9, wb / tb * 1e-9, fl / ub * 1e-9, ta / tb, ua / ub, diff);
    fflush(stdout);
    free(row), free(w), free(x), free(bias), free(y0), free(y1), free(t[0]), free(t[1]), free(u[0]), free(u[1]);
}

int main(int argc, char **argv) {
    int reps = 7, T = 2, bf16 = 0, nsh = 0, sweep = 0;
    int64_t sh[32][3], swK = 0, swN = 0;
    zi_dtype dt = ZI_BF16;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *nx = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--reps") && nx) reps = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && nx) T = atoi(argv[++i]);
        else if (!strcmp(a, "--bf16")) bf16 = 1;
        else if (!strcmp(a, "--isa") && nx) {
            kn_isa isa;
            if (kn_isa_parse(argv[++i], &isa) || !kn_isa_supported(isa, NULL)) {
                fprintf(stderr, "bench_smallm: path %s not available\n", argv[i]);
                return 2;
            }
            kn_set_isa(isa);
        } else if (!strcmp(a, "--dtype") && nx) {
            const char *d = argv[++i];
            dt = !strcmp(d, "f32") ? ZI_F32 : !strcmp(d, "f16") ? ZI_F16 : !strcmp(d, "q8_0") ? ZI_Q8_0
                 : !strcmp(d, "q4_0") ? ZI_Q4_0 : ZI_BF16;
        } else if (!strcmp(a, "--shapes") && nx) {
            const char *p = argv[++i];
            while (*p && nsh < 32) {
                long long m, k, n;
                int used;
                if (sscanf(p, "%lld,%lld,%lld%n", &m, &k, &n, &used) != 3) break;
                sh[nsh][0] = m, sh[nsh][1] = k, sh[nsh][2] = n, nsh++;
                p += used;
                if (*p == ':') p++;
            }
        } else if (!strcmp(a, "--m-sweep") && nx) {
            long long k, n;
            if (sscanf(argv[++i], "%lld,%lld", &k, &n) == 2) sweep = 1, swK = k, swN = n;
        } else {
            fprintf(stderr, "usage: %s [--reps N] [--threads N] [--isa P] [--bf16] [--dtype bf16|f32|f16|q8_0|q4_0] "
                            "[--shapes M,K,N:...] [--m-sweep K,N]\n", argv[0]);
            return 2;
        }
    }
    if (sweep) {
        static const int ms[] = {1, 2, 4, 5, 8, 12, 16, 20, 24, 32, 40, 48, 64};
        for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) sh[nsh][0] = ms[i], sh[nsh][1] = swK, sh[nsh][2] = swN, nsh++;
    }
    if (!nsh) {
        static const int64_t def[][3] = {{20, 2560, 9728}, {20, 9728, 2560}, {20, 2560, 4096}, {20, 4096, 2560},
                                         {20, 2560, 1024}, {1, 256, 15360}, {1, 3840, 3840}};
        for (size_t i = 0; i < sizeof def / sizeof def[0]; i++) memcpy(sh[nsh++], def[i], sizeof def[i]);
    }
    if (reps < 1) reps = 1;
    printf("path %s, %d threads, %d reps (median), %s mode\n", kn_kernel_name(), T, reps, bf16 ? "bf16" : "f32");
    printf("measured: fp32 FMA peak (AVX2 loop) %.1f GFLOP/s, read bandwidth %.1f GB/s\n", peak_fp32_avx2(T),
           read_bandwidth(T));
    printf("   M     K      N dtype mode\n");
    for (int s = 0; s < nsh; s++) run_shape(sh[s][0], sh[s][1], sh[s][2], dt, bf16, reps, T);
    return 0;
}
