/* dtype.c - dtype names, sizes and conversions to float32. */
#include "dtype.h"

#include "quant.h"

static const char *const zi_dtype_names[ZI_DTYPE_COUNT] = {
    "F32", "BF16", "F16", "I32", "U8", "Q8_0", "Q4_0", "Q4_1", "Q5_0",
    "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "F8_E4M3", "F8_E5M2"};
/* {elements, bytes} per block; scalar types are blocks of one element */
static const struct {
    int64_t elems;
    size_t bytes;
} zi_dtype_blocks[ZI_DTYPE_COUNT] = {
    {1, 4},        {1, 2},        {1, 2},        {1, 4},        {1, 1},        {ZI_QK, 34},
    {ZI_QK, 18},   {ZI_QK, 20},   {ZI_QK, 22},   {ZI_QK, 24},   {ZI_QK_K, 84}, {ZI_QK_K, 110},
    {ZI_QK_K, 144}, {ZI_QK_K, 176}, {ZI_QK_K, 210}, {1, 1},        {1, 1}};

const char *zi_dtype_name(zi_dtype t) { return (unsigned)t < ZI_DTYPE_COUNT ? zi_dtype_names[t] : "?"; }
size_t zi_dtype_size(zi_dtype t) {
    return (unsigned)t < ZI_DTYPE_COUNT && !zi_dtype_is_block(t) ? zi_dtype_blocks[t].bytes : 0;
}

int64_t zi_dtype_block_elems(zi_dtype t) { return (unsigned)t < ZI_DTYPE_COUNT ? zi_dtype_blocks[t].elems : 1; }
size_t zi_dtype_block_bytes(zi_dtype t) { return (unsigned)t < ZI_DTYPE_COUNT ? zi_dtype_blocks[t].bytes : 0; }

int zi_dtype_parse(const char *s, zi_dtype *out) {
    for (int i = 0; i < ZI_DTYPE_COUNT; i++)
        if (!zi_dtype_is_block((zi_dtype)i) && strcmp(s, zi_dtype_names[i]) == 0) {
            *out = (zi_dtype)i;
            return 0;
        }
    return -1;
}

float zi_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: renormalize */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            man &= 0x3ff;
            u = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t zi_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000;
    int32_t exp = (int32_t)((u >> 23) & 0xff) - 127 + 15;
    uint32_t man = u & 0x7fffff;
    if (((u >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    if (exp >= 31) return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t h = sign | ((uint32_t)exp << 10) | (man >> 13);
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)h;
}

void zi_convert_to_f32(float *dst, const void *src, zi_dtype t, size_t n) {
    switch (t) {
    case ZI_F32: memcpy(dst, src, n * 4); break;
    case ZI_BF16: {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = zi_bf16_to_f32(s[i]);
        break;
    }
    case ZI_F16: {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = zi_f16_to_f32(s[i]);
        break;
    }
    case ZI_I32: {
        const int32_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = (float)s[i];
        break;
    }
    case ZI_U8: {
        const uint8_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = (float)s[i];
        break;
    }
    case ZI_F8_E4M3: {
        const uint8_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = zi_f8e4m3_to_f32(s[i]);
        break;
    }
    case ZI_F8_E5M2: {
        const uint8_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = zi_f8e5m2_to_f32(s[i]);
        break;
    }
    default:
        if (zi_dtype_is_block(t)) zi_dequantize(t, src, dst, (int64_t)n);
        break;
    }
}
