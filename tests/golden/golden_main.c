/* golden_main.c - zimage-golden: run every golden case of a fixtures directory.
 *
 * usage: zimage-golden [-t threads] [-k case-substring] [--precision f32|bf16|int8] FIXTURES_DIR
 * Each case is dispatched on its manifest's "kind" (golden_kinds.c); an unknown
 * kind FAILs. Exit status is non-zero if any case failed or if no case ran at all.
 * Last line: "golden: N passed, N failed". The rules are listed in golden.h. */
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/common/error.h"
#include "../../src/io/json.h"
#include "../../src/kernels/kernels.h"
#include "golden.h"

int golden_model_path(golden_case *c, const char *variant, char *out, size_t cap) {
    json_t *m = json_object_get(json_object_get(c->manifest, "models"), variant);
    if (!json_is_string(m)) return zi_err("%s: manifest has no models.%s", c->name, variant);
    snprintf(out, cap, "%s/%s", c->fixtures, json_string_value(m));
    return 0;
}

const zi_tensor *golden_find(golden_case *c, const char *name) {
    const zi_tensor *t = zi_st_find(&c->st, name);
    if (t && c->used) c->used[t - c->st.tensors] = 1;
    return t;
}

const zi_tensor *golden_tensor(golden_case *c, const char *name) {
    const zi_tensor *t = golden_find(c, name);
    if (!t) zi_err("%s: golden tensor '%s' missing", c->name, name);
    return t;
}

const zi_tensor *golden_input(golden_case *c, const char *name) { return golden_tensor(c, name); }

int golden_fail(golden_case *c, const char *label, const char *fmt, ...) {
    va_list ap;
    c->n_checked++;
    c->n_failed++;
    printf("  FAIL %-28s %-34s ", c->name, label);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    return GOLDEN_FAIL;
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
    if (!(*atol >= 0 && *atol < 1e30) || !(*rtol >= 0 && *rtol < 1e30)) { /* negative tolerances pass nothing */
        golden_fail(c, "tolerance", "atol %g / rtol %g must be finite and >= 0", *atol, *rtol);
        *atol = *rtol = 0;
    }
}

json_t *golden_param(golden_case *c, const char *key) {
    return json_object_get(json_object_get(c->manifest, "params"), key);
}

