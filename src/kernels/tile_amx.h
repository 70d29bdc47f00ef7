/* tile_amx.h - the tile vocabulary of gemm_amx_impl.h on real AMX (palette 1). Included only by
 * gemm_amx.c, compiled with -mamx-tile -mamx-bf16. Tile numbers must be constants. The OS
 * permission for the tile data state is requested once by cpu.c (arch_prctl). */
#ifndef ZI_TILE_AMX_H
#define ZI_TILE_AMX_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define KN_FN(name) name##_amx

/* ldtilecfg operand: palette 1, tiles 0-3 16 rows x 64 B (f32 C), 4-7 16 rows x 64 B (bf16 A, B) */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((aligned(64))) kn_tilecfg;

static inline void kn_tile_config(void) {
    kn_tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16;
    _tile_loadconfig(&cfg);
}

#define TILE_CONFIG() kn_tile_config()
#define TILE_RELEASE() _tile_release()
#define TILE_ZERO(t) _tile_zero(t)
#define TILE_LOAD(t, p, stride) _tile_loadd(t, (const void *)(p), stride)
#define TILE_STORE(t, p, stride) _tile_stored(t, (void *)(p), stride)
#define TILE_DP(c, a, b) _tile_dpbf16ps(c, a, b)

#endif
