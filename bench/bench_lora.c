/* bench_lora.c - memory and time of merging a LoRA into the DiT at load (PERF.md).
 *
 *   build/bench_lora TRANSFORMER_DIR [LORA.safetensors]
 * Loads the DiT, applies the LoRA (if given), then reads every byte of every weight matrix
 * once (as a forward pass would) and prints the merge time and the resident memory (VmRSS)
 * after load and after the read: with merging, the merged copies replace the mapped weights,
 * so the resident size should stay that of one copy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/common/error.h"
#include "../src/pipeline/lora.h"

static double rss_mib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double v = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) v = atof(line + 6) / 1024.0;
    if (f) fclose(f);
    return v;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static unsigned touch(const kn_mat *m) {
    const unsigned char *p = m->data;
    size_t n = (size_t)(m->rows * m->cols) * zi_dtype_size(m->dtype);
    unsigned s = 0;
    for (size_t i = 0; i < n; i += 64) s += p[i];
    return s;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_lora TRANSFORMER_DIR [LORA.safetensors]\n");
        return 2;
    }
    zi_dit *d;
    if (zi_dit_load(&d, argv[1])) {
        fprintf(stderr, "%s\n", zi_last_error());
        return 1;
    }
    double r0 = rss_mib(), t0 = now();
    if (argc > 2) {
        zimage_lora l = {argv[2], 1.0f};
        if (zi_lora_apply(d, NULL, &l, 1, 0, ZI_LORA_AUTO, NULL, NULL)) {
            fprintf(stderr, "%s\n", zi_last_error());
            return 1;
        }
    }
    double t1 = now(), r1 = rss_mib();
    unsigned s = 0;
    zi_dit_block *sets[3] = {d->noise_refiner, d->context_refiner, d->layers};
    int cnt[3] = {d->cfg.n_refiner, d->cfg.n_refiner, d->cfg.n_layers};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < cnt[k]; i++) {
            zi_dit_block *b = &sets[k][i];
            s += touch(&b->wq) + touch(&b->wk) + touch(&b->wv) + touch(&b->wo) + touch(&b->w1) + touch(&b->w2) +
                 touch(&b->w3);
            if (b->ada_w.data) s += touch(&b->ada_w);
        }
    printf("%s: merge %.2f s, RSS after load+merge %.0f MiB (before merge %.0f), after reading all weights %.0f MiB "
           "(checksum %u)\n",
           argc > 2 ? argv[2] : "no LoRA", t1 - t0, r1, r0, rss_mib(), s);
    zi_dit_free(d);
    return 0;
}
