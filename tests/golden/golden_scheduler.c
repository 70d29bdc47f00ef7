/* golden_scheduler.c - golden cases of kind "scheduler".
 *
 * For every n in params.steps: n{n}.sigmas [n+1], .timesteps, .t_model,
 * .t_scaled and .dt [n], with the config the case names (models.any).
 * Also checks zi_sched_euler_step against the stored per-step latents of
 * e2e_turbo_fox_64x64 (README: the float32 update reproduces them bit-exactly). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/common/error.h"
#include "../../src/sampling/scheduler.h"
#include "golden.h"

/* z_{i+1} = z_i + dt*(-dit_out_i) must equal step{i}.latents exactly. */
static void sched_check_euler_e2e(golden_case *c, const float *sig) {
    char path[4096];
    snprintf(path, sizeof path, "%s/golden/e2e_turbo_fox_64x64.safetensors", c->fixtures);
    zi_st_file st;
    c->n_checked++;
    if (zi_st_open(&st, path) != 0) {
        printf("  FAIL %-28s %-34s %s\n", c->name, "euler_step(e2e_turbo_fox)", zi_last_error());
        c->n_failed++;
        return;
    }
    const zi_tensor *noise = zi_st_find(&st, "noise");
    float *z = noise ? zi_tensor_to_f32(noise) : NULL;
    int64_t n = noise ? noise->numel : 0, n_diff = 0;
    double maxerr = 0;
    int steps = 0, ok = z != NULL;
    for (int i = 0; ok && i < 8; i++) {
        char name[64];
        snprintf(name, sizeof name, "f32/step%d.dit_out", i);
        const zi_tensor *tu = zi_st_find(&st, name);
        snprintf(name, sizeof name, "f32/step%d.latents", i);
        const zi_tensor *tz = zi_st_find(&st, name);
        if (!tu || !tz || tu->numel != n || tz->numel != n) {
            ok = 0;
            break;
        }
        float *u = zi_tensor_to_f32(tu), *want = zi_tensor_to_f32(tz);
        if (u && want) {
            zi_sched_euler_step(z, u, n, sig[i], sig[i + 1]);
            for (int64_t k = 0; k < n; k++) {
                double e = (double)z[k] - (double)want[k];
                if (e < 0) e = -e;
                if (e > maxerr) maxerr = e;
                n_diff += z[k] != want[k];
            }
            memcpy(z, want, (size_t)n * sizeof *z); /* restart each step from the stored latents */
            steps++;
        } else {
            ok = 0;
        }
        free(u);
        free(want);
    }
    int fail = !ok || n_diff != 0;
    printf("  %s %-28s %-34s %d steps, %lld values not bit-exact, max_abs_err %.3g\n", fail ? "FAIL" : "ok  ",
           c->name, "euler_step(e2e_turbo_fox)", steps, (long long)n_diff, maxerr);
    if (fail) c->n_failed++;
    free(z);
    zi_st_close(&st);
}

int golden_run_scheduler(golden_case *c) {
    char path[4096];
    if (c->n_variants != 1 || strcmp(c->variants[0], "any"))
        return golden_fail(c, "models", "a scheduler case names exactly one config, models.any");
    if (golden_model_path(c, "any", path, sizeof path) != 0) return GOLDEN_FAIL;
    zi_sched_config cfg;
    if (zi_sched_config_load(&cfg, path) != 0) return GOLDEN_FAIL;
    json_t *steps = golden_param(c, "steps");
    if (!json_is_array(steps) || json_array_size(steps) == 0) {
        zi_err("%s: params.steps missing", c->name);
        return GOLDEN_FAIL;
    }
    double atol = 1e-6, rtol = 1e-6;
    golden_tol(c, &atol, &rtol);

    size_t i;
    json_t *jn;
    json_array_foreach(steps, i, jn) {
        int n = json_is_integer(jn) && json_integer_value(jn) >= 1 && json_integer_value(jn) <= 10000
                    ? (int)json_integer_value(jn)
                    : -1;
        if (n < 1) {
            zi_err("%s: bad step count in params.steps", c->name);
            return GOLDEN_FAIL;
        }
        float *sig = malloc((size_t)(n + 1) * sizeof *sig);
        float *ts = malloc((size_t)n * sizeof *ts), *tm = malloc((size_t)n * sizeof *tm);
        float *tsc = malloc((size_t)n * sizeof *tsc), *dt = malloc((size_t)n * sizeof *dt);
        int rc = sig && ts && tm && tsc && dt ? zi_sched_sigmas(&cfg, n, sig) : zi_err("out of memory");
        if (rc != 0) golden_fail(c, "sigmas", "%s", zi_last_error());
        if (rc == 0) {
            for (int k = 0; k < n; k++) {
                ts[k] = zi_sched_timestep(sig[k]);
                tm[k] = zi_sched_t_model(sig[k]);
                tsc[k] = zi_sched_t_scaled(sig[k]);
                dt[k] = zi_sched_dt(sig[k], sig[k + 1]);
            }
            char name[64];
            snprintf(name, sizeof name, "n%d.sigmas", n);
            golden_check(c, name, sig, n + 1, atol, rtol);
            snprintf(name, sizeof name, "n%d.timesteps", n);
            golden_check(c, name, ts, n, atol, rtol);
            snprintf(name, sizeof name, "n%d.t_model", n);
            golden_check(c, name, tm, n, atol, rtol);
            snprintf(name, sizeof name, "n%d.t_scaled", n);
            golden_check(c, name, tsc, n, atol, rtol);
            snprintf(name, sizeof name, "n%d.dt", n);
            golden_check(c, name, dt, n, atol, rtol);
            if (n == 8) sched_check_euler_e2e(c, sig);
        }
        free(sig);
        free(ts);
        free(tm);
        free(tsc);
        free(dt);
        if (rc != 0) return GOLDEN_FAIL;
    }
    return c->n_failed ? GOLDEN_FAIL : GOLDEN_PASS;
}
