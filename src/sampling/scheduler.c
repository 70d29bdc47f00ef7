/* scheduler.c - flow-matching Euler scheduler: config, sigma schedule, Euler step.
 *
 * Reproduces the official Z-Image FlowMatchEulerDiscreteScheduler as driven by
 * its pipeline (sigma_min set to 0 before set_timesteps):
 *   t_k     = numpy.linspace(1000, 0, n+1)[:-1]            float64
 *   s_k     = t_k / 1000                                    float64
 *   sigma_k = shift*s_k / (1 + (shift-1)*s_k)               float64 -> float32
 *   sigmas  = [sigma_0 .. sigma_{n-1}, 0]
 * (docs/MODEL.md §6.1/6.2, fixtures README "Scheduler"). */
#include "scheduler.h"

#include <math.h>
#include <string.h>

#include "../common/error.h"
#include "../io/json.h"

void zi_sched_config_default(zi_sched_config *cfg) {
    cfg->num_train_timesteps = 1000;
    cfg->shift = 3.0;
    cfg->use_dynamic_shifting = 0;
    cfg->base_image_seq_len = 256;
    cfg->max_image_seq_len = 4096;
    cfg->base_shift = 0.5;
    cfg->max_shift = 1.15;
}

/* Keys of diffusers' FlowMatchEulerDiscreteScheduler that would change the
 * schedule; we only accept them at their neutral values. */
static int sched_reject_unsupported(const json_t *j, const char *path) {
    static const char *const flags[] = {"use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas",
                                        "invert_sigmas", "stochastic_sampling"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        int on = 0;
        if (zi_json_get_bool_opt(j, flags[i], &on, path) != 0) return -1;
        if (on) return zi_err("%s: \"%s\": true is not supported (Z-Image uses plain shifted sigmas)", path, flags[i]);
    }
    json_t *st = json_object_get(j, "shift_terminal");
    if (st && !json_is_null(st)) return zi_err("%s: \"shift_terminal\" is not supported", path);
    json_t *tt = json_object_get(j, "time_shift_type");
    if (tt && !json_is_null(tt)) {
        if (!json_is_string(tt)) return zi_err("%s: key \"time_shift_type\" must be a string", path);
        if (strcmp(json_string_value(tt), "exponential") != 0)
            return zi_err("%s: time_shift_type \"%s\" is not supported (only \"exponential\")", path,
                          json_string_value(tt));
    }
    json_t *cls = json_object_get(j, "_class_name");
    if (cls && !json_is_null(cls)) {
        if (!json_is_string(cls)) return zi_err("%s: key \"_class_name\" must be a string", path);
        if (strcmp(json_string_value(cls), "FlowMatchEulerDiscreteScheduler") != 0)
            return zi_err("%s: scheduler class \"%s\" is not supported (expected FlowMatchEulerDiscreteScheduler)",
                          path, json_string_value(cls));
    }
    return 0;
}

int zi_sched_config_load(zi_sched_config *cfg, const char *path) {
    zi_sched_config c;
    zi_sched_config_default(&c);
    json_t *j = zi_json_load_file(path);
    if (!j) return -1;
    int rc = -1;
    long long ntt = c.num_train_timesteps, base_len = c.base_image_seq_len, max_len = c.max_image_seq_len;
    if (!json_is_object(j)) {
        zi_err("%s: expected a JSON object", path);
        goto done;
    }
    if (zi_json_get_int_opt(j, "num_train_timesteps", &ntt, path) != 0) goto done;
    if (zi_json_get_num_opt(j, "shift", &c.shift, path) != 0) goto done;
    if (zi_json_get_bool_opt(j, "use_dynamic_shifting", &c.use_dynamic_shifting, path) != 0) goto done;
    if (zi_json_get_int_opt(j, "base_image_seq_len", &base_len, path) != 0) goto done;
    if (zi_json_get_int_opt(j, "max_image_seq_len", &max_len, path) != 0) goto done;
    if (zi_json_get_num_opt(j, "base_shift", &c.base_shift, path) != 0) goto done;
    if (zi_json_get_num_opt(j, "max_shift", &c.max_shift, path) != 0) goto done;
    if (sched_reject_unsupported(j, path) != 0) goto done;
    if (ntt <= 0 || ntt > 1000000) {
        zi_err("%s: num_train_timesteps = %lld is out of range (1..1000000)", path, ntt);
        goto done;
    }
    if (!(c.shift > 0) || !isfinite(c.shift)) {
        zi_err("%s: shift = %g must be a positive number", path, c.shift);
        goto done;
    }
    if (base_len < 0 || max_len <= base_len || max_len > 1000000000LL) {
        zi_err("%s: need 0 <= base_image_seq_len (%lld) < max_image_seq_len (%lld)", path, base_len, max_len);
        goto done;
    }
    if (!isfinite(c.base_shift) || !isfinite(c.max_shift)) {
        zi_err("%s: base_shift/max_shift must be finite", path);
        goto done;
    }
    c.num_train_timesteps = (int)ntt;
    c.base_image_seq_len = (int)base_len;
    c.max_image_seq_len = (int)max_len;
    *cfg = c;
    rc = 0;
done:
    json_decref(j);
    return rc;
}

