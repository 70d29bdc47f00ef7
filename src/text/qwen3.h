/* qwen3.h - the Qwen3-4B text encoder (docs/MODEL.md §3.5, §4.3, §4.4).
 *
 * Pipeline position: token ids (text/tokenizer) -> here -> caption features
 * cap_feats [n, hidden] consumed by the DiT caption embedder. Z-Image takes
 * hidden_states[-2], the raw residual stream after decoder layer N-2 (layer 34
 * of 36 in the real model), without the final norm; the last decoder layer and
 * model.norm are never loaded. Weights stay mmapped; activations are float32. */
#ifndef ZI_QWEN3_H
#define ZI_QWEN3_H

#include <stdint.h>

#include "../kernels/kernels.h"

typedef struct {
    int hidden;       /* 2560 (tiny: 8) */
    int n_layers;     /* 36: layers in the checkpoint; layers 0..n_layers-2 are run */
    int n_heads;      /* 32 query heads */
    int n_kv_heads;   /* 8 key/value heads (GQA) */
    int head_dim;     /* 128; n_heads*head_dim need not equal hidden */
    int intermediate; /* 9728 */
    int vocab;        /* 151936 (embedding rows) */
    float rms_eps;    /* 1e-6 */
    float rope_theta; /* 1e6 */
} zi_qwen3_config;

typedef struct zi_qwen3 zi_qwen3;

/* Optional hook: called with "hidden_states.i" [n, hidden] float32 for
 * i = 0 (embedding output) .. n_layers-1 (output of layer n_layers-2), plus
 * "hidden_states.<n_layers>" (norm of the last layer) for a zi_qwen3_load_all model. */
typedef void (*zi_qwen3_dump_fn)(void *user, const char *name, const float *data, int64_t rows, int64_t cols);

/* Load from a diffusers text_encoder/ folder (config.json + safetensors, sharded or
 * not) or from a single safetensors file (e.g. ComfyUI's qwen_3_4b.safetensors; the
 * config is then inferred from the weight shapes). Names may carry the "model." prefix
 * or not. Returns 0, or -1 with zi_last_error(). */
int zi_qwen3_load(zi_qwen3 **out, const char *path);
/* Same, without reading the weights ahead (they are only mapped): for checking a model (shapes,
 * adapters) that is not run now; zi_qwen3_load reads the whole file (MADV_POPULATE_READ). */
int zi_qwen3_load_unread(zi_qwen3 **out, const char *path);
/* Test/debug variant: also loads the last decoder layer and model.norm so that the dump
 * hook gets the final-normed hidden_states.<n_layers>. The encode output is unchanged. */
int zi_qwen3_load_all(zi_qwen3 **out, const char *path);
void zi_qwen3_free(zi_qwen3 *m);
/* Only the configuration of what zi_qwen3_load would load (no weights read: the files are
 * mapped, not prefetched). */
int zi_qwen3_load_config(zi_qwen3_config *c, const char *path);

int zi_qwen3_hidden(const zi_qwen3 *m);

/* Weights for adapters (pipeline/lora.c). Layers loaded: n_layers-1 (the last one does not
 * reach hidden_states[-2]), or n_layers with load_all. zi_qwen3_mat: matrix `which` (0..6 in the
 * order of zi_qwen3_mat_name: self_attn.q_proj, k_proj, v_proj, o_proj, mlp.gate_proj, up_proj,
 * down_proj) of a loaded layer, NULL outside. keep: the model frees buf (zi_free_aligned) with
 * itself (on failure buf is freed and -1 returned); owns: p is the start of a kept buffer. */
enum { ZI_QWEN3_N_MATS = 7 };
int zi_qwen3_n_loaded(const zi_qwen3 *m);
kn_mat *zi_qwen3_mat(zi_qwen3 *m, int layer, int which);
const char *zi_qwen3_mat_name(int which);
int zi_qwen3_keep(zi_qwen3 *m, void *buf);
int zi_qwen3_owns(const zi_qwen3 *m, const void *p);
const zi_qwen3_config *zi_qwen3_get_config(const zi_qwen3 *m);

/* Prefill n tokens (positions 0..n-1, causal) and write hidden_states[-2] to out [n, hidden].
 * Returns 0, or -1 (n < 1, id outside [0, vocab), out of memory). */
int zi_qwen3_encode(zi_qwen3 *m, const int32_t *ids, int n, float *out);
/* Same, calling dump (may be NULL) with every hidden state. */
int zi_qwen3_encode_dump(zi_qwen3 *m, const int32_t *ids, int n, float *out, zi_qwen3_dump_fn dump,
                         void *dump_user);

/* RoPE tables (rotate_half layout) for positions 0..n-1: cos/sin [n, head_dim/2];
 * the full head_dim-wide table repeats each row twice. inv_freq and angles in float32. */
void zi_qwen3_rope_table(int head_dim, float theta, int n, float *cos, float *sin);

#endif
