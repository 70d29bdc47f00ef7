/* request.h - JSON request bodies of the server's generation endpoints, parsed and
 * checked field by field (type and range) into one srv_request.
 *
 * Sits between the HTTP layer (http.c, which owns the body bytes) and the job queue
 * (jobs.c, which turns a srv_request into zimage_params). Two dialects:
 *   OpenAI  /v1/images/generations: prompt, n, size "WxH", response_format, seed,
 *           steps, guidance_scale, negative_prompt (model, quality, style, user ignored)
 *           /v1/images/edits (JSON): the same + image (base64 string or list), mask,
 *           strength
 *   A1111   /sdapi/v1/txt2img, /sdapi/v1/img2img and /v1/jobs: prompt, negative_prompt,
 *           width, height, steps, cfg_scale, seed, batch_size, n_iter, preview_every;
 *           img2img and jobs also init_images, mask, denoising_strength, mask_blur
 *           (other A1111 fields ignored)
 * Images arrive as base64 PNG or JPEG, optionally as a data URL ("data:image/png;base64,...")
 * and are decoded here, so a 400 can name the field (init_images[1], mask). Unknown fields
 * are ignored (clients send many); known ones must have the right type. */
#ifndef SRV_REQUEST_H
#define SRV_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "zimage.h"

/* Server-side limits: one request cannot ask for more than this. */
#define SRV_MAX_SIDE 2048
#define SRV_MAX_STEPS 100
#define SRV_MAX_IMAGES 4
#define SRV_MAX_PROMPT_BYTES 16384
#define SRV_SEED_MAX 4294967295LL /* seeds are 32-bit, as in A1111 (-1: random) */
#define SRV_MAX_INIT_SIDE 4096     /* init image / mask sides (they are resized to width x height) */
#define SRV_MAX_MASK_BLUR 64       /* pixels */
#define SRV_MAX_PREVIEW_EVERY 100

/* Endpoint dialects. IMG: init images required; A1111 (txt2img) ignores image fields;
 * JOBS: A1111 fields with optional init images. */
typedef enum { SRV_API_OPENAI, SRV_API_A1111, SRV_API_OPENAI_EDIT, SRV_API_A1111_IMG, SRV_API_JOBS } srv_api;

typedef struct {
    char *prompt;          /* owned */
    char *negative_prompt; /* owned, "" when absent */
    int width, height;     /* 0: model default (1024) */
    int steps;             /* 0: model default */
    double guidance;       /* < 0: model default */
    int64_t seed;          /* -1: random */
    int n;                 /* images, 1..SRV_MAX_IMAGES */
    /* image conditioning: image i of the request starts from init[n_init == 1 ? 0 : i] */
    zimage_image init[SRV_MAX_IMAGES]; /* owned, decoded RGB; all of one size */
    int n_init;            /* 0: text-to-image; else 1 or n */
    zimage_image mask;     /* owned; mask.rgb NULL: no mask (white = repaint) */
    double strength;       /* < 0: library default (0.6 img2img, 1.0 inpainting) */
    double mask_blur;      /* pixels; used only with a mask */
    int preview_every;     /* previews every N steps; 0: none; < 0: the server's default */
} srv_request;

/* What was wrong: a message and the offending field ("" when not about one field). */
typedef struct {
    char message[256];
    char param[64];
} srv_error;

/* Parse body[0..len) (need not be NUL-terminated). 0, or -1 with *err filled (r is then
 * already freed). */
int srv_request_parse(srv_api api, const char *body, size_t len, srv_request *r, srv_error *err);
/* The same from a parsed JSON value (borrowed; multipart.c builds one from form fields). */
struct json_t;
int srv_request_parse_json(srv_api api, struct json_t *o, srv_request *r, srv_error *err);
void srv_request_free(srv_request *r);

/* Width and height of the images the request makes: the given ones, else the init
 * image's size rounded down to 16, else 1024. */
int srv_request_out_width(const srv_request *r);
int srv_request_out_height(const srv_request *r);

#endif
