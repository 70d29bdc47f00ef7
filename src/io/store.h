/* store.h - a set of safetensors files seen as one name -> tensor map.
 *
 * A component of a model (transformer/, text_encoder/, vae/) is either a
 * sharded diffusers folder (`*.safetensors.index.json` + shards), a folder
 * with one `*.safetensors`, or a single file given by path. Model builders
 * look tensors up by their official names with zi_store_get(), which checks
 * the shape and reports file, tensor, expected and found shape on mismatch. */
#ifndef ZI_STORE_H
#define ZI_STORE_H

#include "safetensors.h"

typedef struct {
    char *path;          /* folder or file the store was opened from */
    zi_st_file *files;
    int n_files;
    /* Name prefixes tried in order when a name is not found as-is
     * (e.g. "model." for text encoders, "model.diffusion_model." for DiTs). */
    const char *const *prefixes;
    int n_prefixes;
} zi_store;

/* Open a folder (sharded via index json, or a single .safetensors in it) or a file. */
int zi_store_open(zi_store *s, const char *path);
void zi_store_close(zi_store *s);
/* Find by name (trying the prefixes); NULL if absent, no error recorded. */
const zi_tensor *zi_store_find(const zi_store *s, const char *name);
/* Find and check: ndim/shape must match exactly (shape entries < 0 are wildcards)
 * and the dtype a weight type (float, fp8 or block-quantized). Error names store path, tensor, shapes. */
const zi_tensor *zi_store_get(const zi_store *s, const char *name, int ndim, const int64_t *shape);
/* Convenience wrappers for 1-D and 2-D tensors. */
const zi_tensor *zi_store_get1(const zi_store *s, const char *name, int64_t d0);
const zi_tensor *zi_store_get2(const zi_store *s, const char *name, int64_t d0, int64_t d1);
/* 1-D tensor converted to a new f32 array (small vectors: norms, biases). */
float *zi_store_get_vec(const zi_store *s, const char *name, int64_t n);
int zi_store_has(const zi_store *s, const char *name);
/* Fault every mapped file in up front (madvise POPULATE_READ; WILLNEED read-ahead on kernels
 * before 5.14): a component that is read once front to back (the text encoder) then costs one
 * call instead of one page fault per 4 KiB page. Advisory: errors are ignored. */
void zi_store_prefetch(const zi_store *s);
/* Drop this process's mappings of the files' pages (madvise DONTNEED on the read-only maps): RSS
 * falls by their size, the page cache keeps them, the next access faults them back in. */
void zi_store_release_pages(const zi_store *s);

#endif
