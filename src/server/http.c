/* http.c - routes of `zimage serve` and their JSON answers (libmicrohttpd, jansson).
 *
 *   GET  /                       the web page (page.html)
 *   GET  /health                 liveness + queue state (no API key needed)
 *   GET  /v1/models              OpenAI model list
 *   POST /v1/images/generations  OpenAI images API (synchronous)
 *   POST /v1/images/edits        OpenAI image edits: multipart/form-data (files image, image[],
 *                                mask) as OpenAI clients send, or JSON with base64 strings
 *   POST /sdapi/v1/txt2img       A1111 API (synchronous)
 *   POST /sdapi/v1/img2img       A1111 img2img / inpainting (init_images, mask)
 *   GET  /sdapi/v1/progress      A1111 progress of the running job + current_image (preview)
 *   POST /sdapi/v1/interrupt     cancel the running job
 *   GET  /sdapi/v1/sd-models, /sdapi/v1/samplers   what A1111 front ends ask first
 *   POST /v1/jobs                queue a job (A1111 body) -> id
 *   GET  /v1/jobs/{id}           state, progress, preview, result;  DELETE cancels / forgets
 *
 * Each request: the first callback picks the route and rejects what it can before the
 * body is read (404, 405, 401, 413 by Content-Length); the body is collected up to
 * max_body; the last callback runs the handler. Every error is a JSON object
 * {"error": {"message", "type", "param"}} with a status that says what went wrong. */
#include "http.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "base64.h"
#include "multipart.h"

/* ---- responses ---- */

typedef struct {
    struct MHD_Connection *c;
    srv_http *h;
    const char *method, *url;
    double t0;
    int status; /* for the access log */
} req_ctx;

static enum MHD_Result reply_raw(req_ctx *r, int status, const char *type, void *data, size_t len,
                                 enum MHD_ResponseMemoryMode mode, const char *hname, const char *hvalue) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, mode);
    if (!resp) {
        if (mode == MHD_RESPMEM_MUST_FREE) free(data);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (hname) MHD_add_response_header(resp, hname, hvalue);
    enum MHD_Result ok = MHD_queue_response(r->c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->status = status;
    return ok;
}

/* Steals j. */
static enum MHD_Result reply_json_h(req_ctx *r, int status, json_t *j, const char *hname, const char *hvalue) {
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s) return reply_raw(r, 500, "application/json", "{\"error\":{\"message\":\"out of memory\"}}", 37,
                             MHD_RESPMEM_PERSISTENT, NULL, NULL);
    return reply_raw(r, status, "application/json", s, strlen(s), MHD_RESPMEM_MUST_FREE, hname, hvalue);
}

static enum MHD_Result reply_json(req_ctx *r, int status, json_t *j) { return reply_json_h(r, status, j, NULL, NULL); }

static enum MHD_Result reply_error_h(req_ctx *r, int status, const char *type, const char *param, const char *hname,
                                     const char *hvalue, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *e = json_pack("{s:{s:s, s:s, s:s?}}", "error", "message", msg, "type", type, "param",
                          param && *param ? param : NULL);
    return reply_json_h(r, status, e, hname, hvalue);
}

#define reply_error(r, status, type, param, ...) reply_error_h(r, status, type, param, NULL, NULL, __VA_ARGS__)

static enum MHD_Result reply_busy(req_ctx *r, int stopping) {
    if (stopping) return reply_error(r, 503, "server_shutting_down", NULL, "the server is shutting down");
    return reply_error_h(r, 503, "server_busy", NULL, "Retry-After", "10",
                         "the queue is full (%d jobs waiting); retry later", r->h->jobs->cap);
}

/* ---- generation requests ---- */

