/* zimage.h - public C API of libzimage: Z-Image / Z-Image-Turbo text-to-image.
 *
 *   zimage_model *m;
 *   zimage_load_params lp = zimage_load_params_default();
 *   lp.model_dir = "Z-Image-Turbo";                 // diffusers folder
 *   if (zimage_load(&m, &lp) != 0) { fprintf(stderr, "%s\n", zimage_last_error()); ... }
 *   zimage_params p = zimage_params_default();
 *   p.prompt = "a red fox in the snow";
 *   zimage_image img;
 *   if (zimage_generate(m, &p, &img) == 0) zimage_save_png(&img, "fox.png", &p);
 *   zimage_image_free(&img);
 *   zimage_free(m);
 *
 * Every function returns 0 on success and -1 on error; zimage_last_error() then
 * holds a message (per thread). The library never prints and never exits.
 *
 * Threads. The library keeps no mutable process-wide state of its own: settings
 * (n_threads, ...) belong to a model, scratch memory to a call. So:
 *   - different models may be loaded, used and freed in different threads at once;
 *   - one loaded model may run zimage_generate / zimage_validate from several
 *     threads at once (generation only reads the model);
 *   - zimage_free(m) must not overlap any other call on m;
 *   - the parameter and image structs belong to the caller: do not share one
 *     zimage_image between concurrent calls.
 * tests/thread/thread_test.c checks that concurrent generations give the same bits
 * as sequential ones (`make test`; under ThreadSanitizer: `make test-tsan`). */
#ifndef ZIMAGE_H
#define ZIMAGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZIMAGE_VERSION "0.1.0"

/* Symbols of the shared library: the library is built with -fvisibility=hidden and
 * exports exactly the functions marked ZIMAGE_API (all named zimage_*). */
#if defined(__GNUC__) && !defined(_WIN32)
#define ZIMAGE_API __attribute__((visibility("default")))
#else
#define ZIMAGE_API
#endif

/* ABI: libzimage.so.0 (SONAME) stays compatible while the 0 is kept. The parameter
 * structs below start with struct_size, which their _default() functions set:
 * always start from zimage_load_params_default() / zimage_params_default(). New
 * fields are only ever appended, and the library reads only the fields that fit in
 * struct_size (the rest keep their defaults), so a program built against an older
 * header keeps working. struct_size smaller than the first release's struct (or 0
 * from a `= {0}` initializer) is refused with an error. */

typedef struct zimage_model zimage_model;

/* Where the weights are. model_dir is a diffusers folder (model_index.json,
 * transformer/, text_encoder/, tokenizer/, vae/, scheduler/). Any explicit path
 * below overrides the folder's component (e.g. ComfyUI split files:
 * z_image_turbo_bf16.safetensors, qwen_3_4b.safetensors, ae.safetensors). */
/* A LoRA / LoKr / LoHa adapter file for the transformer and/or the text encoder (diffusers/PEFT, kohya/musubi, ComfyUI
 * or LyCORIS LoKr / LoHa keys) and its strength (1.0: as trained; 0: no effect). */
typedef struct {
    const char *path;
    float scale;
} zimage_lora;

typedef struct {
    size_t struct_size;           /* set by zimage_load_params_default() */
    const char *model_dir;
    const char *transformer;      /* folder or .safetensors file */
    const char *text_encoder;     /* folder or .safetensors file */
    const char *tokenizer;        /* tokenizer.json */
    const char *vae;              /* folder or ae.safetensors */
    const char *scheduler_config; /* scheduler_config.json (optional: shift 3.0 default) */
    int n_threads;                /* kernel threads of each call on this model; 0: all cores */
    int precision;                /* ZIMAGE_PRECISION_*: arithmetic of the text encoder and DiT */
    /* ---- adapters (appended) ---- */
    const zimage_lora *loras;     /* merged into dense weights at load, run-time terms on quantized ones */
    int n_loras;
    int lora_lenient;             /* unmatched adapter keys: skip them (zimage_load_warnings) instead of failing */
    /* ---- (appended) ---- */
    int vae_precision;            /* ZIMAGE_PRECISION_* of the VAE's convs and attention; AUTO (default):
                                     the same as the text encoder and DiT; F32: the official loader's fp32 VAE */
    int low_memory;               /* 1: before each VAE decode, drop the transformer's mapped weight pages
                                     from this process (they stay in the OS page cache): the peak is the
                                     larger of the DiT and VAE stages instead of their sum; the next
                                     generation maps them back (minor faults, ~0.2 s per GB). The CLI
                                     sets it; the server does with --low-memory. */
} zimage_load_params;

