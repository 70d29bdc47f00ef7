/* bench_tokenizer.c - tokenizer speed: load time and encode throughput.
 *
 * usage: bench_tokenizer [FIXTURES_DIR]   (default tests/fixtures)
 * Loads <fixtures>/tiny-zimage/tokenizer/tokenizer.json 5 times (median), then
 * encodes ~2 MB of mixed English/Chinese/... text built by repeating the
 * strings of tokenizer_cases.json: once as one big call, and once as many
 * prompt-sized calls (no reuse of the per-call BPE cache across calls). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/common/error.h"
#include "../src/text/tokenizer.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    const char *fx = argc > 1 ? argv[1] : "tests/fixtures";
    char path[4096];
    snprintf(path, sizeof path, "%s/tiny-zimage/tokenizer/tokenizer.json", fx);
    zi_tokenizer *tok = NULL;
    double t_load[5];
    for (int i = 0; i < 5; i++) {
        if (tok) zi_tokenizer_free(tok);
        double t0 = now();
        if (zi_tokenizer_load(&tok, path)) {
            fprintf(stderr, "bench_tokenizer: %s\n", zi_last_error());
            return 1;
        }
        t_load[i] = now() - t0;
    }
    qsort(t_load, 5, sizeof *t_load, cmp_d);
    printf("load %s: median %.1f ms (min %.1f, max %.1f)\n", path, 1e3 * t_load[2], 1e3 * t_load[0],
           1e3 * t_load[4]);

    /* the fixture strings */
    snprintf(path, sizeof path, "%s/tokenizer_cases.json", fx);
    json_error_t e;
    json_t *doc = json_load_file(path, JSON_ALLOW_NUL, &e);
    json_t *cases = json_object_get(doc, "cases");
    if (!json_is_array(cases)) {
        fprintf(stderr, "bench_tokenizer: %s: %s\n", path, doc ? "no cases" : e.text);
        return 1;
    }
    size_t nc = json_array_size(cases), target = 2u << 20, len = 0, cap = target + 4096;
    char *text = malloc(cap);
    size_t *starts = malloc(sizeof *starts * (target / 2 + 1)), n_parts = 0;
    size_t n_cjk = 0;
    for (size_t k = 0; len < target; k++) {
        json_t *t = json_object_get(json_array_get(cases, k % nc), "text");
        size_t l = json_string_length(t);
        if (!l || len + l + 1 > cap) continue;
        starts[n_parts++] = len;
        memcpy(text + len, json_string_value(t), l);
        for (size_t i = 0; i < l; i++) n_cjk += (unsigned char)text[len + i] >= 0xE0;
        len += l;
        text[len++] = '\n';
    }
    starts[n_parts] = len;
    printf("text: %.2f MB, %zu strings, %.0f%% of bytes are lead bytes of 3/4-byte UTF-8 characters\n", len / 1e6,
           n_parts, 100.0 * (double)n_cjk / (double)len);

    /* one call */
    int32_t *ids = NULL;
    int n = 0;
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        free(ids);
        double t0 = now();
        if (zi_tokenizer_encode(tok, text, len, &ids, &n)) {
            fprintf(stderr, "bench_tokenizer: %s\n", zi_last_error());
            return 1;
        }
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    printf("encode, one %.2f MB call: %.1f ms, %.1f MB/s, %.2f M tokens/s (%d tokens)\n", len / 1e6, 1e3 * best,
           len / 1e6 / best, n / 1e6 / best, n);
    free(ids);

    /* prompt-sized calls */
    best = 1e30;
    long long ntok = 0;
    for (int r = 0; r < 3; r++) {
        ntok = 0;
        double t0 = now();
        for (size_t p = 0; p < n_parts; p++) {
            if (zi_tokenizer_encode(tok, text + starts[p], starts[p + 1] - starts[p], &ids, &n)) {
                fprintf(stderr, "bench_tokenizer: %s\n", zi_last_error());
                return 1;
            }
            ntok += n;
            free(ids);
        }
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    printf("encode, %zu separate calls (avg %.0f bytes): %.1f ms, %.1f MB/s, %.2f M tokens/s\n", n_parts,
           (double)len / (double)n_parts, 1e3 * best, len / 1e6 / best, (double)ntok / 1e6 / best);

    /* decode */
    zi_tokenizer_encode(tok, text, len, &ids, &n);
    double t0 = now();
    char *dec = zi_tokenizer_decode(tok, ids, n);
    double dt = now() - t0;
    printf("decode %d tokens: %.1f ms, %.1f MB/s\n", n, 1e3 * dt, len / 1e6 / dt);
    free(dec);
    free(ids);
    free(starts);
    free(text);
    json_decref(doc);
    zi_tokenizer_free(tok);
    return 0;
}