/* Parse + model-level checks (sizes against RoPE/memory limits). 0 or an error reply. */
static int req_parse_checked(req_ctx *r, srv_api api, const char *body, size_t len, srv_request *q,
                             enum MHD_Result *res) {
    srv_error e;
    const char *ct = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, "Content-Type");
    int rc;
    if (ct && !strncasecmp(ct, "multipart/form-data", 19)) {
        if (api != SRV_API_OPENAI_EDIT) {
            *res = reply_error(r, 415, "invalid_request_error", NULL,
                               "multipart/form-data is only taken by /v1/images/edits: send JSON here");
            return -1;
        }
        json_t *o = NULL;
        memset(&e, 0, sizeof e);
        rc = srv_multipart_to_json(r->c, body, len, &o, &e);
        if (!rc) rc = srv_request_parse_json(api, o, q, &e);
        json_decref(o);
    } else {
        rc = srv_request_parse(api, body, len, q, &e);
    }
    if (rc) {
        *res = reply_error(r, 400, "invalid_request_error", e.param, "%s", e.message);
        return -1;
    }
    zimage_params p = srv_request_params(q, 0); /* init images share one size: one check covers all */
    if (zimage_validate(r->h->jobs->model, &p)) {
        const char *m = zimage_last_error();
        const char *param = !strncmp(m, "strength", 8) ? (api == SRV_API_OPENAI_EDIT ? "strength" : "denoising_strength")
                                                       : NULL;
        *res = reply_error(r, 400, "invalid_request_error", param, "%s%s%s", param ? param : "", param ? ": " : "", m);
        srv_request_free(q);
        return -1;
    }
    return 0;
}

/* Queue the request and block this connection's thread until the job ends.
 * Returns the job (a reference) or NULL after replying. */
static srv_job *run_sync(req_ctx *r, srv_request *q, enum MHD_Result *res) {
    srv_job *j;
    srv_submit_result s = srv_jobs_submit(r->h->jobs, q, 0, &j);
    if (s != SRV_SUBMIT_OK) {
        srv_request_free(q);
        *res = reply_busy(r, s == SRV_SUBMIT_STOPPING);
        return NULL;
    }
    /* Blocking here is not client inactivity: libmicrohttpd checks the idle timeout only
     * around socket I/O (a client queued longer than --timeout still gets its answer;
     * test_long_wait in tests/server_test.py). */
    srv_job_wait(r->h->jobs, j);
    return j;
}

/* Non-success outcome of a finished job, or 0 when it is DONE. */
static int job_failed_reply(req_ctx *r, srv_job *j, enum MHD_Result *res) {
    if (j->state == SRV_JOB_DONE) return 0;
    if (j->state == SRV_JOB_CANCELLED && srv_jobs_stopping(r->h->jobs))
        *res = reply_error(r, 503, "server_shutting_down", NULL, "the server is shutting down; the job was cancelled");
    else if (j->state == SRV_JOB_CANCELLED)
        *res = reply_error(r, 409, "cancelled", NULL, "the job was cancelled (interrupt)");
    else
        *res = reply_error(r, 500, "generation_failed", NULL, "generation failed: %s", j->error);
    return -1;
}

static json_t *job_images_b64(const srv_job *j) {
    json_t *a = json_array();
    for (int i = 0; i < j->n_done; i++) {
        char *b = srv_base64_encode(j->png[i], j->png_len[i]);
        if (!b) {
            json_decref(a);
            return NULL;
        }
        json_array_append_new(a, json_string_nocheck(b));
        free(b);
    }
    return a;
}

static json_t *job_seeds(const srv_job *j) {
    json_t *a = json_array();
    for (int i = 0; i < j->n_done; i++) json_array_append_new(a, json_integer((json_int_t)j->seed[i]));
    return a;
}

static int out_width(const srv_job *j) { return srv_request_out_width(&j->req); }
static int out_height(const srv_job *j) { return srv_request_out_height(&j->req); }

/* Strength the library uses for the job (its default when the request gave none), 0 without an init image. */
static double job_strength(const srv_job *j) {
    if (!j->req.n_init) return 0;
    return j->req.strength > 0 ? j->req.strength : j->req.mask.rgb ? 1.0 : 0.6;
}