/* AUTO: bf16 where the CPU has bf16 matrix units and zimage has kernels for them (AVX512-BF16,
 * AMX), else f32. F32: products of f32 (bf16 weights upcast exactly) - what the golden fixtures
 * pin down. BF16: the inputs of every matmul/attention product rounded to bfloat16 with f32
 * accumulation, like the official bf16 pipeline. The VAE follows `vae_precision`. */
#define ZIMAGE_PRECISION_AUTO 0
#define ZIMAGE_PRECISION_F32 1
#define ZIMAGE_PRECISION_BF16 2
/* INT8: matmuls whose weights are block-quantized (GGUF Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K)
 * run on int8 dot products with activations quantized per block of 32 (like ggml); everything
 * else as BF16. Never chosen by AUTO (docs/PRECISION.md, PERF.md entry 23). */
#define ZIMAGE_PRECISION_INT8 3

typedef enum {
    ZIMAGE_STAGE_LOAD = 0,
    ZIMAGE_STAGE_TEXT,    /* tokenize + text encoder */
    ZIMAGE_STAGE_DENOISE, /* one call per finished step */
    ZIMAGE_STAGE_DECODE,  /* VAE */
    ZIMAGE_STAGE_DONE
} zimage_stage;

/* Progress: step/total count denoising steps (0/total at the start of the loop).
 * Return non-zero to cancel generation (zimage_generate then fails with "cancelled"). */
typedef int (*zimage_progress_fn)(void *user, zimage_stage stage, int step, int total, double seconds);

#define ZIMAGE_SEED_RANDOM UINT64_MAX

struct zimage_image;
/* Live preview (zimage_params.preview): called every preview_every steps with a small
 * RGB picture of the current estimate of the clean image (x0 = x_t - sigma v). The
 * image is valid during the call only. Return non-zero to cancel. */
typedef int (*zimage_preview_fn)(void *user, int step, int total, const struct zimage_image *preview);

typedef struct {
    size_t struct_size;          /* set by zimage_params_default() */
    const char *prompt;
    const char *negative_prompt; /* NULL: "" (used only with guidance > 1) */
    int width, height;           /* multiples of 16; 0: 1024 */
    int steps;                   /* 0: model default (Turbo: 8) */
    float guidance;              /* < 0: model default (Turbo: 0 = no CFG); CFG when > 1 */
    float cfg_truncation;        /* skip CFG where t_model > this (default 1.0: never) */
    int cfg_normalization;       /* clamp ||u|| to ||u_pos|| (base model "realism" mode) */
    uint64_t seed;               /* ZIMAGE_SEED_RANDOM: draw one (reported in the result) */
    int max_sequence_length;     /* prompt token limit, default 512 */
    zimage_progress_fn progress;
    void *progress_user;
    volatile int *cancel;        /* optional flag polled between steps */
    /* ---- image conditioning (diffusers ZImageImg2ImgPipeline / ZImageInpaintPipeline) ---- */
    const struct zimage_image *init_image; /* NULL: text-to-image. Any size: width/height 0 take its size
                                              rounded down to 16 (center crop); otherwise it is resized to
                                              cover width x height and center-cropped */
    const struct zimage_image *mask;       /* inpainting (needs init_image, same size): white = repaint */
    double strength;                       /* (0, 1]; < 0: default 0.6 (img2img) / 1.0 (inpainting) */
    float mask_blur;                       /* > 0: paste the original back outside the mask, blurred with
                                              this std in pixels; 0: pure diffusers output */
    /* ---- previews ---- */
    zimage_preview_fn preview;             /* NULL: none */
    void *preview_user;
    int preview_every;                     /* every N steps (0: every step) */
    int preview_vae;                       /* decode with the real VAE (full size, slow) instead of the
                                              linear latent->RGB projection (1/8 size, ~free) */
} zimage_params;

/* Timings of one generation in seconds. */
typedef struct {
    double text, denoise, decode, total;
    double step[1000]; /* per denoising step (first `steps` entries) */
    double preview;    /* all previews together */
    int n_previews;
} zimage_timings;

typedef struct zimage_image {
    uint8_t *rgb;   /* [height, width, 3] */
    int width, height;
    uint64_t seed;  /* the seed actually used */
    int steps;
    float guidance;
    int prompt_tokens;          /* templated prompt length before truncation */
    int prompt_truncated;       /* tokens beyond max_sequence_length were dropped (as upstream does) */
    zimage_timings timings;
} zimage_image;

ZIMAGE_API zimage_load_params zimage_load_params_default(void);
ZIMAGE_API zimage_params zimage_params_default(void);

