/* multipart.c - multipart/form-data bodies (what OpenAI clients send to /v1/images/edits)
 * -> the JSON object request.c parses, using libmicrohttpd's post processor.
 *
 * Files become base64 strings (image, image[] -> the "image" list; mask), text fields
 * strings, and the numeric fields (n, seed, steps, guidance_scale, strength) numbers when
 * their text is a number (else they stay strings and the parser names them). */
#include "multipart.h"

#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"

#define MP_MAX_FIELDS 32
#define MP_MAX_KEY 64

typedef struct {
    char key[MP_MAX_KEY];
    int is_file;
    char *data;
    size_t len, cap;
} mp_field;

typedef struct {
    mp_field f[MP_MAX_FIELDS];
    int n;
    int overflow; /* too many fields, or a key too long */
    int oom;
} mp_form;

static enum MHD_Result mp_iterate(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                                  const char *content_type, const char *transfer_encoding, const char *data,
                                  uint64_t off, size_t size) {
    (void)kind;
    (void)content_type;
    (void)transfer_encoding;
    mp_form *m = cls;
    if (!key || strlen(key) >= MP_MAX_KEY) {
        m->overflow = 1;
        return MHD_NO;
    }
    mp_field *f = m->n ? &m->f[m->n - 1] : NULL;
    if (!f || off == 0 || strcmp(f->key, key)) { /* a new field starts */
        if (m->n == MP_MAX_FIELDS) {
            m->overflow = 1;
            return MHD_NO;
        }
        f = &m->f[m->n++];
        snprintf(f->key, sizeof f->key, "%s", key);
        f->is_file = filename != NULL;
    }
    if (f->len + size + 1 > f->cap) {
        size_t cap = f->cap ? f->cap : 256;
        while (cap < f->len + size + 1) cap *= 2;
        char *b = realloc(f->data, cap);
        if (!b) {
            m->oom = 1;
            return MHD_NO;
        }
        f->data = b;
        f->cap = cap;
    }
    if (size) memcpy(f->data + f->len, data, size);
    f->len += size;
    f->data[f->len] = 0;
    return MHD_YES;
}

/* A text field's value as JSON: a number for the numeric keys when it reads as one. */
static json_t *mp_value(const mp_field *f) {
    static const char *numeric[] = {"n", "seed", "steps", "guidance_scale", "strength"};
    for (size_t i = 0; i < sizeof numeric / sizeof *numeric; i++) {
        if (strcmp(f->key, numeric[i]) || !f->len || strlen(f->data) != f->len) continue;
        json_error_t je;
        json_t *v = json_loads(f->data, JSON_DECODE_ANY, &je);
        if (v && json_is_number(v)) return v;
        json_decref(v);
    }
    return json_stringn(f->data ? f->data : "", f->len); /* NULL when not UTF-8: reported by the caller */
}

int srv_multipart_to_json(struct MHD_Connection *c, const char *body, size_t len, json_t **out, srv_error *err) {
    *out = NULL;
    mp_form *m = calloc(1, sizeof *m);
    json_t *o = json_object(), *images = json_array();
    int rc = -1;
    if (!m || !o || !images) {
        snprintf(err->message, sizeof err->message, "out of memory");
        goto done;
    }
    struct MHD_PostProcessor *pp = MHD_create_post_processor(c, 65536, mp_iterate, m);
    if (!pp) {
        snprintf(err->message, sizeof err->message, "multipart/form-data: missing or unusable boundary in Content-Type");
        goto done;
    }
    enum MHD_Result ok = MHD_post_process(pp, body, len);
    if (MHD_destroy_post_processor(pp) != MHD_YES) ok = MHD_NO; /* the body ended inside a part */
    if (m->oom || m->overflow || ok != MHD_YES) {
        snprintf(err->message, sizeof err->message, "%s",
                 m->oom ? "out of memory"
                 : m->overflow ? "multipart/form-data: too many fields (at most 32) or a field name over 63 bytes"
                               : "malformed multipart/form-data body");
        goto done;
    }
    for (int i = 0; i < m->n; i++) {
        const mp_field *f = &m->f[i];
        int is_image = !strcmp(f->key, "image") || !strcmp(f->key, "image[]");
        json_t *v;
        if (f->is_file || is_image || !strcmp(f->key, "mask")) {
            /* a file upload: base64 for request.c, which decodes and checks it */
            char *b = f->is_file ? srv_base64_encode((const uint8_t *)(f->data ? f->data : ""), f->len) : NULL;
            v = f->is_file ? (b ? json_string(b) : NULL) : mp_value(f);
            free(b);
        } else {
            v = mp_value(f);
        }
        if (!v) {
            snprintf(err->message, sizeof err->message, "field %s is not valid UTF-8 text", f->key);
            snprintf(err->param, sizeof err->param, "%s", f->key);
            goto done;
        }
        if (is_image) json_array_append_new(images, v);
        else json_object_set_new(o, f->key, v);
    }
    if (json_array_size(images)) json_object_set(o, "image", images);
    *out = o;
    o = NULL;
    rc = 0;
done:
    if (m)
        for (int i = 0; i < m->n; i++) free(m->f[i].data);
    free(m);
    json_decref(images);
    json_decref(o);
    return rc;
}
