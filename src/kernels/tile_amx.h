/* tile_amx.h - the tile vocabulary of gemm_amx_impl.h and gemm_q8_amx_impl.h on real AMX
 * (palette 1). Included only by the amx files (gemm_amx.c, attention_amx.c, gemm_q8_amx.c),
 * compiled with -mamx-tile -mamx-bf16 -mamx-int8 (TILE_DPBSSD is used only where the CPU has
 * AMX-INT8: kn_cpu_has_amx_int8). Tile numbers must be constants. The OS permission for the
 * tile data state is requested once by cpu.c (arch_prctl). */
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

/* The configurations are compile-time constants in .rodata. (Filling a stack copy field by field
 * is not safe with gcc 12: it treats ldtilecfg as reading only the first bytes of its operand and
 * deletes the colsb/rows stores as dead, so every tile is left with 0 rows and the first tile
 * instruction raises #UD: SIGILL.) */
static inline void kn_tile_config(void) {
    static const kn_tilecfg cfg = {.palette = 1,
                                   .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
                                   .rows = {16, 16, 16, 16, 16, 16, 16, 16}};
    _tile_loadconfig(&cfg);
}

/* int8 GEMM (gemm_q8_amx_impl.h): tiles 0-3 16 rows x 64 B (int32 C), 4-5 16 rows x 32 B (A:
 * 32 int8 of K, one quantization block), 6-7 8 rows x 64 B (B: 8 quads of K x 16 columns) */
static inline void kn_tile_config_q8(void) {
    static const kn_tilecfg cfg = {.palette = 1,
                                   .colsb = {64, 64, 64, 64, 32, 32, 64, 64},
                                   .rows = {16, 16, 16, 16, 16, 16, 8, 8}};
    _tile_loadconfig(&cfg);
}

#define TILE_CONFIG() kn_tile_config()
#define TILE_CONFIG_Q8() kn_tile_config_q8()
#define TILE_RELEASE() _tile_release()
#define TILE_ZERO(t) _tile_zero(t)
#define TILE_LOAD(t, p, stride) _tile_loadd(t, (const void *)(p), stride)
#define TILE_STORE(t, p, stride) _tile_stored(t, (void *)(p), stride)
#define TILE_DP(c, a, b) _tile_dpbf16ps(c, a, b)
#define TILE_DPBSSD(c, a, b) _tile_dpbssd(c, a, b) /* int32 C += s8 A . s8 B (needs -mamx-int8) */

#endif
