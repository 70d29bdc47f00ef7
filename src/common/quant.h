/* quant.h - block-quantized weight formats (GGUF/ggml Q8_0 ... Q6_K) and fp8 bytes.
 *
 * Lowest layer of the weight path: the GGUF reader (io/gguf.c) hands out views on
 * blocks in these layouts, zi_convert_to_f32 (dtype.c) dequantizes them through
 * zi_dequantize(), the GEMM (kernels/) dequantizes K-panels with it, and
 * `zimage quantize` writes blocks with zi_quantize().
 *
 * Everything here is scalar reference code, one function per type, written to give
 * bit-identical results to ggml's reference code (ggml-quants.c: dequantize_row_*,
 * quantize_row_*_ref): same float operations in the same order, no FMA contraction.
 * The block structs match ggml's byte for byte (little-endian hosts). */
#ifndef ZI_QUANT_H
#define ZI_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

#define ZI_QK 32   /* elements per block of the legacy types (Q4_0 ... Q8_0) */
#define ZI_QK_K 256 /* elements per super-block of the k-quants */

/* fp16 fields are raw IEEE half bits (zi_f16_to_f32). */
typedef struct { uint16_t d; uint8_t qs[ZI_QK / 2]; } zi_block_q4_0;                 /* 18 bytes */
typedef struct { uint16_t d, m; uint8_t qs[ZI_QK / 2]; } zi_block_q4_1;              /* 20 */
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[ZI_QK / 2]; } zi_block_q5_0;  /* 22 */
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[ZI_QK / 2]; } zi_block_q5_1; /* 24 */
typedef struct { uint16_t d; int8_t qs[ZI_QK]; } zi_block_q8_0;                      /* 34 */
typedef struct { uint8_t scales[ZI_QK_K / 16]; uint8_t qs[ZI_QK_K / 4]; uint16_t d, dmin; } zi_block_q2_k; /* 84 */
typedef struct { uint8_t hmask[ZI_QK_K / 8]; uint8_t qs[ZI_QK_K / 4]; uint8_t scales[12]; uint16_t d; } zi_block_q3_k; /* 110 */
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[ZI_QK_K / 2]; } zi_block_q4_k; /* 144 */
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[ZI_QK_K / 8]; uint8_t qs[ZI_QK_K / 2]; } zi_block_q5_k; /* 176 */
typedef struct { uint8_t ql[ZI_QK_K / 2]; uint8_t qh[ZI_QK_K / 4]; int8_t scales[ZI_QK_K / 16]; uint16_t d; } zi_block_q6_k; /* 210 */

/* Dequantize nb blocks at x into y (nb * block elements). x must be 2-byte aligned. */
void zi_dequant_q4_0(const zi_block_q4_0 *x, float *y, int64_t nb);
void zi_dequant_q4_1(const zi_block_q4_1 *x, float *y, int64_t nb);
void zi_dequant_q5_0(const zi_block_q5_0 *x, float *y, int64_t nb);
void zi_dequant_q5_1(const zi_block_q5_1 *x, float *y, int64_t nb);
void zi_dequant_q8_0(const zi_block_q8_0 *x, float *y, int64_t nb);
void zi_dequant_q2_k(const zi_block_q2_k *x, float *y, int64_t nb);
void zi_dequant_q3_k(const zi_block_q3_k *x, float *y, int64_t nb);
/* ggml's get_scale_min_k4: the 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block */
static inline void zi_k4_scale_min(int j, const uint8_t *s, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *d = (uint8_t)((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
        *m = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}
void zi_dequant_q4_k(const zi_block_q4_k *x, float *y, int64_t nb);
void zi_dequant_q5_k(const zi_block_q5_k *x, float *y, int64_t nb);
void zi_dequant_q6_k(const zi_block_q6_k *x, float *y, int64_t nb);

/* Quantize nb blocks of x (ggml's quantize_row_*_ref, no importance matrix). */
void zi_quant_q4_0(const float *x, zi_block_q4_0 *y, int64_t nb);
void zi_quant_q4_1(const float *x, zi_block_q4_1 *y, int64_t nb);
void zi_quant_q5_0(const float *x, zi_block_q5_0 *y, int64_t nb);
void zi_quant_q5_1(const float *x, zi_block_q5_1 *y, int64_t nb);
void zi_quant_q8_0(const float *x, zi_block_q8_0 *y, int64_t nb);
void zi_quant_q2_k(const float *x, zi_block_q2_k *y, int64_t nb);
void zi_quant_q3_k(const float *x, zi_block_q3_k *y, int64_t nb);
void zi_quant_q4_k(const float *x, zi_block_q4_k *y, int64_t nb);
void zi_quant_q5_k(const float *x, zi_block_q5_k *y, int64_t nb);
void zi_quant_q6_k(const float *x, zi_block_q6_k *y, int64_t nb);

/* Any block type: n elements (a multiple of the block size) from src (at a block start). */
void zi_dequantize(zi_dtype t, const void *src, float *dst, int64_t n);
/* Quantize n elements (multiple of the block size) to type t; returns bytes written,
 * 0 if t is not a block type. */
size_t zi_quantize(zi_dtype t, const float *src, void *dst, int64_t n);

/* Quantize nrows rows of n_per_row values the way ggml's quantize_chunk does: imatrix NULL gives
 * the _ref quantizers (= zi_quantize); otherwise imatrix holds n_per_row importance weights and
 * ggml's weighted search runs (quantize_row_*_impl; Q8_0 has none). stable-diffusion.cpp's
 * converter passes weights of all ones: `zimage quantize` does the same. Returns bytes written,
 * 0 if t is not a block type or n_per_row not a multiple of its block size. */
size_t zi_quantize_rows(zi_dtype t, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                        const float *imatrix);

/* fp8 bytes (safetensors F8_E4M3 = torch.float8_e4m3fn, F8_E5M2 = torch.float8_e5m2). */
float zi_f8e4m3_to_f32(uint8_t b);
float zi_f8e5m2_to_f32(uint8_t b);

#endif
