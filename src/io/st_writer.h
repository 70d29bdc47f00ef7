/* st_writer.h - write a .safetensors file from tensors held in memory.
 *
 * Used by tools (checkpoint conversion, random test models) and tests. Entries are
 * written in the order added; the header is padded with spaces to a multiple of 8
 * bytes so every tensor is aligned. */
#ifndef ZI_ST_WRITER_H
#define ZI_ST_WRITER_H

#include <stdint.h>

#include "../common/dtype.h"

typedef struct {
    char *name;
    zi_dtype dtype;
    int ndim;
    int64_t shape[8];
    const void *data; /* not owned; must stay valid until zi_st_writer_write */
    size_t nbytes;
} zi_st_entry;

typedef struct {
    zi_st_entry *e;
    int n, cap;
} zi_st_writer;

void zi_st_writer_init(zi_st_writer *w);
/* Add a tensor (data is referenced, not copied). Returns 0 or -1. */
int zi_st_writer_add(zi_st_writer *w, const char *name, zi_dtype dt, int ndim, const int64_t *shape, const void *data);
/* Write all tensors to path (atomically: temp file + rename). */
int zi_st_writer_write(const zi_st_writer *w, const char *path);
void zi_st_writer_free(zi_st_writer *w);

#endif