static enum MHD_Result h_openai(req_ctx *r, srv_api api, const char *body, size_t len) {
    srv_request q;
    enum MHD_Result res;
    if (req_parse_checked(r, api, body, len, &q, &res)) return res;
    srv_job *j = run_sync(r, &q, &res);
    if (!j) return res;
    if (!job_failed_reply(r, j, &res)) {
        json_t *data = json_array();
        for (int i = 0; i < j->n_done; i++) {
            char *b = srv_base64_encode(j->png[i], j->png_len[i]);
            if (!b) break;
            json_array_append_new(data, json_pack("{s:s, s:I}", "b64_json", b, "seed", (json_int_t)j->seed[i]));
            free(b);
        }
        res = reply_json(r, 200, json_pack("{s:I, s:o}", "created", (json_int_t)time(NULL), "data", data));
    }
    srv_job_release(r->h->jobs, j);
    return res;
}

static enum MHD_Result h_openai_generate(req_ctx *r, const char *body, size_t len) {
    return h_openai(r, SRV_API_OPENAI, body, len);
}

static enum MHD_Result h_openai_edit(req_ctx *r, const char *body, size_t len) {
    return h_openai(r, SRV_API_OPENAI_EDIT, body, len);
}

/* A1111 "info": a JSON object serialized into a string, as the A1111 API does. */
static char *a1111_info(const srv_job *j, int interrupted) {
    json_t *info = json_pack("{s:s, s:s, s:I, s:o, s:i, s:i, s:i, s:f, s:s, s:s, s:b, s:f}", "prompt", j->req.prompt,
                             "negative_prompt", j->req.negative_prompt, "seed",
                             (json_int_t)(j->n_done ? j->seed[0] : 0), "all_seeds", job_seeds(j), "width",
                             out_width(j), "height", out_height(j), "steps", j->steps_used, "cfg_scale",
                             (double)j->guidance_used, "sampler_name", "Euler (flow matching)", "job", j->id,
                             "interrupted", interrupted, "generation_seconds", j->seconds);
    if (info && j->req.n_init) {
        json_object_set_new(info, "denoising_strength", json_real(job_strength(j)));
        json_object_set_new(info, "mask_blur", json_real(j->req.mask.rgb ? j->req.mask_blur : 0));
        json_object_set_new(info, "inpainting", json_boolean(j->req.mask.rgb != NULL));
    }
    char *s = info ? json_dumps(info, JSON_COMPACT) : NULL;
    json_decref(info);
    return s;
}

static enum MHD_Result h_a1111(req_ctx *r, srv_api api, const char *body, size_t len) {
    srv_request q;
    enum MHD_Result res;
    if (req_parse_checked(r, api, body, len, &q, &res)) return res;
    srv_job *j = run_sync(r, &q, &res);
    if (!j) return res;
    /* A1111 answers an interrupted request with the images made so far */
    int interrupted = j->state == SRV_JOB_CANCELLED && !srv_jobs_stopping(r->h->jobs);
    if (interrupted || !job_failed_reply(r, j, &res)) {
        char *info = a1111_info(j, interrupted);
        json_t *params = json_pack("{s:s, s:s, s:i, s:i, s:i, s:f, s:I, s:i}", "prompt", j->req.prompt,
                                   "negative_prompt", j->req.negative_prompt, "width", out_width(j), "height",
                                   out_height(j), "steps", j->steps_used, "cfg_scale", (double)j->guidance_used,
                                   "seed", (json_int_t)j->req.seed, "batch_size", j->req.n);
        json_t *images = job_images_b64(j);
        if (params && j->req.n_init) {
            json_object_set_new(params, "denoising_strength", json_real(job_strength(j)));
            json_object_set_new(params, "mask_blur", json_real(j->req.mask.rgb ? j->req.mask_blur : 0));
            json_object_set_new(params, "init_images", json_null()); /* not echoed back (size) */
        }
        if (!info || !params || !images) {
            json_decref(params);
            json_decref(images);
            res = reply_error(r, 500, "internal_error", NULL, "out of memory");
        } else {
            res = reply_json(r, 200, json_pack("{s:o, s:o, s:s}", "images", images, "parameters", params, "info", info));
        }
        free(info);
    }
    srv_job_release(r->h->jobs, j);
    return res;
}

static enum MHD_Result h_a1111_txt2img(req_ctx *r, const char *body, size_t len) {
    return h_a1111(r, SRV_API_A1111, body, len);
}

static enum MHD_Result h_a1111_img2img(req_ctx *r, const char *body, size_t len) {
    return h_a1111(r, SRV_API_A1111_IMG, body, len);
}

