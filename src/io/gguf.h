/* gguf.h - memory-mapped GGUF reader (v2/v3) and writer.
 *
 * GGUF is the single-file checkpoint format of ggml (llama.cpp, stable-diffusion.cpp,
 * ComfyUI-GGUF): "GGUF", u32 version, u64 tensor count, u64 KV count, the KVs
 * (key string, u32 type, value), the tensor infos (name, u32 n_dims, u64 ne[n_dims]
 * with ne[0] innermost, u32 ggml type, u64 offset), padding to general.alignment
 * (default 32), then the data area. Strings are u64 length + bytes, little-endian.
 *
 * A GGUF file opens through zi_st_open() like a safetensors file (the magic decides), so
 * zi_store and every loader see it as a name -> zi_tensor map. zi_tensor.shape is in
 * torch order (ne reversed: shape[ndim-1] = ne[0]); block-quantized tensors keep their
 * ggml blocks (dtype Q8_0 ... Q6_K, see common/quant.h). Everything is validated before
 * use: magic, version, counts against the file size, string lengths, KV value types
 * (nested arrays included), n_dims, shapes, ggml types, general.alignment, offsets inside
 * the data area and aligned, no overlaps, byte size = blocks x block bytes. Errors name
 * the file and the tensor or key. */
#ifndef ZI_GGUF_H
#define ZI_GGUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "safetensors.h"

/* Metadata value types. */
enum {
    ZI_GGUF_U8 = 0, ZI_GGUF_I8, ZI_GGUF_U16, ZI_GGUF_I16, ZI_GGUF_U32, ZI_GGUF_I32, ZI_GGUF_F32,
    ZI_GGUF_BOOL, ZI_GGUF_STRING, ZI_GGUF_ARRAY, ZI_GGUF_U64, ZI_GGUF_I64, ZI_GGUF_F64, ZI_GGUF_TYPE_COUNT
};

/* A string inside the mapping (not NUL-terminated). */
typedef struct {
    const char *s;
    size_t len;
} zi_gguf_str;

typedef struct {
    char *key;            /* NUL-terminated copy */
    uint32_t type;
    int64_t i;            /* integer and bool values */
    double f;             /* float values (and integers, converted) */
    char *str;            /* STRING: NUL-terminated copy (str_len bytes, may hold NULs) */
    size_t str_len;
    uint32_t arr_type;    /* ARRAY: element type, count */
    uint64_t arr_n;
    const uint8_t *arr_data; /* ARRAY of numbers: the packed little-endian elements in the mapping */
    zi_gguf_str *arr_strs;   /* ARRAY of STRING: each element */
} zi_gguf_kv;

struct zi_gguf_meta {
    uint32_t version;
    uint32_t alignment;
    zi_gguf_kv *kv;
    int64_t n_kv;
};

/* Parse f->map (f->path, f->map_size set; starts with "GGUF") into f->tensors and f->gguf.
 * Called by zi_st_open. 0 or -1 with the error recorded. */
int zi_gguf_parse(zi_st_file *f);
void zi_gguf_meta_free(struct zi_gguf_meta *m);

/* KV lookup; NULL if absent or f is not a GGUF file. */
const zi_gguf_kv *zi_gguf_find(const zi_st_file *f, const char *key);
/* Typed getters: 0, or -1 (absent / wrong type; no error recorded). */
int zi_gguf_get_int(const zi_st_file *f, const char *key, int64_t *out);
const char *zi_gguf_get_str(const zi_st_file *f, const char *key);
/* Element i of an integer ARRAY kv (any integer element type). */
int64_t zi_gguf_arr_int(const zi_gguf_kv *kv, uint64_t i);

/* llama.cpp tensor names (token_embd, blk.N.attn_q, ..., output_norm) <-> Hugging Face Qwen3
 * names (model.embed_tokens, model.layers.N.self_attn.q_proj, ..., model.norm). 0, or -1 if the
 * name has no counterpart. */
int zi_gguf_name_to_hf(const char *name, char *out, size_t cap);
int zi_gguf_name_from_hf(const char *name, char *out, size_t cap);
/* A GGUF in llama.cpp's layout (has token_embd.weight): rename its tensors to HF names, so the
 * text encoder loader sees the layout it knows. No-op for other files. */
int zi_gguf_rename_llama(zi_st_file *f);

/* ggml type number <-> dtype. -1 if unsupported. */
int zi_gguf_type_to_dtype(uint32_t ggml_type, zi_dtype *out);
uint32_t zi_gguf_dtype_to_type(zi_dtype t);

/* ---- writer ------------------------------------------------------------------------
 * Header (KVs + tensor infos) first, then each tensor's bytes in order, so tensors can be
 * produced one at a time (zimage quantize streams a 12 GB model through it). */
typedef struct {
    char *name;
    zi_dtype dtype;
    int ndim;
    int64_t shape[4]; /* torch order */
    size_t nbytes;
    uint64_t offset;
} zi_gguf_wtensor;

typedef struct {
    uint8_t *kv;          /* serialized KVs */
    size_t kv_len, kv_cap;
    int64_t n_kv;
    zi_gguf_wtensor *t;
    int n_t, cap_t;
    uint32_t alignment;
    FILE *fp;
    char *path, *tmp;
    int next;             /* next tensor to write */
    uint64_t pos;         /* bytes written to the data area */
    int failed;
} zi_gguf_writer;

void zi_gguf_writer_init(zi_gguf_writer *w);
int zi_gguf_add_str(zi_gguf_writer *w, const char *key, const char *val);
int zi_gguf_add_u32(zi_gguf_writer *w, const char *key, uint32_t val);
int zi_gguf_add_i32(zi_gguf_writer *w, const char *key, int32_t val);
int zi_gguf_add_f32(zi_gguf_writer *w, const char *key, float val);
int zi_gguf_add_bool(zi_gguf_writer *w, const char *key, int val);
int zi_gguf_add_str_array(zi_gguf_writer *w, const char *key, const char *const *vals, const size_t *lens, uint64_t n);
int zi_gguf_add_i32_array(zi_gguf_writer *w, const char *key, const int32_t *vals, uint64_t n);
/* Declare a tensor (torch-order shape, innermost dim a multiple of the block size). */
int zi_gguf_add_tensor(zi_gguf_writer *w, const char *name, zi_dtype dt, int ndim, const int64_t *shape);
/* Create path.tmp and write the header; then write every tensor's bytes in declaration
 * order with zi_gguf_write_data (any number of calls per tensor; padding between tensors is
 * inserted), then zi_gguf_write_end renames into place. */
int zi_gguf_write_begin(zi_gguf_writer *w, const char *path);
int zi_gguf_write_data(zi_gguf_writer *w, const void *data, size_t nbytes);
int zi_gguf_write_end(zi_gguf_writer *w);
/* Frees everything; removes the temp file of an unfinished write. */
void zi_gguf_writer_free(zi_gguf_writer *w);

#endif
