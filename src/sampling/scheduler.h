/* scheduler.h - flow-matching Euler scheduler (FlowMatchEulerDiscreteScheduler).
 *
 * Pipeline position: after text encoding and initial noise; gives the sigma
 * schedule that drives the DiT sampling loop (docs/MODEL.md §6.1, §6.2):
 *
 *   for k in 0..n-1:
 *       t_model = zi_sched_t_model(sigmas[k])          -> DiT timestep input
 *       u = DiT(z, t_model, cap)                         (CFG combined if any)
 *       zi_sched_euler_step(z, u, numel, sigmas[k], sigmas[k+1])
 *
 * Arithmetic follows the official Z-Image scheduler bit for bit: the schedule is
 * built in float64 (numpy linspace, shift), then cast to float32; every per-step
 * quantity after that is a float32 operation. */
#ifndef ZI_SCHEDULER_H
#define ZI_SCHEDULER_H

#include <stdint.h>

typedef struct {
    int num_train_timesteps; /* 1000 */
    double shift;            /* 3.0; kept in double because the official code shifts in float64 */
    int use_dynamic_shifting;
    /* mu = calculate_shift(image_seq_len, ...) parameters; only used with dynamic shifting. */
    int base_image_seq_len;  /* 256 */
    int max_image_seq_len;   /* 4096 */
    double base_shift;       /* 0.5 */
    double max_shift;        /* 1.15 */
} zi_sched_config;

/* The Z-Image-Turbo defaults (1000 / 3.0 / static shift). */
void zi_sched_config_default(zi_sched_config *cfg);

/* Read scheduler/scheduler_config.json. Absent keys keep the defaults; wrong
 * types, malformed JSON, shift <= 0 or num_train_timesteps <= 0 give -1 with an
 * error naming the file and key. */
int zi_sched_config_load(zi_sched_config *cfg, const char *scheduler_config_json_path);

/* sigmas[0..n_steps] (n_steps + 1 floats): the n shifted sigmas followed by 0.
 * Static shift only: with use_dynamic_shifting set this returns -1 and asks for
 * zi_sched_sigmas_for_image (mu needs the image token count). */
int zi_sched_sigmas(const zi_sched_config *cfg, int n_steps, float *sigmas);

/* Same, for an image of image_seq_len DiT tokens ((H/16)*(W/16)). With static
 * shift image_seq_len is ignored; with dynamic shifting
 *   mu = image_seq_len*m + (base_shift - m*base_image_seq_len),
 *   m  = (max_shift - base_shift)/(max_image_seq_len - base_image_seq_len),
 *   sigma = e^mu / (e^mu + (1/s - 1))                         (all float64). */
int zi_sched_sigmas_for_image(const zi_sched_config *cfg, int n_steps, int64_t image_seq_len, float *sigmas);

/* mu of the dynamic shift for a given image token count (float64, as calculate_shift). */
double zi_sched_mu(const zi_sched_config *cfg, int64_t image_seq_len);

/* Per-step helpers, all float32 exactly as torch computes them. */
float zi_sched_timestep(float sigma);             /* sigma * 1000 (num_train_timesteps is 1000 for Z-Image) */
float zi_sched_t_model(float sigma);              /* (1000 - timestep) / 1000: the DiT's t input */
float zi_sched_t_scaled(float sigma);             /* t_model * 1000: what the sinusoid receives */
float zi_sched_dt(float sigma, float sigma_next); /* sigma_next - sigma */

/* Euler update in place: z[i] = z[i] + (sigma_next - sigma) * (-u[i]), float32,
 * dt rounded first, no fused multiply-add. u is the (CFG-combined) DiT output. */
void zi_sched_euler_step(float *z, const float *u, int64_t n, float sigma, float sigma_next);

#endif
