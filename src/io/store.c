/* store.c - sharded / single-file safetensors lookup (see store.h). */
#include "store.h"

#include <sys/mman.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/error.h"
#include "gguf.h"
#include "json.h"

static int str_ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* ComfyUI "scaled fp8" checkpoints store W = fp8 * scale with one F32 scale per weight, in
 * `<layer>.scale_weight` (comfy/ops.py, scaled_fp8 files) or `<layer>.weight_scale` (newer
 * quantized-tensor metadata). Attach it to the `<layer>.weight` view; zi_tensor_to_f32 and
 * kn_mat.scale apply it. Per-channel scales are refused. */
static int store_attach_scales(zi_st_file *f) {
    static const char *const suffixes[] = {".scale_weight", ".weight_scale"};
    char name[1024];
    for (int i = 0; i < f->n_tensors; i++) {
        zi_tensor *t = &f->tensors[i];
        size_t l = strlen(t->name);
        if (l < 8 || strcmp(t->name + l - 7, ".weight") || l > 900) continue;
        for (int k = 0; k < 2; k++) {
            snprintf(name, sizeof name, "%.*s%s", (int)(l - 7), t->name, suffixes[k]);
            const zi_tensor *sc = zi_st_find(f, name);
            if (!sc) continue;
            if (sc->numel != 1 || !zi_dtype_is_float(sc->dtype))
                return zi_err("%s: scale tensor '%s' must hold one float (per-tensor scaling only)", f->path, name);
            if (t->dtype != ZI_F8_E4M3 && t->dtype != ZI_F8_E5M2)
                return zi_err("%s: '%s' scales '%s', which is %s, not fp8", f->path, name, t->name,
                              zi_dtype_name(t->dtype));
            zi_convert_to_f32(&t->scale, sc->data, sc->dtype, 1);
            if (!(t->scale > 0 && t->scale < 1e30f))
                return zi_err("%s: scale tensor '%s' = %g is not a positive finite number", f->path, name, t->scale);
        }
    }
    return 0;
}

static int store_add_file(zi_store *s, const char *path) {
    zi_st_file *nf = realloc(s->files, (size_t)(s->n_files + 1) * sizeof *nf);
    if (!nf) return zi_err("out of memory");
    s->files = nf;
    if (zi_st_open(&s->files[s->n_files], path) != 0) return -1;
    s->n_files++;
    zi_st_file *f = &s->files[s->n_files - 1];
    if (store_attach_scales(f)) return -1;
    return zi_gguf_rename_llama(f); /* llama.cpp names -> HF names */
}

/* Sharded folder: read the index, open each distinct shard, verify every
 * indexed tensor is present in the shard the index names. */
static int store_open_index(zi_store *s, const char *dir, const char *index_name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, index_name);
    json_t *idx = zi_json_load_file(path);
    if (!idx) return -1;
    json_t *wm = json_object_get(idx, "weight_map");
    if (!json_is_object(wm)) {
        json_decref(idx);
        return zi_err("%s: missing or invalid \"weight_map\" object", path);
    }
    const char *name;
    json_t *v;
    int rc = 0;
    /* open shards in order of first appearance */
    json_object_foreach(wm, name, v) {
        if (!json_is_string(v)) {
            rc = zi_err("%s: weight_map[\"%s\"] is not a file name", path, name);
            break;
        }
        const char *shard = json_string_value(v);
        if (strchr(shard, '/') || strcmp(shard, "..") == 0) {
            rc = zi_err("%s: weight_map[\"%s\"] names '%s' outside the folder", path, name, shard);
            break;
        }
        int have = 0;
        char sp[4096];
        snprintf(sp, sizeof sp, "%s/%s", dir, shard);
        for (int i = 0; i < s->n_files; i++)
            if (strcmp(s->files[i].path, sp) == 0) have = 1;
        if (!have) {
            struct stat st;
            if (stat(sp, &st) != 0) {
                rc = zi_err("%s: shard '%s' (holding tensor '%s') is missing", path, shard, name);
                break;
            }
            if (store_add_file(s, sp) != 0) {
                rc = -1;
                break;
            }
        }
        const zi_st_file *f = NULL;
        for (int i = 0; i < s->n_files; i++)
            if (strcmp(s->files[i].path, sp) == 0) f = &s->files[i];
        if (!f || !zi_st_find(f, name)) {
            rc = zi_err("%s: index maps tensor '%s' to shard '%s', which does not contain it", path, name, shard);
            break;
        }
    }
    json_decref(idx);
    return rc;
}

