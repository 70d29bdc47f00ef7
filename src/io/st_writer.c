/* st_writer.c - minimal safetensors writer (see st_writer.h). */
#include "st_writer.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/error.h"

void zi_st_writer_init(zi_st_writer *w) { memset(w, 0, sizeof *w); }

int zi_st_writer_add(zi_st_writer *w, const char *name, zi_dtype dt, int ndim, const int64_t *shape, const void *data) {
    if (ndim < 0 || ndim > 8) return zi_err("st_writer: tensor '%s' has %d dims", name, ndim);
    if (zi_dtype_is_block(dt)) /* safetensors has no block formats (GGUF does: gguf.h) */
        return zi_err("st_writer: tensor '%s': %s cannot be stored in safetensors", name, zi_dtype_name(dt));
    if (w->n == w->cap) {
        int nc = w->cap ? 2 * w->cap : 64;
        zi_st_entry *ne = realloc(w->e, (size_t)nc * sizeof *ne);
        if (!ne) return zi_err("out of memory");
        w->e = ne;
        w->cap = nc;
    }
    zi_st_entry *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    if (!(e->name = zi_strdup(name))) return -1;
    e->dtype = dt;
    e->ndim = ndim;
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        e->shape[i] = shape[i];
        numel *= (size_t)shape[i];
    }
    e->data = data;
    e->nbytes = numel * zi_dtype_size(dt);
    w->n++;
    return 0;
}

int zi_st_writer_write(const zi_st_writer *w, const char *path) {
    json_t *h = json_object();
    size_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const zi_st_entry *e = &w->e[i];
        json_t *shape = json_array();
        for (int d = 0; d < e->ndim; d++) json_array_append_new(shape, json_integer(e->shape[d]));
        json_object_set_new(h, e->name,
                            json_pack("{s:s, s:o, s:[I, I]}", "dtype", zi_dtype_name(e->dtype), "shape", shape,
                                      "data_offsets", (json_int_t)off, (json_int_t)(off + e->nbytes)));
        off += e->nbytes;
    }
    json_object_set_new(h, "__metadata__", json_pack("{s:s}", "format", "pt"));
    char *text = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    if (!text) return zi_err("st_writer: cannot serialize header");
    size_t hl = strlen(text), padded = (hl + 7) & ~(size_t)7;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(text);
        return zi_err("%s: cannot create: %s", path, strerror(errno));
    }
    uint8_t lb[8];
    for (int i = 0; i < 8; i++) lb[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    int ok = fwrite(lb, 1, 8, f) == 8 && fwrite(text, 1, hl, f) == hl;
    for (size_t i = hl; ok && i < padded; i++) ok = fputc(' ', f) != EOF;
    for (int i = 0; ok && i < w->n; i++) ok = fwrite(w->e[i].data, 1, w->e[i].nbytes, f) == w->e[i].nbytes;
    free(text);
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return zi_err("%s: write failed: %s", path, strerror(errno));
    }
    return 0;
}

void zi_st_writer_free(zi_st_writer *w) {
    for (int i = 0; i < w->n; i++) free(w->e[i].name);
    free(w->e);
    memset(w, 0, sizeof *w);
}
