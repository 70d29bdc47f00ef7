/* request.h - JSON request bodies of the server's generation endpoints, parsed and
 * checked field by field (type and range) into one srv_request.
 *
 * Sits between the HTTP layer (http.c, which owns the body bytes) and the job queue
 * (jobs.c, which turns a srv_request into zimage_params). Two dialects:
 *   OpenAI  /v1/images/generations: prompt, n, size "WxH", response_format, seed,
 *           steps, guidance_scale, negative_prompt (model, quality, style, user ignored)
 *   A1111   /sdapi/v1/txt2img and /v1/jobs: prompt, negative_prompt, width, height,
 *           steps, cfg_scale, seed, batch_size, n_iter (other A1111 fields ignored)
 * Unknown fields are ignored (clients send many); known ones must have the right type. */
#ifndef SRV_REQUEST_H
#define SRV_REQUEST_H

#include <stddef.h>
#include <stdint.h>

/* Server-side limits: one request cannot ask for more than this. */
#define SRV_MAX_SIDE 2048
#define SRV_MAX_STEPS 100
#define SRV_MAX_IMAGES 4
#define SRV_MAX_PROMPT_BYTES 16384
#define SRV_SEED_MAX 4294967295LL /* seeds are 32-bit, as in A1111 (-1: random) */

typedef enum { SRV_API_OPENAI, SRV_API_A1111 } srv_api;

typedef struct {
    char *prompt;          /* owned */
    char *negative_prompt; /* owned, "" when absent */
    int width, height;     /* 0: model default (1024) */
    int steps;             /* 0: model default */
    double guidance;       /* < 0: model default */
    int64_t seed;          /* -1: random */
    int n;                 /* images, 1..SRV_MAX_IMAGES */
} srv_request;

/* What was wrong: a message and the offending field ("" when not about one field). */
typedef struct {
    char message[256];
    char param[64];
} srv_error;

/* Parse body[0..len) (need not be NUL-terminated). 0, or -1 with *err filled. */
int srv_request_parse(srv_api api, const char *body, size_t len, srv_request *r, srv_error *err);
void srv_request_free(srv_request *r);

#endif
