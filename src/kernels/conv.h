/* conv.h - 2-D convolution and GroupNorm kernels for the VAE (docs/MODEL.md §7.2).
 *
 * Activations are channels-last: an image of C channels and H x W pixels is a
 * row-major [H*W, C] float32 array (pixel p = y*W + x). In this layout a conv is
 * one big GEMM: im2col patches [pixels, k*k*Cin] times the weight [Cout, k*k*Cin]^T.
 * The patch matrix is never built: the input rows of a tile of output rows are
 * staged (padded, transformed) and the implicit GEMM of the kernels layer
 * (gemm_impl.h) reads the patches straight from that stage.
 * Conv weights are repacked once at load from torch's [Cout, Cin, kh, kw] to
 * tap-major [Cout, kh, kw, Cin] (same dtype, values untouched), which makes every
 * kernel row of a patch a run of k*Cin contiguous staged floats.
 *
 * Memory: per tile, the staged input rows (at most 16 MiB by default, in a
 * scratch-pool buffer, plus the f32-packed weight, <= 9.4 MB for 3x3 512->512),
 * never a whole-image copy. The input may be transformed on the fly while it is
 * staged (per-channel affine = a GroupNorm, then SiLU, and/or nearest 2x
 * upsampling), so normalized / upsampled copies of big activations are never
 * materialized. A residual add is fused into the GEMM's write-back. */
#ifndef ZI_CONV_H
#define ZI_CONV_H

#include <stdint.h>

#include "kernels.h"

/* A conv layer: square kernel k (1 or 3), stride, zero padding `pad` on the top
 * and left (the bottom/right padding follows from the output size the caller asks
 * for). w: [cout, k*k*cin] tap-major; bias: [cout] or NULL. */
typedef struct {
    int cin, cout, k, stride, pad;
    kn_mat w;
    const float *bias;
} kn_conv;

/* Transform applied to the conv input while it is staged (all fields optional):
 * v = x*scale[c] + shift[c] (if scale), then v = silu(v) (if silu); up2: the conv
 * sees the input nearest-upsampled by 2 (H x W becomes 2H x 2W). Zero padding is
 * applied after the transform, as in torch. */
typedef struct {
    const float *scale, *shift; /* [cin] */
    int silu;
    int up2;
} kn_conv_pre;

/* Repack torch conv weight [cout, cin, k, k] -> tap-major [cout, k, k, cin]; elements
 * of `esize` bytes are moved, not converted. dst and src must not overlap. */
void kn_conv_pack(void *dst, const void *src, size_t esize, int cout, int cin, int k);

/* Settings and counters of a sequence of convs (one VAE decode/encode). Their buffers (packed
 * weight, staged rows, in-place 1x1 output tile) come from the scratch pool (kernels.h
 * kn_scratch_get), which keeps them between calls, so big buffers are faulted in once per decode
 * rather than once per layer. Zero-initialize; nothing to free. ws = NULL: defaults, no counts.
 * One per calling thread. */
typedef struct {
    int64_t tile_bytes; /* tile budget (0: 64 MiB): a 3x3 conv stages at most a quarter of it per
                           tile, an in-place 1x1 conv buffers at most an eighth. Tests set 1 byte to
                           exercise multi-tile paths (one output row per tile). */
    double macs, seconds; /* multiply-adds done and wall seconds spent by convs using this ws */
} kn_conv_ws;

/* y[Ho*Wo, cout] = conv(pre(x[H*W, cin])) (+ res[Ho*Wo, cout] if res != NULL; res may
 * be y itself, else it must not overlap y; the add happens in the GEMM write-back, so
 * rounding differs from a separate add by a few ulp). x must not overlap y. H, W are the stored input size (before up2).
 * Returns 0, or -1 on allocation failure (zi_err recorded). */
int kn_conv2d(kn_conv_ws *ws, float *y, const float *res, int Ho, int Wo, const float *x, int H, int W,
              const kn_conv *cv, const kn_conv_pre *pre);

/* 1x1 conv (a per-pixel linear map): y[P, cout] = x[P, cin] . w^T + b. y may be x
 * itself when cout <= cin (then the result occupies the first P*cout floats).
 * Returns 0 or -1 on allocation failure. */
int kn_conv1x1(kn_conv_ws *ws, float *y, const float *x, int64_t P, const kn_conv *cv);

/* GroupNorm statistics of x[P, C] (groups of C/groups consecutive channels over all
 * pixels, biased variance) folded with the affine gamma/beta into per-channel
 * scale/shift: GN(x)[p, c] = x[p, c]*scale[c] + shift[c]. Deterministic for any
 * thread count. Returns 0 or -1 on allocation failure. */
int kn_groupnorm_coeffs(const float *x, int64_t P, int C, int groups, float eps, const float *gamma,
                        const float *beta, float *scale, float *shift);

/* y[P, C] = x*scale[c] + shift[c] (in place ok). */
void kn_channel_affine(float *y, const float *x, int64_t P, int C, const float *scale, const float *shift);

/* Layout helpers: [C, P] <-> [P, C]. */
void kn_chw_to_hwc(float *dst, const float *src, int C, int64_t P);
void kn_hwc_to_chw(float *dst, const float *src, int C, int64_t P);

#endif