/* base64 of the job's latest preview, or NULL (none yet, or out of memory). q->mu held. */
static char *job_preview_b64(const srv_job *j) {
    return j->preview_png ? srv_base64_encode(j->preview_png, j->preview_len) : NULL;
}

/* A query flag such as ?skip_current_image=true. */
static int query_flag(req_ctx *r, const char *name) {
    const char *v = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, name);
    return v && (!strcasecmp(v, "true") || !strcmp(v, "1"));
}

static enum MHD_Result h_progress(req_ctx *r, const char *body, size_t len) {
    (void)body;
    (void)len;
    srv_jobs *q = r->h->jobs;
    double now = srv_now(), progress = 0, eta = 0;
    pthread_mutex_lock(&q->mu);
    srv_job *j = q->running;
    int step = 0, steps = 0, image = 0, interrupted = 0, count = q->queued + (j != NULL);
    char id[40] = "";
    char *preview = NULL;
    if (j && !query_flag(r, "skip_current_image")) preview = job_preview_b64(j);
    if (j) {
        srv_job_progress(j, now, &progress, &eta);
        step = j->step;
        steps = j->steps;
        image = j->image;
        interrupted = j->cancel;
        snprintf(id, sizeof id, "%s", j->id);
    }
    pthread_mutex_unlock(&q->mu);
    /* current_image: the latest preview of the running job (base64 PNG, as A1111), else null */
    json_t *o = json_pack("{s:f, s:f, s:{s:b, s:b, s:s, s:i, s:i, s:i, s:i}, s:s?, s:n}", "progress", progress,
                          "eta_relative", eta > 0 ? eta : 0.0, "state", "skipped", 0, "interrupted", interrupted,
                          "job", id, "job_count", count, "job_no", image, "sampling_step", step, "sampling_steps",
                          steps, "current_image", preview, "textinfo");
    free(preview);
    return reply_json(r, 200, o);
}

static enum MHD_Result h_interrupt(req_ctx *r, const char *body, size_t len) {
    (void)body;
    (void)len;
    int any = srv_jobs_interrupt(r->h->jobs);
    return reply_json(r, 200, json_pack("{s:b}", "interrupted", any));
}

static enum MHD_Result h_health(req_ctx *r, const char *body, size_t len) {
    (void)body;
    (void)len;
    srv_jobs *q = r->h->jobs;
    pthread_mutex_lock(&q->mu);
    int busy = q->running != NULL, queued = q->queued;
    long finished = q->n_finished;
    pthread_mutex_unlock(&q->mu);
    return reply_json(r, 200, json_pack("{s:s, s:s, s:s, s:b, s:i, s:i, s:I}", "status", "ok", "model",
                                        r->h->model_name, "version", ZIMAGE_VERSION, "busy", busy, "queued", queued,
                                        "queue_capacity", q->cap, "jobs_finished", (json_int_t)finished));
}

static enum MHD_Result h_models(req_ctx *r, const char *body, size_t len) {
    (void)body;
    (void)len;
    return reply_json(r, 200, json_pack("{s:s, s:[{s:s, s:s, s:i, s:s}]}", "object", "list", "data", "id",
                                        r->h->model_name, "object", "model", "created", 0, "owned_by", "zimage"));
}

static enum MHD_Result h_sd_models(req_ctx *r, const char *body, size_t len) {
    (void)body;
    (void)len;
    return reply_json(r, 200, json_pack("[{s:s, s:s}]", "title", r->h->model_name, "model_name", r->h->model_name));
}

static enum MHD_Result h_samplers(req_ctx *r, const char *body, size_t len) {
    (void)body;
    (void)len;
    return reply_json(r, 200, json_pack("[{s:s, s:[], s:{}}]", "name", "Euler (flow matching)", "aliases", "options"));
}

static enum MHD_Result h_page(req_ctx *r, const char *body, size_t len) {
    (void)body;
    (void)len;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(srv_page_html_len, (void *)srv_page_html, MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "text/html; charset=utf-8");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                            "img-src data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'");
    enum MHD_Result ok = MHD_queue_response(r->c, 200, resp);
    MHD_destroy_response(resp);
    r->status = 200;
    return ok;
}

