/* request.c - JSON -> srv_request with a precise 400 message per bad field. */
#include "request.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int req_fail(srv_error *e, const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    return -1;
}

/* Integer field in [lo, hi]; absent or null keeps *out. JSON reals with an integral
 * value (e.g. 512.0) are accepted, as Python clients sometimes send them. */
static int req_int(json_t *o, const char *key, long long lo, long long hi, long long *out, srv_error *e) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    long long x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d >= (double)lo && d <= (double)hi) || d != floor(d))
            return req_fail(e, key, "%s must be an integer between %lld and %lld", key, lo, hi);
        x = (long long)d;
    } else {
        return req_fail(e, key, "%s must be an integer, not %s", key,
                        json_is_string(v) ? "a string" : json_is_boolean(v) ? "a boolean" : json_is_array(v) ? "an array" : "an object");
    }
    if (x < lo || x > hi) return req_fail(e, key, "%s = %lld is out of range (%lld to %lld)", key, x, lo, hi);
    *out = x;
    return 0;
}

static int req_number(json_t *o, const char *key, double lo, double hi, double *out, srv_error *e) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) return req_fail(e, key, "%s must be a number", key);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi)) return req_fail(e, key, "%s = %g is out of range (%g to %g)", key, x, lo, hi);
    *out = x;
    return 0;
}

/* String field; absent or null keeps *out (NULL). The result is a new copy. */
static int req_string(json_t *o, const char *key, int required, char **out, srv_error *e) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (required) return req_fail(e, key, "%s is required", key);
        return 0;
    }
    if (!json_is_string(v)) return req_fail(e, key, "%s must be a string", key);
    size_t n = json_string_length(v);
    if (n > SRV_MAX_PROMPT_BYTES) return req_fail(e, key, "%s is too long (%zu bytes, at most %d)", key, n, SRV_MAX_PROMPT_BYTES);
    if (strlen(json_string_value(v)) != n) return req_fail(e, key, "%s contains a NUL character", key);
    *out = strdup(json_string_value(v));
    if (!*out) return req_fail(e, key, "out of memory");
    return 0;
}

static int req_side(const char *key, long long v, srv_error *e) {
    if (v % 16) return req_fail(e, key, "%s = %lld is not a multiple of 16", key, v);
    return 0;
}

/* "WxH" with decimal digits only, e.g. "1024x1024"; "auto" keeps the default. */
static int req_size(json_t *o, srv_request *r, srv_error *e) {
    json_t *v = json_object_get(o, "size");
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) return req_fail(e, "size", "size must be a string like \"1024x1024\"");
    const char *s = json_string_value(v);
    if (!strcmp(s, "auto")) return 0;
    long long wh[2] = {0, 0};
    int k = 0, digits = 0;
    for (const char *c = s;; c++) {
        if (*c >= '0' && *c <= '9') {
            if (++digits > 5) return req_fail(e, "size", "size \"%.40s\": sides must be at most %d", s, SRV_MAX_SIDE);
            wh[k] = wh[k] * 10 + (*c - '0');
        } else if (*c == 'x' && k == 0 && digits) {
            k = 1;
            digits = 0;
        } else if (!*c && k == 1 && digits) {
            break;
        } else {
            return req_fail(e, "size", "size \"%.40s\" is not of the form WIDTHxHEIGHT (e.g. \"1024x1024\")", s);
        }
    }
    for (int i = 0; i < 2; i++)
        if (wh[i] < 16 || wh[i] > SRV_MAX_SIDE || wh[i] % 16)
            return req_fail(e, "size", "size \"%.40s\": width and height must be multiples of 16 between 16 and %d", s,
                            SRV_MAX_SIDE);
    r->width = (int)wh[0];
    r->height = (int)wh[1];
    return 0;
}

int srv_request_parse(srv_api api, const char *body, size_t len, srv_request *r, srv_error *err) {
    memset(r, 0, sizeof *r);
    memset(err, 0, sizeof *err);
    r->guidance = -1;
    r->seed = -1;
    r->n = 1;
    json_error_t je;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!o) return req_fail(err, "", "invalid JSON: %s (line %d, column %d)", je.text, je.line, je.column);
    int rc = -1;
    long long v;
    if (!json_is_object(o)) {
        req_fail(err, "", "the request body must be a JSON object");
        goto done;
    }
    if (req_string(o, "prompt", api == SRV_API_OPENAI, &r->prompt, err)) goto done;
    if (!r->prompt && !(r->prompt = strdup(""))) goto done; /* A1111: prompt defaults to "" */
    if (req_string(o, "negative_prompt", 0, &r->negative_prompt, err)) goto done;
    if (!r->negative_prompt && !(r->negative_prompt = strdup(""))) goto done;
    v = 0;
    if (req_int(o, "steps", 1, SRV_MAX_STEPS, &v, err)) goto done;
    r->steps = (int)v;
    v = -1;
    if (req_int(o, "seed", -1, SRV_SEED_MAX, &v, err)) goto done;
    r->seed = v;
    if (api == SRV_API_OPENAI) {
        if (req_size(o, r, err)) goto done;
        v = 1;
        if (req_int(o, "n", 1, SRV_MAX_IMAGES, &v, err)) goto done;
        r->n = (int)v;
        if (req_number(o, "guidance_scale", 0, 100, &r->guidance, err)) goto done;
        json_t *f = json_object_get(o, "response_format");
        if (f && !json_is_null(f)) {
            if (!json_is_string(f)) {
                req_fail(err, "response_format", "response_format must be a string");
                goto done;
            }
            if (strcmp(json_string_value(f), "b64_json")) {
                req_fail(err, "response_format", "response_format \"%.40s\" is not supported (only \"b64_json\")",
                         json_string_value(f));
                goto done;
            }
        }
        const char *ignored[] = {"model", "quality", "style", "user", "background", "output_format", "moderation"};
        for (size_t i = 0; i < sizeof ignored / sizeof *ignored; i++) {
            json_t *x = json_object_get(o, ignored[i]);
            if (x && !json_is_null(x) && !json_is_string(x)) {
                req_fail(err, ignored[i], "%s must be a string", ignored[i]);
                goto done;
            }
        }
    } else {
        const char *sides[2] = {"width", "height"};
        int *dst[2] = {&r->width, &r->height};
        for (int i = 0; i < 2; i++) {
            v = 0;
            if (req_int(o, sides[i], 16, SRV_MAX_SIDE, &v, err) || req_side(sides[i], v, err)) goto done;
            *dst[i] = (int)v;
        }
        if (req_number(o, "cfg_scale", 0, 100, &r->guidance, err)) goto done;
        long long batch = 1, iters = 1;
        if (req_int(o, "batch_size", 1, SRV_MAX_IMAGES, &batch, err)) goto done;
        if (req_int(o, "n_iter", 1, SRV_MAX_IMAGES, &iters, err)) goto done;
        if (batch * iters > SRV_MAX_IMAGES) {
            req_fail(err, "batch_size", "batch_size x n_iter = %lld images; at most %d per request", batch * iters,
                     SRV_MAX_IMAGES);
            goto done;
        }
        r->n = (int)(batch * iters);
    }
    rc = 0;
done:
    json_decref(o);
    if (rc) srv_request_free(r);
    return rc;
}

void srv_request_free(srv_request *r) {
    free(r->prompt);
    free(r->negative_prompt);
    r->prompt = r->negative_prompt = NULL;
}
