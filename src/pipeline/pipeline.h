/* pipeline.h - internal side of the public API (include/zimage.h).
 *
 * The generation loop of docs/MODEL.md §2: tokenize -> text encoder (then released)
 * -> noise -> flow-matching Euler over the DiT (with optional CFG) -> VAE decode
 * -> uint8. Hooks let tests observe every intermediate through the same code
 * path the CLI uses. */
#ifndef ZI_PIPELINE_H
#define ZI_PIPELINE_H

#include "zimage.h"

#include "../dit/dit.h"
#include "../sampling/scheduler.h"
#include "../text/tokenizer.h"
#include "../vae/vae.h"

struct zimage_model {
    char *transformer_path, *text_encoder_path, *tokenizer_path, *vae_path;
    zi_dit *dit;
    zi_vae *vae;
    zi_tokenizer *tok;
    zi_sched_config sched;
    int default_steps;
    float default_guidance;
    int n_threads;
    kn_isa isa; /* kernel path (ZIMAGE_ISA or the best one), installed per call with n_threads */
    kn_precision precision; /* text encoder and DiT */
    kn_precision vae_precision; /* VAE convs and attention */
    int low_memory; /* drop the DiT's mapped pages before the VAE decode */
    char *warnings; /* of zimage_load (skipped LoRA keys), or NULL */
    zimage_lora *te_loras; /* adapters with text-encoder modules (paths owned), applied at each encode */
    int n_te_loras;
};

/* Observation hooks (all optional). Arrays are float32, latents [16, h, w]. */
typedef struct {
    void *user;
    void (*on_tokens)(void *user, int negative, const int32_t *ids, int n);
    void (*on_text)(void *user, int negative, const float *feats, int n, int dim);
    void (*on_noise)(void *user, const float *noise, int64_t n);
    void (*on_sigmas)(void *user, const float *sigmas, int n_steps);
    /* noise_pred = guided u = u_pos + g (u_pos - u_neg), before the sampler negates it;
     * dit_neg and noise_pred are NULL without CFG at that step */
    void (*on_step)(void *user, int step, float t_model, const float *dit_pos, const float *dit_neg,
                    const float *noise_pred, const float *latents, int64_t n);
    void (*on_latents)(void *user, const float *latents, int64_t n);
    void (*on_image)(void *user, const float *image, int H, int W);
    /* image conditioning intermediates, float32: "moments" [32,h,w], "posterior_eps",
     * "image_latents", "noise", "latents_init" [16,h,w], "mask_latent" [h,w] */
    void (*on_tensor)(void *user, const char *name, const float *data, int64_t n);
} zi_pipeline_hooks;

/* ZIMAGE_PRECISION_* -> the kernels' precision on path isa. */
kn_precision zi_precision_resolve(int precision, kn_isa isa);

/* Copy a caller's parameter struct (any struct_size from the first release up) into a
 * full one of this version; fields the caller's header did not have keep their
 * defaults. -1 with a message for a struct_size that is too small or absurd. */
int zi_pipeline_load_params(zimage_load_params *out, const zimage_load_params *in);
int zi_pipeline_params(zimage_params *out, const zimage_params *in);

int zi_pipeline_generate(zimage_model *m, const zimage_params *p, zimage_image *out, const zi_pipeline_hooks *h);

/* Working memory (bytes, beyond the mmapped weights) of a W x H generation: the larger of
 * the DiT activations and the VAE decode. Used to refuse sizes that cannot fit. */
double zi_pipeline_work_bytes(const zimage_model *m, int W, int H, int max_tokens);

/* Explicit path, else dir/sub (NULL if neither is given). New string. */
char *zi_pipeline_component_path(const char *explicit_path, const char *dir, const char *sub);
/* The tokenizer: explicit tokenizer.json, else dir/tokenizer/tokenizer.json when it exists, else
 * the text encoder itself when it is a GGUF (its tokenizer.ggml.* vocabulary); NULL if none. */
char *zi_pipeline_tokenizer_path(const char *explicit_path, const char *dir, const char *text_encoder);
/* 1 if the file starts with the GGUF magic. */
int zi_pipeline_is_gguf(const char *path);

/* Encode one prompt with the text encoder at `path` (loaded, adapters applied, used, released). */
int zi_pipeline_encode_prompt(const zi_tokenizer *tok, const char *te_path, const zimage_lora *loras, int n_loras,
                              const char *prompt, int max_len, float **feats, int *n_tokens, int *dim,
                              const zi_pipeline_hooks *h, int negative);

#endif