/* ---- jobs API ---- */

static json_t *job_json(srv_jobs *q, srv_job *j) {
    double progress, eta;
    pthread_mutex_lock(&q->mu);
    srv_job_progress(j, srv_now(), &progress, &eta);
    srv_job_state st = j->state;
    int image = j->image, step = j->step, steps = j->steps, pos = 0;
    int pstep = j->preview_step, pimage = j->preview_image;
    char *preview = st == SRV_JOB_RUNNING ? job_preview_b64(j) : NULL;
    for (srv_job *k = q->head; k; k = k->next) {
        if (k == j) break;
        pos++;
    }
    pthread_mutex_unlock(&q->mu);
    json_t *o = json_pack("{s:s, s:s, s:f, s:i, s:i, s:i, s:i}", "id", j->id, "state", srv_job_state_name(st),
                          "progress", progress, "image", image, "images", j->req.n, "step", step, "steps", steps);
    if (!o) {
        free(preview);
        return NULL;
    }
    if (preview) { /* latest preview of the running job: base64 PNG, 1/8 of the image's side */
        json_object_set_new(o, "preview", json_pack("{s:s, s:i, s:i}", "image", preview, "step", pstep, "index", pimage));
        free(preview);
    }
    if (eta >= 0) json_object_set_new(o, "eta_seconds", json_real(eta));
    if (st == SRV_JOB_QUEUED) json_object_set_new(o, "queue_position", json_integer(pos));
    if (st == SRV_JOB_FAILED || st == SRV_JOB_CANCELLED) json_object_set_new(o, "error", json_string(j->error));
    if (st >= SRV_JOB_DONE) { /* results are immutable now */
        json_t *res = json_pack("{s:o, s:o, s:i, s:i, s:i, s:f, s:s, s:s, s:f}", "images", job_images_b64(j), "seeds",
                                job_seeds(j), "width", out_width(j), "height", out_height(j), "steps", j->steps_used,
                                "guidance", (double)j->guidance_used, "prompt", j->req.prompt, "negative_prompt",
                                j->req.negative_prompt, "generation_seconds", j->seconds);
        if (res && j->req.n_init) {
            json_object_set_new(res, "denoising_strength", json_real(job_strength(j)));
            json_object_set_new(res, "inpainting", json_boolean(j->req.mask.rgb != NULL));
        }
        if (res) json_object_set_new(o, "result", res);
    }
    return o;
}

static enum MHD_Result h_jobs_create(req_ctx *r, const char *body, size_t len) {
    srv_request q;
    enum MHD_Result res;
    if (req_parse_checked(r, SRV_API_JOBS, body, len, &q, &res)) return res;
    srv_job *j;
    srv_submit_result s = srv_jobs_submit(r->h->jobs, &q, 1, &j);
    if (s != SRV_SUBMIT_OK) {
        srv_request_free(&q);
        return reply_busy(r, s == SRV_SUBMIT_STOPPING);
    }
    json_t *o = job_json(r->h->jobs, j);
    srv_job_release(r->h->jobs, j);
    return reply_json(r, 202, o);
}

/* "/v1/jobs/" + id; the id must look like ours (job-<12 hex>). */
static srv_job *job_from_url(req_ctx *r) {
    const char *id = r->url + strlen("/v1/jobs/");
    if (strlen(id) != 16 || strncmp(id, "job-", 4) || strspn(id + 4, "0123456789abcdef") != 12) return NULL;
    return srv_jobs_find(r->h->jobs, id);
}

static enum MHD_Result h_job_get(req_ctx *r, const char *body, size_t len) {
    (void)body;
    (void)len;
    srv_job *j = job_from_url(r);
    if (!j) return reply_error(r, 404, "not_found", "id", "no such job (finished jobs are kept only for a while)");
    json_t *o = job_json(r->h->jobs, j);
    srv_job_release(r->h->jobs, j);
    return reply_json(r, 200, o);
}