int golden_param_int(golden_case *c, const char *key, int index, long long lo, long long hi, long long *out) {
    json_t *v = golden_param(c, key);
    if (index >= 0) v = json_array_get(v, (size_t)index);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        char label[128];
        snprintf(label, sizeof label, index >= 0 ? "params.%s[%d]" : "params.%s", key, index);
        golden_fail(c, label, "missing or not an integer in [%lld, %lld]", lo, hi);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

void golden_note(golden_case *c, const char *fmt, ...) {
    va_list ap;
    printf("  note %s: ", c->name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

int golden_bf16 = 0, golden_int8 = 0;

double golden_bf16_bound(int stages) { return sqrt((double)(stages > 0 ? stages : GOLDEN_BF16_STAGES)) / 256.0; }

int golden_check_vals(golden_case *c, const char *label, const float *got, const float *want, int64_t n,
                      double atol, double rtol) {
    c->n_checked++;
    double maxerr = 0, worst_ratio = 0, floor = 0;
    if (golden_bf16) { /* bf16 mode: GOLDEN_BF16_BOUND of the tensor's largest magnitude (golden.h) */
        for (int64_t i = 0; i < n; i++)
            if (isfinite(want[i]) && fabs((double)want[i]) > floor) floor = fabs((double)want[i]);
        floor *= golden_int8 ? GOLDEN_INT8_BOUND : golden_bf16_bound(c->bf16_stages);
    }
    int64_t bad = 0, worst = 0, nonfinite = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(got[i]) || !isfinite(want[i])) { /* NaN/Inf on either side never matches */
            if (!nonfinite++) worst = i;
            bad++;
            continue;
        }
        double e = fabs((double)got[i] - (double)want[i]);
        double lim = atol + rtol * fabs((double)want[i]);
        if (lim < floor) lim = floor;
        if (e > maxerr) maxerr = e;
        double ratio = lim > 0 ? e / lim : (e > 0 ? INFINITY : 0);
        if (!nonfinite && ratio > worst_ratio) {
            worst_ratio = ratio;
            worst = i;
        }
        if (e > lim) bad++;
    }
    int fail = bad > 0 || n <= 0;
    printf("  %s %-28s %-34s max_abs_err %.3g (%.2f of tolerance)", fail ? "FAIL" : "ok  ", c->name, label, maxerr,
           worst_ratio);
    if (n <= 0) printf("  nothing to compare");
    if (nonfinite) printf("  %lld NaN/Inf values", (long long)nonfinite);
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
    if (!want) return golden_fail(c, name, "cannot read the golden: %s", zi_last_error());
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
    if (golden_bf16) { /* bf16 mode (golden.h): up to ceil(255 * bound) levels, any number of values */
        int lim = (int)ceil(255.0 * golden_bf16_bound(c->bf16_stages));
        if (max_diff < lim) max_diff = lim;
        frac = 1.0;
    }
    int md = 0;
    int64_t ndiff = 0;
    for (int64_t i = 0; i < n; i++) {
        int d = abs((int)got[i] - (int)want[i]);
        if (d > md) md = d;
        if (d) ndiff++;
    }
    int fail = n <= 0 || md > max_diff || (double)ndiff > frac * (double)n;
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
    if (n <= 0) bad = 1;
    printf("  %s %-28s %-34s %lld of %lld ids differ\n", bad ? "FAIL" : "ok  ", c->name, name, (long long)bad,
           (long long)n);
    if (bad) c->n_failed++;
    return bad != 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* manifest "models": an object of variant -> path strings (may be empty for model-free kinds). */
static int case_variants(golden_case *c) {
    json_t *models = json_object_get(c->manifest, "models");
    if (!models) return 0;
    if (!json_is_object(models)) return zi_err("manifest \"models\" is not an object");
    const char *key;
    json_t *v;
    json_object_foreach(models, key, v) {
        if (!json_is_string(v)) return zi_err("manifest models.%s is not a path string", key);
        if (c->n_variants == GOLDEN_MAX_VARIANTS) return zi_err("manifest lists more than %d models", GOLDEN_MAX_VARIANTS);
        c->variants[c->n_variants++] = key;
    }
    return 0;
}

/* Every tensor of the case must have been compared or declared an input. */
static int case_leftovers(golden_case *c) {
    int n = 0;
    for (int i = 0; i < c->st.n_tensors; i++)
        if (!c->used[i]) {
            if (!n++) printf("  FAIL %-28s tensors neither compared nor declared inputs:\n", c->name);
            printf("         %s\n", c->st.tensors[i].name);
        }
    if (n) {
        c->n_checked++;
        c->n_failed++;
    }
    return n;
}

/* One manifest; 1 pass, 0 fail. */
static int run_case(const char *dir, const char *gdir, const char *file_json, const char *name) {
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", gdir, file_json);
    golden_case c = {0};
    c.fixtures = dir;
    c.name = name;
    zi_err_clear();
    c.manifest = zi_json_load_file(path);
    if (!c.manifest) {
        printf("FAIL %s: %s\n", name, zi_last_error());
        return 0;
    }
    const char *kind = json_string_value(json_object_get(c.manifest, "kind"));
    const char *file = json_string_value(json_object_get(c.manifest, "file"));
    int (*run)(golden_case *) = NULL;
    for (const golden_kind *k = golden_kinds; kind && k->kind; k++)
        if (!strcmp(k->kind, kind)) run = k->run;
    printf("== %s (%s)\n", name, kind ? kind : "?");
    int ok = 0;
    if (!run) {
        printf("FAIL %s: unknown kind '%s' (known kinds: see tests/golden/golden_kinds.c)\n", name,
               kind ? kind : "(none)");
        goto done;
    }
    if (case_variants(&c) != 0) {
        printf("FAIL %s: %s\n", name, zi_last_error());
        goto done;
    }
    snprintf(path, sizeof path, "%s/%s", gdir, file ? file : "");
    if (!file || zi_st_open(&c.st, path) != 0) {
        printf("FAIL %s: %s\n", name, file ? zi_last_error() : "manifest has no \"file\"");
        goto done;
    }
    c.used = calloc((size_t)c.st.n_tensors + 1, 1);
    /* bf16 mode: text encoder, DiT and VAE in bf16 (as the pipeline runs them by default); int8:
     * the GGUF DiT cases only, quantized matmuls on the int8 GEMM */
    kn_set_precision(golden_bf16 ? (golden_int8 ? KN_PREC_INT8 : KN_PREC_BF16) : KN_PREC_F32);
    zi_err_clear();
    int r = run(&c);
    case_leftovers(&c);
    if (r != GOLDEN_PASS || c.n_failed > 0 || c.n_checked == 0) {
        printf("FAIL %s%s%s%s\n", name, zi_last_error()[0] ? ": " : "", zi_last_error(),
               c.n_checked == 0 ? " (nothing was checked)" : "");
    } else {
        printf("PASS %s (%d tensors)\n", name, c.n_checked);
        ok = 1;
    }
    free(c.used);
    zi_st_close(&c.st);
done:
    json_decref(c.manifest);
    return ok;
}

int main(int argc, char **argv) {
    const char *filter = NULL, *dir = NULL;
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-k") && i + 1 < argc)
            filter = argv[++i];
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc && !strcmp(argv[i + 1], "bf16"))
            golden_bf16 = 1, i++;
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc && !strcmp(argv[i + 1], "int8"))
            golden_bf16 = golden_int8 = 1, i++;
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc && !strcmp(argv[i + 1], "f32"))
            golden_bf16 = 0, i++;
        else if (argv[i][0] == '-' || dir) {
            fprintf(stderr, "usage: zimage-golden [-t threads] [-k case-substring] [--precision f32|bf16|int8] FIXTURES_DIR\n");
            return 2;
        } else
            dir = argv[i];
    }
    if (!dir) {
        fprintf(stderr, "usage: zimage-golden [-t threads] [-k case-substring] [--precision f32|bf16|int8] FIXTURES_DIR\n");
        return 2;
    }
    kn_set_threads(threads);
    int n_pass = 0, n_fail = 0;

    /* tokenizer_cases.json is a case of its own (name "tokenizer_cases") */
    if (!golden_int8 && (!filter || strstr("tokenizer_cases", filter))) {
        printf("== tokenizer_cases\n");
        golden_run_tokenizer(dir, &n_pass, &n_fail);
    }

    char gdir[4096];
    snprintf(gdir, sizeof gdir, "%s/golden", dir);
    DIR *d = opendir(gdir);
    if (!d) {
        fprintf(stderr, "zimage-golden: cannot open %s\n", gdir);
        return 2;
    }
    char **names = NULL;
    int n_names = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l <= 5 || strcmp(de->d_name + l - 5, ".json")) continue;
        if (n_names == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, sizeof *names * (size_t)cap);
            if (!nn) {
                fprintf(stderr, "zimage-golden: out of memory\n");
                return 2;
            }
            names = nn;
        }
        names[n_names++] = strdup(de->d_name);
    }
    closedir(d);
    if (n_names) qsort(names, (size_t)n_names, sizeof *names, cmp_str);

    for (int i = 0; i < n_names; i++) {
        char name[1024];
        snprintf(name, sizeof name, "%.*s", (int)(strlen(names[i]) - 5) & 1023, names[i]);
        if ((!filter || strstr(name, filter)) && (!golden_int8 || !strncmp(name, "gguf_dit_", 9))) {
            if (run_case(dir, gdir, names[i], name))
                n_pass++;
            else
                n_fail++;
        }
        free(names[i]);
    }
    free(names);
    printf("%s: %d passed, %d failed\n", golden_int8 ? "golden-int8" : golden_bf16 ? "golden-bf16" : "golden", n_pass,
           n_fail);
    if (n_pass + n_fail == 0) {
        printf("golden: FAIL: no case ran (%s)\n", filter ? "-k matched nothing" : "no manifests in golden/");
        return 1;
    }
    return n_fail ? 1 : 0;
}
