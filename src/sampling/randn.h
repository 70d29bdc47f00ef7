/* randn.h - initial latent noise: torch.randn reproduced on the CPU.
 *
 * Pipeline position: first step of sampling; gives z_0 ~ N(0,1) [16, H/8, W/8]
 * (docs/MODEL.md §6.4). zi_randn(seed, out, n) equals
 *     torch.manual_seed(seed); torch.randn(n)      (float32, CPU generator)
 * i.e. MT19937 + torch's Box-Muller layout (fixtures README "Initial noise").
 * The official examples seed a CUDA generator (Philox), a different stream. */
#ifndef ZI_RANDN_H
#define ZI_RANDN_H

#include <stdint.h>

/* Fill out[0..n) with standard normal float32 values; n >= 0.
 * n >= 16: torch's vectorized normal_fill path (float32 Box-Muller in blocks of 16).
 * n < 16:  torch's scalar path (double Box-Muller with a cached second sample). */
void zi_randn(uint64_t seed, float *out, int64_t n);

/* A seeded generator whose stream continues across draws, like a torch.Generator:
 *     g = torch.Generator().manual_seed(seed); a = torch.randn(n1, generator=g); b = torch.randn(n2, generator=g)
 * is zi_rng_seed(&r, seed); zi_rng_randn(&r, a, n1); zi_rng_randn(&r, b, n2) for n1, n2 >= 16
 * (img2img: the VAE posterior sample is the first draw, the noise the second). The scalar
 * path's cached second normal (n < 16) is not carried from one call to the next. */
typedef struct {
    uint32_t s[624]; /* MT19937 state */
    int idx;
} zi_rng;
void zi_rng_seed(zi_rng *r, uint64_t seed);
void zi_rng_randn(zi_rng *r, float *out, int64_t n);

/* A fresh random seed for the CLI's default (getrandom; falls back to
 * /dev/urandom, then time and pid). In [0, 2^32): torch's CPU generator only
 * uses the low 32 bits of a seed, so wider seeds would add no variety. */
uint64_t zi_seed_random(void);

#endif