ZIMAGE_API int zimage_load(zimage_model **out, const zimage_load_params *p);
ZIMAGE_API void zimage_free(zimage_model *m);
/* Warnings of the last zimage_load of m (skipped LoRA keys with lora_lenient), or NULL. */
ZIMAGE_API const char *zimage_load_warnings(const zimage_model *m);
/* Model defaults (Turbo: 8 steps, guidance 0). */
ZIMAGE_API int zimage_default_steps(const zimage_model *m);
ZIMAGE_API float zimage_default_guidance(const zimage_model *m);
/* Check parameters without running anything (sizes, steps, guidance, prompt length). */
ZIMAGE_API int zimage_validate(const zimage_model *m, const zimage_params *p);

ZIMAGE_API int zimage_generate(zimage_model *m, const zimage_params *p, zimage_image *out);
ZIMAGE_API void zimage_image_free(zimage_image *img);
/* Read a PNG or JPEG (by content) into img->rgb/width/height (other fields zeroed). */
ZIMAGE_API int zimage_image_load(const char *path, zimage_image *img);
/* The same from the bytes of a PNG or JPEG file in memory (e.g. an upload). Sides above
 * max_side are refused before any pixel buffer is allocated (0: the library's limit, 16384).
 * flags: ZIMAGE_DECODE_ALPHA_MASK gives gray 255 - alpha instead of the colors (a PNG whose
 * transparent pixels mark what to repaint, as OpenAI edit masks do -> white = repaint). */
#define ZIMAGE_DECODE_ALPHA_MASK 1
ZIMAGE_API int zimage_image_decode(const void *data, size_t len, int max_side, int flags, zimage_image *img);

/* PNG with A1111-style "parameters" text plus Software/prompt metadata. */
ZIMAGE_API int zimage_save_png(const zimage_image *img, const char *path, const zimage_params *p, const char *model_name);
/* The same PNG (same metadata) into memory: *png is a new buffer of *len bytes, free with free(). */
ZIMAGE_API int zimage_png_encode(const zimage_image *img, const zimage_params *p, const char *model_name, uint8_t **png,
                                 size_t *len);

/* Debugging aids. Tokenize `text` with a tokenizer.json (templated: wrap in the chat
 * template and truncate to max_len as the pipeline does). ids and the byte-level
 * token strings are new arrays; free with zimage_tokens_free. */
ZIMAGE_API int zimage_tokenize(const char *tokenizer_json, const char *text, int templated, int max_len, int32_t **ids,
                    char ***pieces, int *n);
ZIMAGE_API void zimage_tokens_free(int32_t *ids, char **pieces, int n);
/* Caption features of a prompt (chat template, truncation, Qwen3 hidden_states[-2]) using
 * only the tokenizer and text encoder named by lp (model_dir and/or explicit paths):
 * feats [n_tokens, dim] (free with free()). Nothing else is loaded. */
ZIMAGE_API int zimage_encode_prompt(const zimage_load_params *lp, const char *prompt, int max_len, float **feats, int *n_tokens,
                         int *dim);

/* Write a model component as GGUF (`zimage quantize`): input is a diffusers folder, a component
 * folder or a single file; type "q8_0", "q6_k", "q5_k", "q4_k", "q4_0", "q3_k", "q2_k" (also
 * q4_1, q5_0, q5_1, f16, bf16, f32); component "dit" or "text-encoder". flags: FORCE overwrites
 * an existing output; FAST uses ggml's plain reference quantizers (what llama-quantize does
 * without an importance matrix: 2-6x faster k-quants, slightly larger error) instead of the
 * weighted search. progress (may be NULL) gets bytes done / total and the tensor name. */
#define ZIMAGE_QUANTIZE_FORCE 1
#define ZIMAGE_QUANTIZE_FAST 2
/* threads quantizing rows in parallel (default 0: all cores); the output is the same for any count */
#define ZIMAGE_QUANTIZE_THREADS(n) ((n) << 8)
ZIMAGE_API int zimage_quantize(const char *input, const char *output, const char *type, const char *component, int flags,
                    void (*progress)(void *user, uint64_t done, uint64_t total, const char *tensor), void *user);

ZIMAGE_API const char *zimage_last_error(void);
/* CPU name, instruction-set features found, and the kernel path used (ZIMAGE_ISA or the best
 * available), several lines of text. Thread-safe; the string is static. */
ZIMAGE_API const char *zimage_system_info(void);
/* The precision AUTO resolves to on this machine (ZIMAGE_PRECISION_F32 or _BF16). */
ZIMAGE_API int zimage_precision_auto(void);
/* Peak resident memory of the process so far, in bytes (0 if unknown). */
ZIMAGE_API size_t zimage_peak_rss(void);

#ifdef __cplusplus
}
#endif
#endif
