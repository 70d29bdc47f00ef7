/* golden_main.c - zimage-golden: run every golden case of a fixtures directory.
 *
 * usage: zimage-golden [-t threads] [-k case-substring] FIXTURES_DIR
 * Each case is discovered by its manifest's "kind"; kinds not implemented print
 * SKIP. Exit status is non-zero if any check failed. Last line:
 * "golden: N passed, N failed, N skipped". */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/common/error.h"
#include "../../src/io/json.h"
#include "../../src/kernels/kernels.h"
#include "golden.h"

typedef struct {
    const char *kind;
    int (*run)(golden_case *);
} golden_kind;

static const golden_kind kinds[] = {
    {"dit_forward", golden_run_dit_forward}, {"rope", golden_run_rope},
    {"qwen3", golden_run_qwen3},             {"scheduler", golden_run_scheduler},
    {"torch_randn", golden_run_torch_randn}, {"vae_decode", golden_run_vae_decode},
    {"vae_encode", golden_run_vae_encode},   {"end_to_end", golden_run_end_to_end},
};

int golden_model_path(golden_case *c, const char *variant, char *out, size_t cap) {
    json_t *m = json_object_get(json_object_get(c->manifest, "models"), variant);
    if (!json_is_string(m)) return zi_err("%s: manifest has no models.%s", c->name, variant);
    snprintf(out, cap, "%s/%s", c->fixtures, json_string_value(m));
    return 0;
}

const zi_tensor *golden_tensor(golden_case *c, const char *name) {
    const zi_tensor *t = zi_st_find(&c->st, name);
    if (!t) zi_err("%s: golden tensor '%s' missing", c->name, name);
    return t;
}

float *golden_f32(golden_case *c, const char *name, int64_t *numel) {
    const zi_tensor *t = golden_tensor(c, name);
    if (!t) return NULL;
    if (numel) *numel = t->numel;
    return zi_tensor_to_f32(t);
}

void golden_tol(golden_case *c, double *atol, double *rtol) {
    json_t *t = json_object_get(c->manifest, "tolerance");
    json_t *a = json_object_get(t, "atol"), *r = json_object_get(t, "rtol");
    if (json_is_number(a)) *atol = json_number_value(a);
    if (json_is_number(r)) *rtol = json_number_value(r);
}

json_t *golden_param(golden_case *c, const char *key) {
    return json_object_get(json_object_get(c->manifest, "params"), key);
}

