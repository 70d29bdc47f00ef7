/* dtype.h - element types of stored tensors and scalar conversions.
 *
 * bf16 -> f32 is exact (shift left by 16). f32 -> bf16 rounds to nearest even,
 * as torch's .to(torch.bfloat16) does. f16 conversions are IEEE half. */
#ifndef ZI_DTYPE_H
#define ZI_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Element types. Block-quantized types (GGUF Q8_0, Q4_K, ...) are appended after ZI_U8 by the
 * quantization code; for them a "row" of n elements is n / block_elems blocks of block_bytes. */
typedef enum { ZI_F32 = 0, ZI_BF16, ZI_F16, ZI_I32, ZI_U8, ZI_DTYPE_COUNT } zi_dtype;

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
/* Parse a safetensors dtype string; returns -1 if unknown/unsupported. */
int zi_dtype_parse(const char *s, zi_dtype *out);
static inline int zi_dtype_is_float(zi_dtype t) { return t == ZI_F32 || t == ZI_BF16 || t == ZI_F16; }

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
