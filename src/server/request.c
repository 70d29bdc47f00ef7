/* request.c - JSON -> srv_request with a precise 400 message per bad field; base64
 * images decoded (zimage_image_decode) and checked against each other here. */
#include "request.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"

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

/* Does this PNG have transparency (an alpha channel, or a tRNS chunk before the image data)? */
static int req_png_has_alpha(const uint8_t *b, size_t n) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n < 33 || memcmp(b, sig, 8) || memcmp(b + 12, "IHDR", 4)) return 0;
    if (b[25] == 4 || b[25] == 6) return 1; /* gray + alpha, RGBA */
    for (size_t pos = 8; pos + 8 <= n;) {
        size_t len = (size_t)b[pos] << 24 | (size_t)b[pos + 1] << 16 | (size_t)b[pos + 2] << 8 | b[pos + 3];
        if (!memcmp(b + pos + 4, "tRNS", 4)) return 1;
        if (!memcmp(b + pos + 4, "IDAT", 4) || len > n - pos - 8) return 0;
        pos += 12 + len;
    }
    return 0;
}

/* One image: a base64 string, optionally a data URL, of a PNG or JPEG -> RGB.
 * alpha_mask: a PNG with transparency is read as an OpenAI edit mask (transparent = repaint,
 * i.e. white in zimage's convention); without transparency its colors are used (white = repaint). */
static int req_image(json_t *v, const char *field, int alpha_mask, zimage_image *out, srv_error *e) {
    if (!json_is_string(v)) return req_fail(e, field, "%s must be a base64 string (PNG or JPEG)", field);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n >= 5 && !strncmp(s, "data:", 5)) { /* data:image/png;base64,.... */
        const char *comma = memchr(s, ',', n);
        if (!comma || comma - s < 12 || memcmp(comma - 7, ";base64", 7))
            return req_fail(e, field, "%s: a data URL must be data:image/...;base64,DATA", field);
        n -= (size_t)(comma + 1 - s);
        s = comma + 1;
    }
    if (n == 0) return req_fail(e, field, "%s is empty (expected a base64 PNG or JPEG)", field);
    uint8_t *bytes;
    size_t len;
    if (srv_base64_decode(s, n, &bytes, &len)) return req_fail(e, field, "%s is not valid base64", field);
    int flags = alpha_mask && req_png_has_alpha(bytes, len) ? ZIMAGE_DECODE_ALPHA_MASK : 0;
    int rc = zimage_image_decode(bytes, len, SRV_MAX_INIT_SIDE, flags, out);
    free(bytes);
    if (rc) {
        const char *m = zimage_last_error();
        if (!strncmp(m, "image: ", 7)) m += 7;
        return req_fail(e, field, "%s: %s", field, m);
    }
    return 0;
}

/* Output side for a given side (0: the init image's, rounded down to 16). */
static int req_out_side(int given, const srv_request *r, int init_side) {
    if (given) return given;
    return r->n_init ? init_side / 16 * 16 : 1024;
}

int srv_request_out_width(const srv_request *r) { return req_out_side(r->width, r, r->init[0].width); }
int srv_request_out_height(const srv_request *r) { return req_out_side(r->height, r, r->init[0].height); }