double zi_sched_mu(const zi_sched_config *cfg, int64_t image_seq_len) {
    double m = (cfg->max_shift - cfg->base_shift) / (double)(cfg->max_image_seq_len - cfg->base_image_seq_len);
    double b = cfg->base_shift - m * (double)cfg->base_image_seq_len;
    return (double)image_seq_len * m + b;
}

/* numpy.linspace(start, stop, num)[k] for endpoint=True and k < num-1:
 * step = (stop-start)/(num-1); y = k*step + start (float64, in that order). */
static double sched_linspace_at(double start, double stop, int num, int k) {
    double step = (stop - start) / (double)(num - 1);
    double y = (double)k * step;
    return y + start;
}

static int sched_build(const zi_sched_config *cfg, int n_steps, int dynamic, double mu, float *sigmas) {
    if (n_steps < 1 || n_steps > 100000) return zi_err("scheduler: number of steps %d out of range (1..100000)", n_steps);
    if (!(cfg->shift > 0)) return zi_err("scheduler: shift = %g must be positive", cfg->shift);
    double ntt = (double)cfg->num_train_timesteps;
    /* sigma_max = 1 (the shifted training sigma at t = 1000), sigma_min = 0 (set by the pipeline). */
    double t_max = 1.0 * ntt, t_min = 0.0 * ntt;
    for (int k = 0; k < n_steps; k++) {
        double s = sched_linspace_at(t_max, t_min, n_steps + 1, k) / ntt;
        double sigma;
        if (dynamic) {
            double e = exp(mu);
            sigma = e / (e + (1.0 / s - 1.0)); /* time_shift(mu, 1.0, s) */
        } else {
            sigma = cfg->shift * s / (1.0 + (cfg->shift - 1.0) * s);
        }
        sigmas[k] = (float)sigma;
    }
    sigmas[n_steps] = 0.0f;
    return 0;
}

int zi_sched_sigmas(const zi_sched_config *cfg, int n_steps, float *sigmas) {
    if (cfg->use_dynamic_shifting)
        return zi_err("scheduler: use_dynamic_shifting needs the image size; call zi_sched_sigmas_for_image");
    return sched_build(cfg, n_steps, 0, 0.0, sigmas);
}

int zi_sched_sigmas_for_image(const zi_sched_config *cfg, int n_steps, int64_t image_seq_len, float *sigmas) {
    if (!cfg->use_dynamic_shifting) return sched_build(cfg, n_steps, 0, 0.0, sigmas);
    if (image_seq_len <= 0) return zi_err("scheduler: image token count %lld must be positive", (long long)image_seq_len);
    return sched_build(cfg, n_steps, 1, zi_sched_mu(cfg, image_seq_len), sigmas);
}

/* Note: these rely on no FMA contraction. The build uses -std=c11 (GCC then
 * defaults to -ffp-contract=off) and every product is its own statement. */
float zi_sched_timestep(float sigma) { return sigma * 1000.0f; }

float zi_sched_t_model(float sigma) {
    float timestep = zi_sched_timestep(sigma);
    float num = 1000.0f - timestep;
    return num / 1000.0f;
}

float zi_sched_t_scaled(float sigma) {
    float t = zi_sched_t_model(sigma);
    return t * 1000.0f;
}

float zi_sched_dt(float sigma, float sigma_next) { return sigma_next - sigma; }

void zi_sched_euler_step(float *z, const float *u, int64_t n, float sigma, float sigma_next) {
    const float dt = zi_sched_dt(sigma, sigma_next);
    for (int64_t i = 0; i < n; i++) {
        float v = -u[i];         /* velocity = -model output */
        float step = dt * v;     /* rounded to float32 before the add */
        z[i] = z[i] + step;
    }
}
