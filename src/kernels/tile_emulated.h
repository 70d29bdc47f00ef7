/* tile_emulated.h - a C emulation of the eight AMX tile registers, TDPBF16PS and TDPBSSD,
 * giving gemm_amx_impl.h and gemm_q8_amx_impl.h second instances (gemm_amx_emulated.c,
 * gemm_q8_amx_emulated.c) that run on any CPU: the unit tests check the AMX kernels' packing,
 * tiling and write-back with them. Per thread (the registers and their configured shapes are
 * thread-local, as real tiles are). Slow; never selected for real work. */
#ifndef ZI_TILE_EMULATED_H
#define ZI_TILE_EMULATED_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../common/dtype.h"

#define KN_FN(name) name##_amxemu

static _Thread_local uint8_t kn_tiles[8][16][64]; /* 16 rows x 64 bytes each */
/* configured rows and bytes per row of each tile (ldtilecfg): TILE_CONFIG sets 16 x 64 for all,
 * TILE_CONFIG_Q8 the shapes of tile_amx.h's kn_tile_config_q8; loads and stores move only those */
static _Thread_local uint8_t kn_tile_rows[8] = {16, 16, 16, 16, 16, 16, 16, 16};
static _Thread_local uint8_t kn_tile_colsb[8] = {64, 64, 64, 64, 64, 64, 64, 64};

static inline void kn_tile_shape(int t, int rows, int colsb) {
    kn_tile_rows[t] = (uint8_t)rows, kn_tile_colsb[t] = (uint8_t)colsb;
}
static inline void kn_tile_config_all(void) {
    for (int t = 0; t < 8; t++) kn_tile_shape(t, 16, 64);
}
/* int8 GEMM shapes: 0-3 16 x 64 B (int32 C), 4-5 16 x 32 B (A: 32 int8 of K), 6-7 8 x 64 B (B) */
static inline void kn_tile_config_q8(void) {
    for (int t = 0; t < 8; t++) kn_tile_shape(t, t < 6 ? 16 : 8, t >= 4 && t < 6 ? 32 : 64);
}
/* the configured part from memory, the rest of the register zeroed (as TILELOADD) */
static inline void kn_tile_load(int t, const void *p, int64_t stride) {
    memset(kn_tiles[t], 0, sizeof kn_tiles[t]);
    for (int r = 0; r < kn_tile_rows[t]; r++) memcpy(kn_tiles[t][r], (const char *)p + r * stride, kn_tile_colsb[t]);
}
static inline void kn_tile_store(int t, void *p, int64_t stride) {
    for (int r = 0; r < kn_tile_rows[t]; r++) memcpy((char *)p + r * stride, kn_tiles[t][r], kn_tile_colsb[t]);
}
/* TDPBSSD: C[m].dword[n] += sum over quads k < colsb(A) / 4 of the 4 products
 * s8(A[m].byte[4k + e]) * s8(B[k].byte[4n + e]) (exact int32, wrapping like the hardware) */
static inline void kn_tile_dpbssd(int c, int a, int b) {
    int kq = kn_tile_colsb[a] / 4, nn = kn_tile_colsb[c] / 4;
    for (int m = 0; m < kn_tile_rows[c]; m++)
        for (int n = 0; n < nn; n++) {
            int32_t acc;
            memcpy(&acc, &kn_tiles[c][m][4 * n], 4);
            uint32_t s = (uint32_t)acc;
            for (int k = 0; k < kq; k++)
                for (int e = 0; e < 4; e++)
                    s += (uint32_t)((int32_t)(int8_t)kn_tiles[a][m][4 * k + e] * (int32_t)(int8_t)kn_tiles[b][k][4 * n + e]);
            acc = (int32_t)s;
            memcpy(&kn_tiles[c][m][4 * n], &acc, 4);
        }
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

#define TILE_CONFIG() kn_tile_config_all()
#define TILE_CONFIG_Q8() kn_tile_config_q8()
#define TILE_RELEASE() kn_tile_config_all()
#define TILE_ZERO(t) memset(kn_tiles[t], 0, sizeof kn_tiles[t])
#define TILE_LOAD(t, p, stride) kn_tile_load(t, p, stride)
#define TILE_STORE(t, p, stride) kn_tile_store(t, p, stride)
#define TILE_DP(c, a, b) kn_tile_dp(c, a, b)
#define TILE_DPBSSD(c, a, b) kn_tile_dpbssd(c, a, b)

#endif