int zi_store_open(zi_store *s, const char *path) {
    memset(s, 0, sizeof *s);
    s->path = zi_strdup(path);
    if (!s->path) return -1;
    struct stat st;
    if (stat(path, &st) != 0) {
        zi_err("%s: no such file or folder", path);
        goto fail;
    }
    if (S_ISREG(st.st_mode)) {
        if (store_add_file(s, path) != 0) goto fail;
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) {
        zi_err("%s: not a file or folder", path);
        goto fail;
    }
    DIR *d = opendir(path);
    if (!d) {
        zi_err("%s: cannot list folder", path);
        goto fail;
    }
    char index_name[1024] = "", single[1024] = "";
    int n_single = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (str_ends_with(de->d_name, ".safetensors.index.json") && strlen(de->d_name) < sizeof index_name)
            snprintf(index_name, sizeof index_name, "%s", de->d_name);
        else if (str_ends_with(de->d_name, ".safetensors") && strlen(de->d_name) < sizeof single) {
            snprintf(single, sizeof single, "%s", de->d_name);
            n_single++;
        }
    }
    closedir(d);
    if (index_name[0]) {
        if (store_open_index(s, path, index_name) != 0) goto fail;
    } else if (n_single == 1) {
        char fp[4096];
        snprintf(fp, sizeof fp, "%s/%s", path, single);
        if (store_add_file(s, fp) != 0) goto fail;
    } else if (n_single == 0) {
        zi_err("%s: no .safetensors file in folder", path);
        goto fail;
    } else {
        zi_err("%s: %d .safetensors files but no *.safetensors.index.json to say which holds what", path, n_single);
        goto fail;
    }
    return 0;
fail:
    zi_store_close(s);
    return -1;
}

void zi_store_close(zi_store *s) {
    for (int i = 0; i < s->n_files; i++) zi_st_close(&s->files[i]);
    free(s->files);
    free(s->path);
    memset(s, 0, sizeof *s);
}

static const zi_tensor *store_find_exact(const zi_store *s, const char *name) {
    for (int i = 0; i < s->n_files; i++) {
        const zi_tensor *t = zi_st_find(&s->files[i], name);
        if (t) return t;
    }
    return NULL;
}

const zi_tensor *zi_store_find(const zi_store *s, const char *name) {
    const zi_tensor *t = store_find_exact(s, name);
    char buf[1024];
    for (int i = 0; !t && i < s->n_prefixes; i++) {
        snprintf(buf, sizeof buf, "%s%s", s->prefixes[i], name);
        t = store_find_exact(s, buf);
    }
    return t;
}

int zi_store_has(const zi_store *s, const char *name) { return zi_store_find(s, name) != NULL; }

const zi_tensor *zi_store_get(const zi_store *s, const char *name, int ndim, const int64_t *shape) {
    const zi_tensor *t = zi_store_find(s, name);
    char a[128], b[128];
    if (!t) {
        zi_err("%s: missing tensor '%s' (expected shape %s)", s->path, name, zi_shape_str(a, sizeof a, ndim, shape));
        return NULL;
    }
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        if (shape[i] >= 0 && shape[i] != t->shape[i]) ok = 0;
    if (!ok) {
        zi_err("%s: tensor '%s' has shape %s, expected %s", t->file, name, zi_shape_str(a, sizeof a, t->ndim, t->shape),
               zi_shape_str(b, sizeof b, ndim, shape));
        return NULL;
    }
    if (zi_dtype_is_block(t->dtype) && ndim >= 2 && t->shape[ndim - 1] % zi_dtype_block_elems(t->dtype)) {
        zi_err("%s: tensor '%s' is %s with rows of %lld values, not whole blocks of %lld", t->file, name,
               zi_dtype_name(t->dtype), (long long)t->shape[ndim - 1], (long long)zi_dtype_block_elems(t->dtype));
        return NULL;
    }
    if (!zi_dtype_is_weight(t->dtype)) {
        zi_err("%s: tensor '%s' has dtype %s; weights must be F32, BF16, F16, F8 or block-quantized", t->file, name,
               zi_dtype_name(t->dtype));
        return NULL;
    }
    return t;
}

const zi_tensor *zi_store_get1(const zi_store *s, const char *name, int64_t d0) {
    int64_t sh[1] = {d0};
    return zi_store_get(s, name, 1, sh);
}

const zi_tensor *zi_store_get2(const zi_store *s, const char *name, int64_t d0, int64_t d1) {
    int64_t sh[2] = {d0, d1};
    return zi_store_get(s, name, 2, sh);
}

float *zi_store_get_vec(const zi_store *s, const char *name, int64_t n) {
    const zi_tensor *t = zi_store_get1(s, name, n);
    return t ? zi_tensor_to_f32(t) : NULL;
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14 */
#endif

void zi_store_release_pages(const zi_store *s) {
    for (int i = 0; i < s->n_files; i++)
        if (s->files[i].map && s->files[i].map_size) madvise(s->files[i].map, s->files[i].map_size, MADV_DONTNEED);
}

void zi_store_prefetch(const zi_store *s) {
    for (int i = 0; i < s->n_files; i++) {
        void *p = s->files[i].map;
        size_t n = s->files[i].map_size;
        if (!p || !n) continue;
        /* populate the page tables in one call (no fault per page); older kernels: read-ahead only */
        if (madvise(p, n, MADV_POPULATE_READ) != 0) madvise(p, n, MADV_WILLNEED);
    }
}
