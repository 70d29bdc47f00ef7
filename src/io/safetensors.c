/* safetensors.c - mmap + validate a .safetensors file (see safetensors.h). */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/error.h"
#include "gguf.h"
#include "json.h"

#define ZI_ST_MAX_HEADER (100u * 1024u * 1024u) /* the format caps headers at 100 MB */

const char *zi_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, cap - o, "[");
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
    return buf;
}

static int st_cmp_name(const void *a, const void *b) {
    return strcmp(((const zi_tensor *)a)->name, ((const zi_tensor *)b)->name);
}

typedef struct {
    uint64_t begin, end;
    int idx;
} st_range;

static int st_cmp_range(const void *a, const void *b) {
    const st_range *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

/* Parse one header entry into t. */
static int st_parse_entry(const char *path, const char *name, json_t *v, uint64_t data_size, zi_tensor *t,
                          uint64_t *begin, uint64_t *end) {
    if (!json_is_object(v)) return zi_err("%s: tensor '%s': header entry is not an object", path, name);
    json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"),
           *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd)) return zi_err("%s: tensor '%s': missing or non-string \"dtype\"", path, name);
    if (zi_dtype_parse(json_string_value(jd), &t->dtype) != 0)
        return zi_err("%s: tensor '%s': unsupported dtype '%s' (supported: F32, BF16, F16, F8_E4M3, F8_E5M2, I32, U8)", path, name,
                      json_string_value(jd));
    if (!json_is_array(js)) return zi_err("%s: tensor '%s': missing or non-array \"shape\"", path, name);
    if (json_array_size(js) > ZI_MAX_DIMS)
        return zi_err("%s: tensor '%s': %zu dimensions (at most %d supported)", path, name, json_array_size(js),
                      ZI_MAX_DIMS);
    t->ndim = (int)json_array_size(js);
    uint64_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        json_t *e = json_array_get(js, (size_t)i);
        if (!json_is_integer(e) || json_integer_value(e) < 0)
            return zi_err("%s: tensor '%s': shape[%d] is not a non-negative integer", path, name, i);
        uint64_t d = (uint64_t)json_integer_value(e);
        if (d && numel > (UINT64_MAX / 16) / d)
            return zi_err("%s: tensor '%s': shape overflows", path, name);
        numel *= d;
        t->shape[i] = (int64_t)d;
    }
    t->numel = (int64_t)numel;
    if (!json_is_array(jo) || json_array_size(jo) != 2 || !json_is_integer(json_array_get(jo, 0)) ||
        !json_is_integer(json_array_get(jo, 1)))
        return zi_err("%s: tensor '%s': \"data_offsets\" must be [begin, end]", path, name);
    json_int_t b = json_integer_value(json_array_get(jo, 0)), e = json_integer_value(json_array_get(jo, 1));
    if (b < 0 || e < b) return zi_err("%s: tensor '%s': invalid data_offsets [%lld, %lld]", path, name,
                                      (long long)b, (long long)e);
    if ((uint64_t)e > data_size)
        return zi_err("%s: tensor '%s': data_offsets [%lld, %lld] outside the data area (%llu bytes)", path, name,
                      (long long)b, (long long)e, (unsigned long long)data_size);
    uint64_t want = numel * zi_dtype_size(t->dtype);
    if ((uint64_t)(e - b) != want) {
        char sb[128];
        return zi_err("%s: tensor '%s': byte size %lld does not match shape %s x %s (%llu bytes)", path, name,
                      (long long)(e - b), zi_shape_str(sb, sizeof sb, t->ndim, t->shape), zi_dtype_name(t->dtype),
                      (unsigned long long)want);
    }
    *begin = (uint64_t)b;
    *end = (uint64_t)e;
    return 0;
}