static enum MHD_Result h_job_delete(req_ctx *r, const char *body, size_t len) {
    (void)body;
    (void)len;
    srv_job *j = job_from_url(r);
    if (!j) return reply_error(r, 404, "not_found", "id", "no such job");
    srv_jobs *q = r->h->jobs;
    const char *what;
    if (srv_job_cancel(q, j)) {
        what = "cancelling"; /* queued: cancelled now; running: stops after the current step */
        pthread_mutex_lock(&q->mu);
        if (j->state == SRV_JOB_CANCELLED) what = "cancelled";
        pthread_mutex_unlock(&q->mu);
    } else {
        srv_jobs_forget(q, j); /* finished: drop it and its images */
        what = "deleted";
    }
    json_t *o = json_pack("{s:s, s:s}", "id", j->id, "state", what);
    srv_job_release(q, j);
    return reply_json(r, 200, o);
}

/* ---- routing ---- */

typedef enum MHD_Result (*route_fn)(req_ctx *r, const char *body, size_t len);

typedef struct {
    const char *path;   /* exact path, or a prefix when it ends with '/' */
    const char *method; /* GET also answers HEAD */
    route_fn fn;
    int auth;           /* needs the API key when one is set */
} route;

static const route routes[] = {
    {"/", "GET", h_page, 0},
    {"/index.html", "GET", h_page, 0},
    {"/health", "GET", h_health, 0},
    {"/v1/models", "GET", h_models, 1},
    {"/v1/images/generations", "POST", h_openai_generate, 1},
    {"/v1/images/edits", "POST", h_openai_edit, 1},
    {"/sdapi/v1/txt2img", "POST", h_a1111_txt2img, 1},
    {"/sdapi/v1/img2img", "POST", h_a1111_img2img, 1},
    {"/sdapi/v1/progress", "GET", h_progress, 1},
    {"/sdapi/v1/interrupt", "POST", h_interrupt, 1},
    {"/sdapi/v1/sd-models", "GET", h_sd_models, 1},
    {"/sdapi/v1/samplers", "GET", h_samplers, 1},
    {"/v1/jobs", "POST", h_jobs_create, 1},
    {"/v1/jobs/", "GET", h_job_get, 1},
    {"/v1/jobs/", "DELETE", h_job_delete, 1},
};
#define N_ROUTES (int)(sizeof routes / sizeof *routes)

static int route_path_match(const route *rt, const char *url) {
    size_t n = strlen(rt->path);
    if (n > 1 && rt->path[n - 1] == '/') return !strncmp(url, rt->path, n) && url[n];
    return !strcmp(url, rt->path);
}

/* Constant-time comparison (time depends only on the key's length). */
static int key_matches(const char *given, const char *key) {
    size_t n = strlen(key), m = strlen(given);
    unsigned char d = n != m;
    for (size_t i = 0; i < n; i++) d |= (unsigned char)(key[i] ^ (m ? given[i % m] : 0));
    return d == 0;
}

static int authorized(req_ctx *r) {
    if (!r->h->api_key) return 1;
    const char *a = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, "Authorization");
    if (!a || strncasecmp(a, "Bearer ", 7)) return 0;
    a += 7;
    while (*a == ' ') a++;
    return key_matches(a, r->h->api_key);
}

/* Per-request state kept by MHD between callbacks. */
typedef struct {
    const route *rt;
    char *body;
    size_t len, cap;
    double t0;
    int status;
    char method[16], url[128]; /* for the access log */
} conn_state;

