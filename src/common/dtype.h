/* dtype.h - element types of stored tensors and scalar conversions.
 *
 * bf16 -> f32 is exact (shift left by 16). f32 -> bf16 rounds to nearest even,
 * as torch's .to(torch.bfloat16) does. f16 conversions are IEEE half. */
#ifndef ZI_DTYPE_H
#define ZI_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Element types. Block-quantized types (GGUF Q8_0, Q4_K, ...; layouts in quant.h) follow ZI_U8:
 * for them a "row" of n elements is n / block_elems blocks of block_bytes. F8_E4M3/F8_E5M2 are
 * one-byte floats (safetensors fp8, torch.float8_e4m3fn / float8_e5m2). */
typedef enum {
    ZI_F32 = 0, ZI_BF16, ZI_F16, ZI_I32, ZI_U8,
    ZI_Q8_0, ZI_Q4_0, ZI_Q4_1, ZI_Q5_0, ZI_Q5_1, ZI_Q2_K, ZI_Q3_K, ZI_Q4_K, ZI_Q5_K, ZI_Q6_K,
    ZI_F8_E4M3, ZI_F8_E5M2,
    ZI_DTYPE_COUNT
} zi_dtype;

const char *zi_dtype_name(zi_dtype t);
/* Bytes per element for scalar types; 0 for block types (use zi_dtype_row_bytes). */
size_t zi_dtype_size(zi_dtype t);
/* Elements per block (1 for scalar types) and bytes per block (= element size for scalar types). */
int64_t zi_dtype_block_elems(zi_dtype t);
size_t zi_dtype_block_bytes(zi_dtype t);
/* Bytes of n elements (n a multiple of the block size). */
static inline size_t zi_dtype_row_bytes(zi_dtype t, int64_t n) {
    return (size_t)(n / zi_dtype_block_elems(t)) * zi_dtype_block_bytes(t);
}
/* Parse a safetensors dtype string (scalar types only: F32 BF16 F16 I32 U8 F8_E4M3 F8_E5M2);
 * returns -1 if unknown/unsupported. */
int zi_dtype_parse(const char *s, zi_dtype *out);
static inline int zi_dtype_is_float(zi_dtype t) { return t == ZI_F32 || t == ZI_BF16 || t == ZI_F16; }
/* Block-quantized (Q8_0 ... Q6_K). */
static inline int zi_dtype_is_block(zi_dtype t) { return t >= ZI_Q8_0 && t <= ZI_Q6_K; }
/* Any type a weight may have: float, fp8 or block-quantized (zi_convert_to_f32 decodes it). */
static inline int zi_dtype_is_weight(zi_dtype t) {
    return zi_dtype_is_float(t) || zi_dtype_is_block(t) || t == ZI_F8_E4M3 || t == ZI_F8_E5M2;
}

static inline float zi_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t zi_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* NaN stays NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float zi_f16_to_f32(uint16_t h);
uint16_t zi_f32_to_f16(float f);

/* Convert n elements of type t at src to float32. For block types src must point at the start
 * of a block and n must be a multiple of the block size. */
void zi_convert_to_f32(float *dst, const void *src, zi_dtype t, size_t n);

#endif