void golden_note(golden_case *c, const char *fmt, ...) {
    va_list ap;
    printf("  note %s: ", c->name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

int golden_check_vals(golden_case *c, const char *label, const float *got, const float *want, int64_t n,
                      double atol, double rtol) {
    c->n_checked++;
    double maxerr = 0, worst_ratio = 0;
    int64_t bad = 0, worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = (double)got[i] - (double)want[i];
        if (e < 0) e = -e;
        if (got[i] != got[i]) e = 1e30; /* NaN */
        double lim = atol + rtol * (want[i] < 0 ? -want[i] : want[i]);
        if (e > maxerr) maxerr = e;
        if (e / lim > worst_ratio) {
            worst_ratio = e / lim;
            worst = i;
        }
        if (e > lim) bad++;
    }
    int fail = bad > 0 || n == 0;
    printf("  %s %-28s %-34s max_abs_err %.3g (%.2f of tolerance)", fail ? "FAIL" : "ok  ", c->name, label, maxerr,
           worst_ratio);
    if (bad) printf("  %lld bad, worst at %lld: got %.7g want %.7g", (long long)bad, (long long)worst,
                    (double)got[worst], (double)want[worst]);
    printf("\n");
    if (fail) c->n_failed++;
    return fail;
}

int golden_check(golden_case *c, const char *name, const float *got, int64_t n, double atol, double rtol) {
    const zi_tensor *t = golden_tensor(c, name);
    if (!t || t->numel != n) {
        c->n_checked++;
        printf("  FAIL %-28s %-34s %s\n", c->name, name, t ? "element count differs" : "golden tensor missing");
        c->n_failed++;
        return 1;
    }
    float *want = zi_tensor_to_f32(t);
    int r = golden_check_vals(c, name, got, want, n, atol, rtol);
    free(want);
    return r;
}

int golden_check_u8(golden_case *c, const char *name, const uint8_t *got, int64_t n, int max_diff, double frac) {
    c->n_checked++;
    const zi_tensor *t = golden_tensor(c, name);
    if (!t || t->numel != n || t->dtype != ZI_U8) {
        printf("  FAIL %-28s %-34s %s\n", c->name, name, t ? "size/dtype differs" : "golden tensor missing");
        c->n_failed++;
        return 1;
    }
    const uint8_t *want = t->data;
    int md = 0;
    int64_t ndiff = 0;
    for (int64_t i = 0; i < n; i++) {
        int d = abs((int)got[i] - (int)want[i]);
        if (d > md) md = d;
        if (d) ndiff++;
    }
    int fail = md > max_diff || (double)ndiff > frac * (double)n;
    printf("  %s %-28s %-34s max_diff %d, %lld of %lld values differ\n", fail ? "FAIL" : "ok  ", c->name, name, md,
           (long long)ndiff, (long long)n);
    if (fail) c->n_failed++;
    return fail;
}

int golden_check_i32(golden_case *c, const char *name, const int32_t *got, int64_t n) {
    c->n_checked++;
    const zi_tensor *t = golden_tensor(c, name);
    if (!t || t->numel != n || t->dtype != ZI_I32) {
        printf("  FAIL %-28s %-34s %s\n", c->name, name, t ? "size/dtype differs" : "golden tensor missing");
        c->n_failed++;
        return 1;
    }
    const int32_t *want = t->data;
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += got[i] != want[i];
    printf("  %s %-28s %-34s %lld of %lld ids differ\n", bad ? "FAIL" : "ok  ", c->name, name, (long long)bad,
           (long long)n);
    if (bad) c->n_failed++;
    return bad != 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
    const char *filter = NULL, *dir = NULL;
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-k") && i + 1 < argc)
            filter = argv[++i];
        else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: zimage-golden [-t threads] [-k case-substring] FIXTURES_DIR\n");
            return 2;
        } else
            dir = argv[i];
    }
    if (!dir) {
        fprintf(stderr, "usage: zimage-golden [-t threads] [-k case-substring] FIXTURES_DIR\n");
        return 2;
    }
    kn_set_threads(threads);
    int n_pass = 0, n_fail = 0, n_skip = 0;

    if (!filter || strstr("tokenizer", filter)) {
        printf("== tokenizer_cases\n");
        int r = golden_run_tokenizer(dir, &n_pass, &n_fail);
        if (r == GOLDEN_SKIP) {
            printf("SKIP tokenizer_cases (kind tokenizer not implemented or file absent)\n");
            n_skip++;
        }
    }

    char gdir[4096];
    snprintf(gdir, sizeof gdir, "%s/golden", dir);
    DIR *d = opendir(gdir);
    if (!d) {
        fprintf(stderr, "zimage-golden: cannot open %s\n", gdir);
        return 2;
    }
    char *names[1024];
    int n_names = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n_names < 1024) {
        size_t l = strlen(de->d_name);
        if (l > 5 && !strcmp(de->d_name + l - 5, ".json")) names[n_names++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n_names, sizeof *names, cmp_str);

    for (int i = 0; i < n_names; i++) {
        char path[8192], name[1024];
        snprintf(path, sizeof path, "%s/%s", gdir, names[i]);
        snprintf(name, sizeof name, "%.*s", (int)(strlen(names[i]) - 5) & 1023, names[i]);
        free(names[i]);
        if (filter && !strstr(name, filter)) continue;
        golden_case c = {0};
        c.fixtures = dir;
        c.name = name;
        c.manifest = zi_json_load_file(path);
        if (!c.manifest) {
            printf("FAIL %s: %s\n", name, zi_last_error());
            n_fail++;
            continue;
        }
        const char *kind = json_string_value(json_object_get(c.manifest, "kind"));
        const char *file = json_string_value(json_object_get(c.manifest, "file"));
        int (*run)(golden_case *) = NULL;
        for (size_t k = 0; kind && k < sizeof kinds / sizeof kinds[0]; k++)
            if (!strcmp(kinds[k].kind, kind)) run = kinds[k].run;
        printf("== %s (%s)\n", name, kind ? kind : "?");
        if (!run) {
            printf("SKIP %s: unknown kind '%s'\n", name, kind ? kind : "(none)");
            n_skip++;
            json_decref(c.manifest);
            continue;
        }
        snprintf(path, sizeof path, "%s/%s", gdir, file ? file : "");
        if (!file || zi_st_open(&c.st, path) != 0) {
            printf("FAIL %s: %s\n", name, file ? zi_last_error() : "manifest has no \"file\"");
            n_fail++;
            json_decref(c.manifest);
            continue;
        }
        zi_err_clear();
        int r = run(&c);
        if (r == GOLDEN_SKIP) {
            printf("SKIP %s: kind '%s' not implemented yet\n", name, kind);
            n_skip++;
        } else if (r == GOLDEN_FAIL || c.n_failed > 0 || c.n_checked == 0) {
            printf("FAIL %s%s%s\n", name, zi_last_error()[0] ? ": " : "", zi_last_error());
            n_fail++;
        } else {
            printf("PASS %s (%d tensors)\n", name, c.n_checked);
            n_pass++;
        }
        zi_st_close(&c.st);
        json_decref(c.manifest);
    }
    printf("golden: %d passed, %d failed, %d skipped\n", n_pass, n_fail, n_skip);
    return n_fail ? 1 : 0;
}
