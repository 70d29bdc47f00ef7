/* tile_emulated.h - a C emulation of the eight AMX tile registers and TDPBF16PS, giving
 * gemm_amx_impl.h a second instance (gemm_amx_emulated.c) that runs on any CPU: the unit tests
 * check the AMX kernel's packing, tiling and write-back with it. Per thread (the registers are
 * thread-local, as real tiles are). Slow; never selected for real work. */
#ifndef ZI_TILE_EMULATED_H
#define ZI_TILE_EMULATED_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../common/dtype.h"

#define KN_FN(name) name##_amxemu

static _Thread_local uint8_t kn_tiles[8][16][64]; /* 16 rows x 64 bytes each */

static inline void kn_tile_load(int t, const void *p, int64_t stride) {
    for (int r = 0; r < 16; r++) memcpy(kn_tiles[t][r], (const char *)p + r * stride, 64);
}
static inline void kn_tile_store(int t, void *p, int64_t stride) {
    for (int r = 0; r < 16; r++) memcpy((char *)p + r * stride, kn_tiles[t][r], 64);
}
/* C[m][n] += sum over 16 pairs kp of A[m].pair[kp] . B[kp].pair[n] (odd product first, each add rounded once) */
static inline void kn_tile_dp(int c, int a, int b) {
    for (int m = 0; m < 16; m++)
        for (int n = 0; n < 16; n++) {
            float acc;
            memcpy(&acc, &kn_tiles[c][m][4 * n], 4);
            for (int kp = 0; kp < 16; kp++) {
                uint16_t a0, a1, b0, b1;
                memcpy(&a0, &kn_tiles[a][m][4 * kp], 2);
                memcpy(&a1, &kn_tiles[a][m][4 * kp + 2], 2);
                memcpy(&b0, &kn_tiles[b][kp][4 * n], 2);
                memcpy(&b1, &kn_tiles[b][kp][4 * n + 2], 2);
                acc = fmaf(zi_bf16_to_f32(a1), zi_bf16_to_f32(b1), acc);
                acc = fmaf(zi_bf16_to_f32(a0), zi_bf16_to_f32(b0), acc);
            }
            memcpy(&kn_tiles[c][m][4 * n], &acc, 4);
        }
}

#define TILE_CONFIG() ((void)0)
#define TILE_RELEASE() ((void)0)
#define TILE_ZERO(t) memset(kn_tiles[t], 0, sizeof kn_tiles[t])
#define TILE_LOAD(t, p, stride) kn_tile_load(t, p, stride)
#define TILE_STORE(t, p, stride) kn_tile_store(t, p, stride)
#define TILE_DP(c, a, b) kn_tile_dp(c, a, b)

#endif
