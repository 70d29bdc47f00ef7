/* impl.h - private interface between the kernel entry points (kernels.h, dispatch.c) and the
 * per-ISA implementations (gemm_<isa>.c, attention_<isa>.c, eltwise_<isa>.c).
 *
 * Each ISA instantiates the same templates (gemm_impl.h, attention_impl.h, eltwise_impl.h) with
 * its vector vocabulary (vec_<isa>.h) and exports one kn_impl table; dispatch.c picks the table
 * at run time (cpu.c) and threads, scratch and precision come from the calling thread's context.
 * Not part of the public API: include only from src/kernels/. */
#ifndef ZI_KERNELS_IMPL_H
#define ZI_KERNELS_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

/* The right-hand operand of a GEMM: rows [N][K] of dtype dt, rs bytes apart. direct: the
 * vector loads can read it as is (F32/BF16/F16 without scale); otherwise K blocks are first
 * converted to f32 with kn_wsrc_to_f32 (block-quantized types, fp8, scaled weights). */
typedef struct {
    const void *data;
    zi_dtype dt;
    size_t rs;
    float scale; /* 0: none */
    int direct;
    size_t es; /* element size when direct */
} kn_wsrc;

kn_wsrc kn_wsrc_of_mat(const kn_mat *W);
kn_wsrc kn_wsrc_f32(const float *B, int64_t ldb);
static inline const char *kn_wsrc_at(const kn_wsrc *B, int64_t row, int64_t col) {
    return (const char *)B->data + (size_t)row * B->rs + zi_dtype_row_bytes(B->dt, col);
}
/* dst[0..n) = W[row][col..col+n) as f32 (scale applied); col and n block-aligned. */
void kn_wsrc_to_f32(const kn_wsrc *B, int64_t row, int64_t col, int64_t n, float *dst);

/* Work split shared by the GEMM drivers (gemm_impl.h, gemm_bf16_impl.h, gemm_amx_impl.h).
 * Column chunks: about npan / (4 T) panels each (enough items for dynamic balance), 1..max_pan. */
static inline int64_t kn_split_chunk_panels(int64_t npan, int T, int64_t max_pan) {
    int64_t c = npan / (4 * T);
    return c < 1 ? 1 : c > max_pan ? max_pan : c;
}
/* Rows of x per packed super-block: the packed copy (elem_bytes per element, K rounded up to kc)
 * stays <= ~64 MiB; a multiple of mc, at least mc. */
static inline int64_t kn_split_superblock_rows(int64_t K, int64_t kc, int64_t elem_bytes, int64_t mc) {
    int64_t r = ((int64_t)(64 << 20) / (elem_bytes * (K < kc ? kc : K))) / mc * mc;
    return r < mc ? mc : r;
}
/* Row ranges per column chunk: enough items for dynamic balance when there are few chunks, at
 * most max_rows rows per item (its output block stays near L2 across K blocks), at most units
 * (row panels) in all. */
static inline int64_t kn_split_row_ranges(int64_t nchunk, int T, int64_t rows, int64_t max_rows, int64_t units) {
    int64_t n = nchunk >= 4 * T ? 1 : (4 * T + nchunk - 1) / nchunk;
    if (n < (rows + max_rows - 1) / max_rows) n = (rows + max_rows - 1) / max_rows;
    return n > units ? units : n;
}

/* Scratch buffers: kn_scratch_get / kn_scratch_put (kernels.h, scratch.c). */

/* Implicit-GEMM A operand of the convs: row i (output pixel oy = i / Wo, ox = i % Wo) at
 * column k (tap ky = k / (kw*cin), then kx, cin channel) reads
 * x[((oy*s + ky)*sw + ox*s)*cin + k - ky*kw*cin]: each kernel row is one run of kw*cin
 * contiguous floats of the staged input x[rows, sw, cin]. A 1x1 conv is kw = s = 1, sw = Wo. */
typedef struct {
    const float *x;
    int64_t sw, cin, Wo;
    int kw, s;
} kn_patch_src;

