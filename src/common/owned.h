/* owned.h - a model's list of heap buffers it owns (weights converted at load, LoRA-merged
 * copies, run-time adapter terms), freed with the model. Used by the DiT and the text encoder. */
#ifndef ZI_OWNED_H
#define ZI_OWNED_H

#include <stdlib.h>

#include "error.h"

typedef struct {
    void **p;
    int n;
} zi_owned;

/* Take ownership of buf (from zi_malloc_aligned); on failure buf is freed and -1 returned. */
static inline int zi_owned_add(zi_owned *o, void *buf) {
    void **np = realloc(o->p, (size_t)(o->n + 1) * sizeof *np);
    if (!np) {
        zi_free_aligned(buf);
        return zi_err("out of memory");
    }
    o->p = np;
    o->p[o->n++] = buf;
    return 0;
}

/* 1 if p is the exact start of an owned buffer (a view into the middle of one answers 0). */
static inline int zi_owned_has(const zi_owned *o, const void *p) {
    for (int i = 0; i < o->n; i++)
        if (o->p[i] == p) return 1;
    return 0;
}

static inline void zi_owned_free(zi_owned *o) {
    for (int i = 0; i < o->n; i++) zi_free_aligned(o->p[i]);
    free(o->p);
    o->p = NULL;
    o->n = 0;
}

#endif