int zi_st_open(zi_st_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return zi_err("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return zi_err("%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if (size < 8) {
        close(fd);
        return zi_err("%s: truncated safetensors file (%zu bytes, header length needs 8)", path, size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return zi_err("%s: mmap failed: %s", path, strerror(errno));
    f->map = map;
    f->map_size = size;
    f->path = zi_strdup(path);
    if (!f->path) goto fail;

    const uint8_t *p = map;
    if (memcmp(p, "GGUF", 4) == 0) {
        if (zi_gguf_parse(f) != 0) goto fail;
        return 0;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > ZI_ST_MAX_HEADER) {
        zi_err("%s: header length %llu is absurd (limit %u bytes)", path, (unsigned long long)hlen,
               ZI_ST_MAX_HEADER);
        goto fail;
    }
    if (hlen > size - 8) {
        zi_err("%s: header length %llu runs past end of file (%zu bytes): file truncated?", path,
               (unsigned long long)hlen, size);
        goto fail;
    }
    if (hlen < 2) {
        zi_err("%s: header too short (%llu bytes)", path, (unsigned long long)hlen);
        goto fail;
    }
    json_t *hdr = zi_json_load_buf((const char *)p + 8, (size_t)hlen, path);
    if (!hdr) {
        zi_err_ctx("%s: header", path);
        goto fail;
    }
    if (!json_is_object(hdr)) {
        json_decref(hdr);
        zi_err("%s: header is not a JSON object", path);
        goto fail;
    }
    uint64_t data_off = 8 + hlen, data_size = size - data_off;
    const uint8_t *data = p + data_off;
    if (data_off % 8 != 0 && data_size > 0) {
        /* Header not padded to 8 bytes: element views would be misaligned, so copy the
         * data area once into aligned memory (rare; standard writers pad the header). */
        f->owned = zi_malloc_aligned((size_t)data_size);
        if (!f->owned) {
            json_decref(hdr);
            goto fail;
        }
        memcpy(f->owned, data, (size_t)data_size);
        data = f->owned;
    }
    size_t n = json_object_size(hdr);
    f->tensors = zi_calloc(n ? n : 1, sizeof(zi_tensor));
    st_range *ranges = zi_calloc(n ? n : 1, sizeof(st_range));
    if (!f->tensors || !ranges) {
        free(ranges);
        json_decref(hdr);
        goto fail;
    }
    const char *key;
    json_t *val;
    int ok = 1;
    json_object_foreach(hdr, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(val)) {
                zi_err("%s: __metadata__ is not an object", path);
                ok = 0;
                break;
            }
            continue;
        }
        zi_tensor *t = &f->tensors[f->n_tensors];
        uint64_t b = 0, e = 0;
        if (st_parse_entry(path, key, val, data_size, t, &b, &e) != 0) {
            ok = 0;
            break;
        }
        size_t es = zi_dtype_size(t->dtype);
        if (b % es != 0) {
            zi_err("%s: tensor '%s': data offset %llu is not aligned to its %zu-byte elements", path, key,
                   (unsigned long long)b, es);
            ok = 0;
            break;
        }
        t->name = zi_strdup(key);
        if (!t->name) {
            ok = 0;
            break;
        }
        t->data = data + b;
        t->nbytes = (size_t)(e - b);
        t->file = f->path;
        ranges[f->n_tensors].begin = b;
        ranges[f->n_tensors].end = e;
        ranges[f->n_tensors].idx = f->n_tensors;
        f->n_tensors++;
    }
    json_decref(hdr);
    if (ok) {
        qsort(ranges, (size_t)f->n_tensors, sizeof *ranges, st_cmp_range);
        for (int i = 1; i < f->n_tensors; i++) {
            if (ranges[i].begin < ranges[i - 1].end) {
                zi_err("%s: tensors '%s' and '%s' have overlapping data ranges", path,
                       f->tensors[ranges[i - 1].idx].name, f->tensors[ranges[i].idx].name);
                ok = 0;
                break;
            }
        }
    }
    free(ranges);
    if (!ok) goto fail;
    qsort(f->tensors, (size_t)f->n_tensors, sizeof(zi_tensor), st_cmp_name);
    /* names are unique: jansson rejects duplicate keys (JSON_REJECT_DUPLICATES) */
    return 0;
fail:
    zi_st_close(f);
    return -1;
}

void zi_st_close(zi_st_file *f) {
    if (f->tensors)
        for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    zi_gguf_meta_free(f->gguf);
    if (f->map) munmap(f->map, f->map_size);
    zi_free_aligned(f->owned);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const zi_tensor *zi_st_find(const zi_st_file *f, const char *name) {
    int lo = 0, hi = f->n_tensors - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = strcmp(name, f->tensors[mid].name);
        if (c == 0) return &f->tensors[mid];
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

float *zi_tensor_to_f32(const zi_tensor *t) {
    float *out = zi_malloc((size_t)t->numel * sizeof(float));
    if (out) zi_convert_to_f32(out, t->data, t->dtype, (size_t)t->numel);
    if (out && t->scale != 0)
        for (int64_t i = 0; i < t->numel; i++) out[i] *= t->scale;
    return out;
}