static void log_request(srv_http *h, const char *method, const char *url, int status, double t0) {
    if (h->verbose) fprintf(stderr, "zimage serve: %s %s -> %d (%.1f ms)\n", method, url, status, 1e3 * (srv_now() - t0));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    srv_http *h = cls;
    conn_state *cs = *con_cls;
    req_ctx r = {c, h, method, url, srv_now(), 0};
    if (!cs) { /* headers are in: route and reject early */
        cs = calloc(1, sizeof *cs);
        if (!cs) return MHD_NO;
        *con_cls = cs;
        __atomic_add_fetch(&h->in_flight, 1, __ATOMIC_SEQ_CST);
        cs->t0 = r.t0;
        snprintf(cs->method, sizeof cs->method, "%s", method);
        snprintf(cs->url, sizeof cs->url, "%s", url);
        int path_found = 0;
        char allow[64] = "";
        int is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
        for (int i = 0; i < N_ROUTES && !cs->rt; i++) {
            if (!route_path_match(&routes[i], url)) continue;
            path_found = 1;
            if (!strcmp(routes[i].method, method) || (is_get && !strcmp(routes[i].method, "GET"))) cs->rt = &routes[i];
            else if (strlen(allow) + strlen(routes[i].method) + 3 < sizeof allow)
                snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s", allow[0] ? ", " : "",
                         routes[i].method);
        }
        enum MHD_Result res = MHD_YES;
        if (!path_found)
            res = reply_error(&r, 404, "not_found", NULL, "no such endpoint: %s %.200s", method, url);
        else if (!cs->rt)
            res = reply_error_h(&r, 405, "method_not_allowed", NULL, "Allow", allow, "%s is not allowed on %.200s (use %s)",
                                method, url, allow);
        else if (cs->rt->auth && !authorized(&r))
            res = reply_error_h(&r, 401, "authentication_error", NULL, "WWW-Authenticate", "Bearer",
                                "missing or wrong API key (Authorization: Bearer KEY)");
        else {
            const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
            if (cl && strtoull(cl, NULL, 10) > h->max_body)
                res = reply_error(&r, 413, "request_too_large", NULL, "request body of %.30s bytes is over the limit of %zu",
                                  cl, h->max_body);
        }
        cs->status = r.status;
        return res;
    }
    if (cs->status) { /* already answered early; MHD discards the rest */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) { /* a piece of the body */
        if (cs->len + *upload_size > h->max_body) return MHD_NO; /* chunked and too long: drop the connection */
        if (cs->len + *upload_size > cs->cap) {
            size_t cap = cs->cap ? cs->cap : 4096;
            while (cap < cs->len + *upload_size) cap *= 2;
            if (cap > h->max_body) cap = h->max_body;
            char *b = realloc(cs->body, cap);
            if (!b) return MHD_NO;
            cs->body = b;
            cs->cap = cap;
        }
        memcpy(cs->body + cs->len, upload, *upload_size);
        cs->len += *upload_size;
        *upload_size = 0;
        return MHD_YES;
    }
    r.t0 = cs->t0;
    enum MHD_Result res = cs->rt->fn(&r, cs->body ? cs->body : "", cs->len);
    cs->status = r.status ? r.status : 500;
    return res;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)c;
    (void)toe;
    srv_http *h = cls;
    conn_state *cs = *con_cls;
    if (!cs) return;
    log_request(h, cs->method, cs->url, cs->status, cs->t0);
    free(cs->body);
    free(cs);
    *con_cls = NULL;
    __atomic_sub_fetch(&h->in_flight, 1, __ATOMIC_SEQ_CST);
}

int srv_http_drain(srv_http *h, double max_seconds) {
    double t0 = srv_now();
    int n;
    while ((n = __atomic_load_n(&h->in_flight, __ATOMIC_SEQ_CST)) > 0 && srv_now() - t0 < max_seconds) {
        struct timespec ts = {0, 5 * 1000 * 1000}; /* 5 ms */
        nanosleep(&ts, NULL);
    }
    return n;
}

struct MHD_Daemon *srv_http_start(srv_http *h, const char *host, int port, int max_conn, int *bound_port, char *err,
                                  size_t errcap) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC;
    if (strchr(host, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) {
            snprintf(err, errcap, "--host '%s' is not an IPv6 address", host);
            return NULL;
        }
        flags |= MHD_USE_IPv6;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1) {
            snprintf(err, errcap, "--host '%s' is not an IPv4 address (e.g. 127.0.0.1 or 0.0.0.0)", host);
            return NULL;
        }
    }
    if (h->verbose) flags |= MHD_USE_ERROR_LOG;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_TIMEOUT, h->timeout, MHD_OPTION_CONNECTION_LIMIT, (unsigned)max_conn,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_STRICT_FOR_CLIENT, 1, MHD_OPTION_END);
    if (!d) {
        snprintf(err, errcap, "cannot listen on %s:%d (port in use, or not allowed)", host, port);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    *bound_port = di ? di->port : port;
    return d;
}