typedef struct {
    const char *name;
    int mr, nr; /* microkernel tile */
    /* y[M, N] (ldy) (+)= x[M, K] (ldx) . B^T (+ bias); acc: add to y; bf16: inputs of the products
     * rounded to bfloat16 (f32 accumulation). T threads. -1: out of memory. */
    int (*gemm)(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M, int64_t N, int64_t K,
                const kn_wsrc *B, const float *bias, int acc, int bf16, int T);
    /* bf16 mode on bf16 dot-product units (gemm_bf16_impl.h), for M > 4; NULL: use gemm's rounding. */
    int (*gemm_bf16)(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M, int64_t N, int64_t K,
                     const kn_wsrc *B, const float *bias, int acc, int T);
    /* Conv weights packed once: floats needed, then the packing (K blocked in runs of `run`). */
    size_t (*packw_floats)(int64_t N, int64_t K);
    void (*packw)(float *bp, const kn_wsrc *B, int64_t N, int64_t K, int64_t run, int T);
    /* y[M, N] (+)= patches(A)[M, K] . W^T + bias with W packed by packw. -1: out of memory. */
    int (*gemm_patches)(float *y, const kn_patch_src *A, int64_t M, int64_t N, int64_t K, const float *bpw,
                        const float *bias, int acc, int T);
    /* flash attention (kernels.h kn_attention). -1: out of memory. */
    int (*attention)(float *out, int64_t ldo, const float *q, int64_t ldq, const float *k, int64_t ldk,
                     const float *v, int64_t ldv, int64_t Lq, int64_t Lk, int n_heads, int n_kv_heads, int hd,
                     float scale, int causal, int bf16, int T);
    /* bf16 mode on bf16 dot-product units (attention_bf16_impl.h); NULL: attention's rounding. */
    int (*attention_bf16)(float *out, int64_t ldo, const float *q, int64_t ldq, const float *k, int64_t ldk,
                          const float *v, int64_t ldv, int64_t Lq, int64_t Lk, int n_heads, int n_kv_heads, int hd,
                          float scale, int causal, int T);
    /* gate[i] = silu(gate[i]) * (up ? up[i] : 1) for i < n (single-threaded chunk) */
    void (*silu_mul)(float *gate, const float *up, int64_t n);
    /* d[c] = silu?(s[c]*sc[c] + sh[c]) (sc NULL: no affine) */
    void (*affine_row)(float *d, const float *s, const float *sc, const float *sh, int cin, int silu);
    /* sum of x^2 in double */
    double (*sumsq)(const float *x, int64_t n);
    /* bf16 mode: a whole stride-1 k x k conv of a staged tile (conv.c) as one implicit GEMM where
     * the path has one (AMX); returns 1 when the shape is not taken. NULL: conv.c's row GEMMs. */
    int (*conv_bf16)(float *y, const float *stage, int64_t npix, int64_t sw, int64_t cin, int k, int64_t mt,
                     int64_t N, const kn_wsrc *B, const float *bias, int T);
    /* gemm for a few rows of x (gemm_smallm_impl.h): streams W once, no packing; same contract */
    int (*gemm_smallm)(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M, int64_t N, int64_t K,
                       const kn_wsrc *B, const float *bias, int acc, int bf16, int T);
} kn_impl;

/* Each ISA translation unit (gemm_<isa>.c, attention_<isa>.c, eltwise_<isa>.c) defines these. */
#define KN_DECLARE_ISA(isa)                                                                                     \
    int kn_gemm_##isa(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M, int64_t N, int64_t K,   \
                      const kn_wsrc *B, const float *bias, int acc, int bf16, int T);                         \
    size_t kn_packw_floats_##isa(int64_t N, int64_t K);                                                       \
    void kn_packw_##isa(float *bp, const kn_wsrc *B, int64_t N, int64_t K, int64_t run, int T);             \
    int kn_gemm_patches_##isa(float *y, const kn_patch_src *A, int64_t M, int64_t N, int64_t K,             \
                              const float *bpw, const float *bias, int acc, int T);                         \
    int kn_attention_##isa(float *out, int64_t ldo, const float *q, int64_t ldq, const float *k, int64_t ldk, \
                           const float *v, int64_t ldv, int64_t Lq, int64_t Lk, int n_heads, int n_kv_heads, \
                           int hd, float scale, int causal, int bf16, int T);                                \
    void kn_silu_mul_##isa(float *gate, const float *up, int64_t n);                                        \
    void kn_affine_row_##isa(float *d, const float *s, const float *sc, const float *sh, int cin, int silu);  \
    double kn_sumsq_##isa(const float *x, int64_t n);

#define KN_DECLARE_BF16(isa)                                                                                 \
    int kn_gemm_bf16_##isa(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M, int64_t N, int64_t K, \
                           const kn_wsrc *B, const float *bias, int acc, int T);

#define KN_DECLARE_CONV_BF16(isa)                                                                             \
    int kn_conv_bf16_##isa(float *y, const float *stage, int64_t npix, int64_t sw, int64_t cin, int k, int64_t mt, \
                           int64_t N, const kn_wsrc *B, const float *bias, int T);

#define KN_DECLARE_ATTENTION_BF16(isa)                                                                         \
    int kn_attention_bf16_##isa(float *out, int64_t ldo, const float *q, int64_t ldq, const float *k,         \
                                int64_t ldk, const float *v, int64_t ldv, int64_t Lq, int64_t Lk, int n_heads, \
                                int n_kv_heads, int hd, float scale, int causal, int T);

#define KN_DECLARE_SMALLM(isa)                                                                               \
    int kn_gemm_smallm_##isa(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t M, int64_t N, int64_t K, \
                             const kn_wsrc *B, const float *bias, int acc, int bf16, int T);

KN_DECLARE_ISA(generic)
KN_DECLARE_SMALLM(generic)
KN_DECLARE_BF16(generic)
KN_DECLARE_ATTENTION_BF16(generic)
KN_DECLARE_BF16(amxemu) /* the AMX kernels on emulated tiles: for tests only */
KN_DECLARE_CONV_BF16(amxemu)
KN_DECLARE_ATTENTION_BF16(amxemu)
#if defined(__x86_64__)
KN_DECLARE_ISA(avx2)
KN_DECLARE_ISA(avx512)
KN_DECLARE_SMALLM(avx2)
KN_DECLARE_SMALLM(avx512)
KN_DECLARE_BF16(avx512bf16)
KN_DECLARE_ATTENTION_BF16(avx512bf16)
KN_DECLARE_BF16(amx)
KN_DECLARE_CONV_BF16(amx)
KN_DECLARE_ATTENTION_BF16(amx)
#endif

/* The table for the calling thread's ISA (cpu.c selection, kn_set_isa override). */
const kn_impl *kn_impl_get(void);

#endif
