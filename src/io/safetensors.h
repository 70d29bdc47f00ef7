/* safetensors.h - memory-mapped safetensors reader with full header validation.
 *
 * File layout: u64 little-endian header length N, N bytes of JSON header,
 * then the data area. Each header entry gives dtype, shape and
 * [begin, end) offsets relative to the data area. zi_st_open checks all of it
 * (length, JSON, dtype names, shapes, offsets inside the data area, no overlap,
 * byte size = product(shape) x dtype size) before handing out views. */
#ifndef ZI_SAFETENSORS_H
#define ZI_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "../common/dtype.h"

#define ZI_MAX_DIMS 8

typedef struct {
    char *name;
    zi_dtype dtype;
    int ndim;
    int64_t shape[ZI_MAX_DIMS];
    int64_t numel;
    const void *data;   /* points into the mapping; aligned to the element size */
    size_t nbytes;
    const char *file;   /* path of the file holding it (owned by the zi_st_file) */
    float scale;        /* per-tensor scale of ComfyUI "scaled fp8" weights (0 = none; set by zi_store) */
} zi_tensor;

struct zi_gguf_meta; /* GGUF key/values (gguf.h) */

typedef struct {
    char *path;
    struct zi_gguf_meta *gguf; /* non-NULL when the file is GGUF (gguf.h) */
    void *map;          /* mmap of the whole file (or NULL for an empty file) */
    size_t map_size;
    void *owned;        /* aligned copy of the data area when the header is not 8-byte padded */
    zi_tensor *tensors; /* sorted by name */
    int n_tensors;
} zi_st_file;

/* Open and validate; returns 0, or -1 with zi_last_error() naming the file and problem.
 * A file starting with the GGUF magic is read as GGUF (gguf.h). */
int zi_st_open(zi_st_file *f, const char *path);
void zi_st_close(zi_st_file *f);
/* Binary search by exact name; NULL if absent (no error recorded). */
const zi_tensor *zi_st_find(const zi_st_file *f, const char *name);

/* Format a shape as "[a, b, c]" into buf. */
const char *zi_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape);

/* Copy/convert a tensor into a newly allocated f32 array (NULL on error); applies t->scale. */
float *zi_tensor_to_f32(const zi_tensor *t);

#endif
