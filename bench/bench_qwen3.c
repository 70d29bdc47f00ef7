/* bench_qwen3.c - speed of the Qwen3 text encoder (prefill of n tokens -> hidden_states[-2]).
 *
 * usage: bench_qwen3 TEXT_ENCODER_DIR [-t threads] [n1 n2 ...]   (default lengths 16 100 512)
 *
 * Encodes random token ids (fixed seed) of each length; prints the median of 3 runs
 * (1 run for n >= 512), tokens/s, the achieved GFLOP/s (matmuls + attention, multiply-add
 * = 2 FLOPs) and the peak RSS. Use tools/mkrandom_qwen3 for a full-size random model. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "../src/common/error.h"
#include "../src/kernels/kernels.h"
#include "../src/text/qwen3.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* Linux: kilobytes */
}

/* FLOPs of one encode of n tokens over the layers actually run (n_layers - 1). */
static double encode_flops(const zi_qwen3_config *c, double n) {
    double H = c->hidden, QD = (double)c->n_heads * c->head_dim, KD = (double)c->n_kv_heads * c->head_dim;
    double I = c->intermediate;
    double lin = 2.0 * n * (H * QD + 2 * H * KD + QD * H + 3 * H * I);
    double att = 2.0 * 2.0 * c->n_heads * c->head_dim * (n * (n + 1) / 2); /* QK^T and PV, causal */
    return (c->n_layers - 1) * (lin + att);
}

int main(int argc, char **argv) {
    const char *dir = NULL;
    int lens[16], n_lens = 0, threads = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!dir)
            dir = argv[i];
        else if (n_lens < 16 && atoi(argv[i]) > 0)
            lens[n_lens++] = atoi(argv[i]);
    }
    if (!dir) {
        fprintf(stderr, "usage: bench_qwen3 TEXT_ENCODER_DIR [-t threads] [n1 n2 ...]\n");
        return 2;
    }
    if (n_lens == 0) {
        lens[0] = 16;
        lens[1] = 100;
        lens[2] = 512;
        n_lens = 3;
    }
    kn_set_threads(threads);

    double t0 = now_s();
    zi_qwen3 *m = NULL;
    if (zi_qwen3_load(&m, dir) != 0) {
        fprintf(stderr, "bench_qwen3: %s\n", zi_last_error());
        return 1;
    }
    const zi_qwen3_config *c = zi_qwen3_get_config(m);
    printf("qwen3 %s: hidden %d, %d layers (running %d), heads %d/%d x %d, intermediate %d, threads %d, load %.3f s\n",
           dir, c->hidden, c->n_layers, c->n_layers - 1, c->n_heads, c->n_kv_heads, c->head_dim, c->intermediate,
           kn_get_threads(), now_s() - t0);

    int max_n = 0;
    for (int i = 0; i < n_lens; i++)
        if (lens[i] > max_n) max_n = lens[i];
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)max_n);
    float *out = malloc(sizeof(float) * (size_t)max_n * (size_t)c->hidden);
    if (!ids || !out) return 1;
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    int regular = c->vocab < 151643 ? c->vocab : 151643; /* regular (non-special) token ids */
    for (int i = 0; i < max_n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((seed >> 33) % (uint64_t)regular);
    }

    int rc = 0;
    for (int li = 0; li < n_lens && rc == 0; li++) {
        int n = lens[li], reps = n >= 512 ? 1 : 3;
        double t[3];
        for (int r = 0; r < reps; r++) {
            double a = now_s();
            if (zi_qwen3_encode(m, ids, n, out) != 0) {
                fprintf(stderr, "bench_qwen3: %s\n", zi_last_error());
                rc = 1;
                break;
            }
            t[r] = now_s() - a;
        }
        if (rc) break;
        qsort(t, (size_t)reps, sizeof *t, cmp_double);
        double med = t[reps / 2];
        int finite = 1;
        for (int64_t i = 0; i < (int64_t)n * c->hidden; i++)
            if (!(out[i] == out[i]) || out[i] > 3e38f || out[i] < -3e38f) finite = 0;
        printf("n=%4d: %8.3f s (%s of %d)  %8.1f tokens/s  %6.1f GFLOP/s  peak RSS %.0f MB%s\n", n, med,
               reps > 1 ? "median" : "1 run", reps, n / med, encode_flops(c, n) / med / 1e9, peak_rss_mb(),
               finite ? "" : "  (NON-FINITE OUTPUT)");
        fflush(stdout);
    }
    free(ids);
    free(out);
    zi_qwen3_free(m);
    return rc;
}