/* init_images / image, mask, strength, mask_blur (after r->n, width and height are known). */
static int req_images(json_t *o, srv_api api, srv_request *r, srv_error *e) {
    int edit = api == SRV_API_OPENAI_EDIT;
    const char *key = edit ? "image" : "init_images", *skey = edit ? "strength" : "denoising_strength";
    char field[64];
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (api == SRV_API_OPENAI_EDIT || api == SRV_API_A1111_IMG)
            return req_fail(e, key, "%s is required (%sbase64 PNG or JPEG)", key, edit ? "" : "a list of ");
    } else if (edit && json_is_string(v)) {
        if (req_image(v, key, 0, &r->init[0], e)) return -1;
        r->n_init = 1;
    } else {
        if (!json_is_array(v)) return req_fail(e, key, "%s must be a list of base64 strings", key);
        size_t n = json_array_size(v);
        if (n == 0) return req_fail(e, key, "%s is empty: give one image", key);
        if (n > 1 && n != (size_t)r->n)
            return req_fail(e, key, "%s has %zu images: give 1 (used for every image) or one per image made (%d)", key,
                            n, r->n);
        for (size_t i = 0; i < n; i++) {
            snprintf(field, sizeof field, "%s[%zu]", key, i);
            if (req_image(json_array_get(v, i), field, 0, &r->init[i], e)) return -1;
            r->n_init = (int)i + 1;
            if (r->init[i].width != r->init[0].width || r->init[i].height != r->init[0].height)
                return req_fail(e, field, "%s is %dx%d but %s[0] is %dx%d: the images must have one size", field,
                                r->init[i].width, r->init[i].height, key, r->init[0].width, r->init[0].height);
        }
    }
    json_t *m = json_object_get(o, "mask");
    if (m && !json_is_null(m) && !(json_is_string(m) && json_string_length(m) == 0)) {
        if (!r->n_init) return req_fail(e, "mask", "mask needs %s (inpainting repaints an image)", key);
        if (req_image(m, "mask", edit, &r->mask, e)) return -1;
        if (r->mask.width != r->init[0].width || r->mask.height != r->init[0].height)
            return req_fail(e, "mask", "mask is %dx%d but the image is %dx%d: they must have the same size",
                            r->mask.width, r->mask.height, r->init[0].width, r->init[0].height);
    }
    json_t *s = json_object_get(o, skey);
    if (s && !json_is_null(s)) {
        if (!json_is_number(s)) return req_fail(e, skey, "%s must be a number in (0, 1]", skey);
        double x = json_number_value(s);
        if (!(x > 0 && x <= 1)) return req_fail(e, skey, "%s = %g is out of range: it must be in (0, 1]", skey, x);
        if (r->n_init) r->strength = x; /* A1111 txt2img bodies carry it for hires fix: ignored */
    }
    double blur = 0;
    if (req_number(o, "mask_blur", 0, SRV_MAX_MASK_BLUR, &blur, e)) return -1;
    if (r->mask.rgb) r->mask_blur = blur; /* A1111 clients send mask_blur: 4 without a mask */
    if (r->n_init) {
        int w = srv_request_out_width(r), h = srv_request_out_height(r);
        if (w < 16 || h < 16)
            return req_fail(e, key, "%s: the image is %dx%d: too small (at least 16x16)", key, r->init[0].width,
                            r->init[0].height);
        if (w > SRV_MAX_SIDE || h > SRV_MAX_SIDE)
            return req_fail(e, key,
                            "%s: the image is %dx%d, over %d per side (rounded down to 16) at its own size; give %s",
                            key, r->init[0].width, r->init[0].height, SRV_MAX_SIDE, edit ? "size" : "width and height");
    }
    return 0;
}

int srv_request_parse(srv_api api, const char *body, size_t len, srv_request *r, srv_error *err) {
    memset(r, 0, sizeof *r);
    memset(err, 0, sizeof *err);
    json_error_t je;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!o) return req_fail(err, "", "invalid JSON: %s (line %d, column %d)", je.text, je.line, je.column);
    int rc = srv_request_parse_json(api, o, r, err);
    json_decref(o);
    return rc;
}

int srv_request_parse_json(srv_api api, json_t *o, srv_request *r, srv_error *err) {
    memset(r, 0, sizeof *r);
    memset(err, 0, sizeof *err);
    r->guidance = -1;
    r->seed = -1;
    r->n = 1;
    r->strength = -1;
    r->preview_every = -1;
    int rc = -1;
    long long v;
    if (!json_is_object(o)) {
        req_fail(err, "", "the request body must be a JSON object");
        goto done;
    }
    int openai = api == SRV_API_OPENAI || api == SRV_API_OPENAI_EDIT;
    if (req_string(o, "prompt", openai, &r->prompt, err)) goto done;
    if (!r->prompt && !(r->prompt = strdup(""))) goto done; /* A1111: prompt defaults to "" */
    if (req_string(o, "negative_prompt", 0, &r->negative_prompt, err)) goto done;
    if (!r->negative_prompt && !(r->negative_prompt = strdup(""))) goto done;
    v = 0;
    if (req_int(o, "steps", 1, SRV_MAX_STEPS, &v, err)) goto done;
    r->steps = (int)v;
    v = -1;
    if (req_int(o, "seed", -1, SRV_SEED_MAX, &v, err)) goto done;
    r->seed = v;
    if (openai) {
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
        v = -1;
        if (req_int(o, "preview_every", 0, SRV_MAX_PREVIEW_EVERY, &v, err)) goto done;
        r->preview_every = (int)v;
    }
    if (api != SRV_API_OPENAI && api != SRV_API_A1111 && req_images(o, api, r, err)) goto done;
    rc = 0;
done:
    if (rc) srv_request_free(r);
    return rc;
}

void srv_request_free(srv_request *r) {
    free(r->prompt);
    free(r->negative_prompt);
    r->prompt = r->negative_prompt = NULL;
    for (int i = 0; i < SRV_MAX_IMAGES; i++) zimage_image_free(&r->init[i]);
    zimage_image_free(&r->mask);
    r->n_init = 0;
}
