/* golden_torch_randn.c - golden cases of kind "torch_randn".
 *
 * Every tensor key is "seed{S}_{d0}x{d1}x...": torch.manual_seed(S);
 * torch.randn(shape) on the CPU. We parse S and the shape from the key, run
 * zi_randn and compare (atol 1e-5, rtol 0), and note how many values are
 * bit-exact. The fixtures only hold multiples of 16 values, so we also check a
 * few widely published 4-decimal torch outputs for n < 16 (torch's scalar
 * double path) and n = 16. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/common/error.h"
#include "../../src/sampling/randn.h"
#include "golden.h"

/* "seed42_1x16x8x8" -> seed 42, numel 2048. Returns 0 or -1. */
static int randn_parse_key(const char *key, uint64_t *seed, int64_t *numel) {
    if (strncmp(key, "seed", 4) != 0) return -1;
    char *end;
    unsigned long long s = strtoull(key + 4, &end, 10);
    if (end == key + 4 || *end != '_') return -1;
    int64_t n = 1;
    const char *p = end + 1;
    for (;;) {
        long long d = strtoll(p, &end, 10);
        if (end == p || d <= 0 || d > (1LL << 31) || n > (INT64_C(1) << 40) / d) return -1;
        n *= d;
        if (*end == 0) break;
        if (*end != 'x') return -1;
        p = end + 1;
    }
    *seed = s;
    *numel = n;
    return 0;
}

/* Well-known printed outputs of torch.manual_seed(S); torch.randn(n) (4 decimals). */
static void randn_check_published(golden_case *c) {
    static const struct {
        uint64_t seed;
        int n;
        float v[16];
    } pub[] = {
        {0, 5, {1.5410f, -0.2934f, -2.1788f, 0.5684f, -1.0845f}},
        {42, 6, {0.3367f, 0.1288f, 0.2345f, 0.2303f, -1.1229f, -0.1863f}},
        {0, 16, {-1.1258f, -1.1524f, -0.2506f, -0.4339f, 0.8487f, 0.6920f, -0.3160f, -2.1152f, 0.3223f, -1.2633f,
                 0.3500f, 0.3081f, 0.1198f, 1.2377f, 1.1168f, -0.2473f}},
    };
    for (size_t i = 0; i < sizeof pub / sizeof pub[0]; i++) {
        float got[16];
        zi_randn(pub[i].seed, got, pub[i].n);
        double maxerr = 0;
        for (int k = 0; k < pub[i].n; k++) {
            double e = (double)got[k] - (double)pub[i].v[k];
            if (e < 0) e = -e;
            if (!(e <= maxerr)) maxerr = e;
        }
        int fail = !(maxerr <= 5.1e-5);
        char name[64];
        snprintf(name, sizeof name, "published seed%" PRIu64 " n=%d", pub[i].seed, pub[i].n);
        printf("  %s %-28s %-34s max_abs_err %.3g (4-decimal reference)\n", fail ? "FAIL" : "ok  ", c->name, name,
               maxerr);
        c->n_checked++;
        if (fail) c->n_failed++;
    }
}

int golden_run_torch_randn(golden_case *c) {
    randn_check_published(c);
    double atol = 1e-5, rtol = 0;
    golden_tol(c, &atol, &rtol);
    int n_keys = 0;
    for (int i = 0; i < c->st.n_tensors; i++) {
        const zi_tensor *t = &c->st.tensors[i];
        uint64_t seed;
        int64_t n;
        if (randn_parse_key(t->name, &seed, &n) != 0) continue; /* not a randn key: a leftover */
        n_keys++;
        if (n != t->numel) {
            golden_fail(c, t->name, "key names %" PRId64 " values, tensor has %" PRId64, n, t->numel);
            golden_find(c, t->name);
            continue;
        }
        float *got = zi_malloc((size_t)n * sizeof *got);
        float *want = zi_tensor_to_f32(t);
        if (!got || !want) {
            free(got);
            free(want);
            return golden_fail(c, t->name, "%s", zi_last_error());
        }
        zi_randn(seed, got, n);
        golden_check(c, t->name, got, n, atol, rtol);
        int64_t exact = 0;
        for (int64_t k = 0; k < n; k++) exact += memcmp(&got[k], &want[k], sizeof(float)) == 0;
        golden_note(c, "%s: %" PRId64 " of %" PRId64 " values bit-exact (%.1f%%)", t->name, exact, n,
                    100.0 * (double)exact / (double)n);
        free(got);
        free(want);
    }
    if (n_keys == 0) return golden_fail(c, "seed{S}_{shape}", "no such tensors in the case");
    return c->n_failed ? GOLDEN_FAIL : GOLDEN_PASS;
}
