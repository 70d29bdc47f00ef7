/* quantize.h - write a model component as GGUF (`zimage quantize`).
 *
 * Reads a DiT or Qwen3 text encoder (diffusers folder, component folder, single safetensors or
 * GGUF file) tensor by tensor and writes a GGUF that other tools read:
 *  - DiT: ComfyUI-GGUF's layout: general.architecture "lumina2", ComfyUI names (fused
 *    attention.qkv, attention.out, q_norm/k_norm, x_embedder, final_layer; no prefix); 1-D
 *    tensors, pad tokens and the small embedder / final-layer matrices stay F32.
 *  - text encoder: llama.cpp's layout: general.architecture "qwen3", qwen3.* hyperparameters,
 *    token_embd / blk.N.* / output_norm names, 1-D norms F32, and the vocabulary as
 *    tokenizer.ggml.* (from tokenizer/tokenizer.json next to the text encoder).
 * Matrices are quantized with ggml's weighted search under an importance matrix of ones (what
 * stable-diffusion.cpp's converter does; common/quant.h), or with `fast` ggml's plain reference
 * quantizers (llama-quantize without an importance matrix). Memory: one tensor's rows at a time
 * (~4 MB of floats per thread); rows are quantized on all threads, output independent of their count. */
#ifndef ZI_QUANTIZE_H
#define ZI_QUANTIZE_H

#include <stdint.h>

#include "../common/dtype.h"

typedef enum { ZI_COMPONENT_DIT = 0, ZI_COMPONENT_TEXT_ENCODER } zi_component;

typedef struct {
    const char *input;  /* diffusers root, component folder, or single file */
    const char *output; /* .gguf path */
    zi_dtype type;      /* block type, or F32/F16/BF16 (plain conversion) */
    zi_component component;
    int force;          /* overwrite an existing output */
    int fast;           /* ggml's _ref quantizers (no weighted search) */
    /* progress: bytes of source processed so far of total, current tensor name (may be NULL) */
    void (*progress)(void *user, uint64_t done, uint64_t total, const char *tensor);
    void *progress_user;
    int threads;        /* rows quantized in parallel; <= 0: all cores (same bytes for any count) */
} zi_quantize_params;

int zi_quantize_model(const zi_quantize_params *p);
/* "q8_0" / "Q4_K" / "f16" ... -> dtype; -1 if not a type quantize writes. */
int zi_quantize_type_parse(const char *s, zi_dtype *out);

#endif
