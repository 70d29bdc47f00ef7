/* bench_quant.c - DiT output error of quantized checkpoints against a reference.
 *
 *   build/bench_quant REF_DIT DIT [DIT ...] [--hw N] [--cap N] [--threads N] [--precision f32|bf16|int8]
 *
 * Runs one DiT forward (t = 0.5, latent N x N, `cap` caption tokens; fixed random inputs) with
 * the reference checkpoint (e.g. the bf16 diffusers folder) and with each other checkpoint
 * (e.g. GGUFs written by `zimage quantize`), one model in memory at a time, and prints the
 * relative L2 error ||out - ref|| / ||ref||, the forward time and the peak RSS so far.
 * --precision: the kernels' mode for the compared checkpoints (the reference always runs in f32);
 * e.g. `bench_quant q4_0.gguf q4_0.gguf --precision int8` is the int8 mode's error alone. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "../src/common/error.h"
#include "../src/dit/dit.h"
#include "../src/kernels/kernels.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double peak_gib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / (1024.0 * 1024.0);
}

/* N(0,1) by Box-Muller over a xorshift stream */
static float randn(uint64_t *s) {
    double u[2];
    for (int i = 0; i < 2; i++) {
        *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
        u[i] = ((double)(*s >> 11) + 0.5) / 9007199254740992.0;
    }
    return (float)(sqrt(-2 * log(u[0])) * cos(6.283185307179586 * u[1]));
}

static int run(const char *path, int hw, int cap_len, float **out, double *secs) {
    zi_dit *m;
    if (zi_dit_load(&m, path)) return -1;
    int C = m->cfg.in_channels, D = m->cfg.cap_feat_dim;
    float *x = malloc(sizeof(float) * (size_t)C * hw * hw), *cap = malloc(sizeof(float) * (size_t)cap_len * D);
    *out = malloc(sizeof(float) * (size_t)C * hw * hw);
    uint64_t s = 42;
    for (int i = 0; i < C * hw * hw; i++) x[i] = randn(&s);
    for (int i = 0; i < cap_len * D; i++) cap[i] = randn(&s);
    double t0 = now();
    int rc = zi_dit_forward(m, x, hw, hw, 0.5f, cap, cap_len, *out, NULL, NULL);
    *secs = now() - t0;
    free(x);
    free(cap);
    zi_dit_free(m);
    return rc;
}

int main(int argc, char **argv) {
    int hw = 32, cap = 32, threads = 2, n_paths = 0;
    kn_precision prec = KN_PREC_F32;
    const char *paths[32];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--hw") && i + 1 < argc)
            hw = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--cap") && i + 1 < argc)
            cap = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc) {
            const char *p = argv[++i];
            prec = !strcmp(p, "int8") ? KN_PREC_INT8 : !strcmp(p, "bf16") ? KN_PREC_BF16 : KN_PREC_F32;
            if (strcmp(p, "int8") && strcmp(p, "bf16") && strcmp(p, "f32")) hw = -1;
        }
        else if (n_paths < 32)
            paths[n_paths++] = argv[i];
    }
    if (n_paths < 2 || hw < 2 || hw % 2 || cap < 1) {
        fprintf(stderr, "usage: bench_quant REF_DIT DIT [DIT ...] [--hw N] [--cap N] [--threads N] [--precision f32|bf16|int8]\n");
        return 2;
    }
    kn_set_threads(threads);
    float *ref, *o;
    double secs;
    if (run(paths[0], hw, cap, &ref, &secs)) {
        fprintf(stderr, "bench_quant: %s\n", zi_last_error());
        return 1;
    }
    int64_t n = (int64_t)16 * hw * hw;
    double rr = 0;
    for (int64_t i = 0; i < n; i++) rr += (double)ref[i] * ref[i];
    printf("%-60s forward %7.2f s  (reference)  peak RSS %.2f GiB\n", paths[0], secs, peak_gib());
    kn_set_precision(prec);
    for (int k = 1; k < n_paths; k++) {
        if (run(paths[k], hw, cap, &o, &secs)) {
            fprintf(stderr, "bench_quant: %s\n", zi_last_error());
            return 1;
        }
        double ee = 0;
        for (int64_t i = 0; i < n; i++) ee += ((double)o[i] - ref[i]) * ((double)o[i] - ref[i]);
        printf("%-60s forward %7.2f s  rel L2 %.3e  peak RSS %.2f GiB\n", paths[k], secs, sqrt(ee / rr), peak_gib());
        fflush(stdout);
        free(o);
    }
    free(ref);
    return 0;
}
