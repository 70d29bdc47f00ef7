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

/* A fresh random seed for the CLI's default (getrandom; falls back to
 * /dev/urandom, then time and pid). In [0, 2^32): torch's CPU generator only
 * uses the low 32 bits of a seed, so wider seeds would add no variety. */
uint64_t zi_seed_random(void);

#endif
