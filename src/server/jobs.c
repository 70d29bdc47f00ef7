/* jobs.c - bounded job queue and the single generation worker. */
#include "jobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

double srv_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *srv_job_state_name(srv_job_state s) {
    switch (s) {
    case SRV_JOB_QUEUED: return "queued";
    case SRV_JOB_RUNNING: return "running";
    case SRV_JOB_DONE: return "done";
    case SRV_JOB_FAILED: return "failed";
    case SRV_JOB_CANCELLED: return "cancelled";
    }
    return "unknown";
}

static int job_final(const srv_job *j) { return j->state >= SRV_JOB_DONE; }

static void job_free(srv_job *j) {
    srv_request_free(&j->req);
    free(j->preview_png);
    for (int i = 0; i < SRV_MAX_IMAGES; i++) free(j->png[i]);
    free(j);
}

/* Drop one reference; q->mu held. */
static void job_unref_locked(srv_job *j) {
    if (--j->refs == 0) job_free(j);
}

void srv_job_release(srv_jobs *q, srv_job *j) {
    if (!j) return;
    pthread_mutex_lock(&q->mu);
    job_unref_locked(j);
    pthread_mutex_unlock(&q->mu);
}

void srv_job_progress(const srv_job *j, double now, double *progress, double *eta) {
    double p = 0;
    int n = j->req.n > 0 ? j->req.n : 1;
    if (j->state == SRV_JOB_DONE) p = 1;
    else if (j->state == SRV_JOB_RUNNING) p = (j->image + (j->steps ? (double)j->step / j->steps : 0)) / n;
    *progress = p;
    *eta = -1;
    if (j->state == SRV_JOB_RUNNING && p > 0) {
        double el = now - j->started; /* as A1111: elapsed / progress - elapsed */
        *eta = el / p - el;
    } else if (j->state == SRV_JOB_DONE) {
        *eta = 0;
    }
}

/* zimage_generate's progress callback: record where we are, report cancellation. */
static int job_on_progress(void *user, zimage_stage st, int step, int total, double secs) {
    (void)secs;
    void **ctx = user;
    srv_jobs *q = ctx[0];
    srv_job *j = ctx[1];
    pthread_mutex_lock(&q->mu);
    if (st == ZIMAGE_STAGE_DENOISE || st == ZIMAGE_STAGE_DECODE || st == ZIMAGE_STAGE_DONE) {
        j->step = step;
        j->steps = total;
    }
    int stop = j->cancel || q->stopping;
    pthread_mutex_unlock(&q->mu);
    return stop;
}

/* zimage_generate's preview callback: keep the PNG of the latest preview (small: 1/8 of the
 * image's side; encoding it costs well under a millisecond next to a DiT step). */
static int job_on_preview(void *user, int step, int total, const zimage_image *img) {
    (void)total;
    void **ctx = user;
    srv_jobs *q = ctx[0];
    srv_job *j = ctx[1];
    uint8_t *png = NULL;
    size_t len = 0;
    int ok = zimage_png_encode(img, NULL, "preview", &png, &len) == 0; /* a failed preview is no error */
    pthread_mutex_lock(&q->mu);
    if (ok) {
        free(j->preview_png);
        j->preview_png = png;
        j->preview_len = len;
        j->preview_step = step;
        j->preview_image = j->image;
    }
    int stop = j->cancel || q->stopping;
    pthread_mutex_unlock(&q->mu);
    return stop;
}

zimage_params srv_request_params(const srv_request *r, int i) {
    zimage_params p = zimage_params_default();
    p.prompt = r->prompt;
    p.negative_prompt = r->negative_prompt;
    p.width = r->width;
    p.height = r->height;
    p.steps = r->steps;
    if (r->guidance >= 0) p.guidance = (float)r->guidance;
    if (r->n_init) {
        p.init_image = &r->init[r->n_init == 1 ? 0 : i];
        if (r->mask.rgb) {
            p.mask = &r->mask;
            p.mask_blur = (float)r->mask_blur;
        }
        if (r->strength > 0) p.strength = r->strength;
    }
    return p;
}

/* Generate the job's images one after another (seeds base, base+1, ...). Runs without q->mu. */
static srv_job_state job_run(srv_jobs *q, srv_job *j, char *err, size_t errcap) {
    void *ctx[2] = {q, j};
    uint64_t base = j->req.seed < 0 ? ZIMAGE_SEED_RANDOM : (uint64_t)j->req.seed;
    int every = j->req.preview_every >= 0 ? j->req.preview_every : q->preview_every;
    for (int i = 0; i < j->req.n; i++) {
        zimage_params p = srv_request_params(&j->req, i);
        p.seed = base == ZIMAGE_SEED_RANDOM ? base : base + (uint64_t)i;
        p.progress = job_on_progress;
        p.progress_user = ctx;
        p.cancel = &j->cancel;
        if (every > 0) {
            p.preview = job_on_preview;
            p.preview_user = ctx;
            p.preview_every = every;
        }
        pthread_mutex_lock(&q->mu);
        j->image = i;
        j->step = 0;
        int stop = j->cancel || q->stopping;
        pthread_mutex_unlock(&q->mu);
        if (stop) return SRV_JOB_CANCELLED;
        zimage_image img;
        if (zimage_generate(q->model, &p, &img)) {
            pthread_mutex_lock(&q->mu);
            stop = j->cancel || q->stopping;
            pthread_mutex_unlock(&q->mu);
            if (stop) return SRV_JOB_CANCELLED;
            snprintf(err, errcap, "%s", zimage_last_error());
            return SRV_JOB_FAILED;
        }
        if (i == 0) base = img.seed; /* a random seed was drawn: the batch continues from it */
        uint8_t *png = NULL;
        size_t len = 0;
        int rc = zimage_png_encode(&img, &p, q->model_name, &png, &len);
        if (rc) snprintf(err, errcap, "%s", zimage_last_error());
        pthread_mutex_lock(&q->mu);
        if (!rc) {
            j->png[i] = png;
            j->png_len[i] = len;
            j->seed[i] = img.seed;
            j->steps_used = img.steps;
            j->guidance_used = img.guidance;
            j->seconds += img.timings.total;
            j->n_done = i + 1;
        }
        pthread_mutex_unlock(&q->mu);
        zimage_image_free(&img);
        if (rc) return SRV_JOB_FAILED;
    }
    return SRV_JOB_DONE;
}

static void *jobs_worker(void *arg) {
    srv_jobs *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->stopping && !q->head) pthread_cond_wait(&q->work, &q->mu);
        if (q->stopping) break;
        srv_job *j = q->head;
        q->head = j->next;
        if (!q->head) q->tail = NULL;
        j->next = NULL;
        q->queued--;
        q->running = j;
        j->state = SRV_JOB_RUNNING;
        j->started = srv_now();
        pthread_mutex_unlock(&q->mu);
        char err[256] = "";
        srv_job_state st = job_run(q, j, err, sizeof err);
        pthread_mutex_lock(&q->mu);
        snprintf(j->error, sizeof j->error, "%s", st == SRV_JOB_CANCELLED ? "cancelled" : err);
        j->state = st;
        free(j->preview_png); /* the images are there now */
        j->preview_png = NULL;
        j->preview_len = 0;
        j->finished = srv_now();
        q->running = NULL;
        q->n_finished++;
        pthread_cond_broadcast(&q->done);
        job_unref_locked(j); /* the queue's reference */
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

int srv_jobs_start(srv_jobs *q, zimage_model *m, const char *model_name, int cap, int preview_every) {
    memset(q, 0, sizeof *q);
    q->model = m;
    q->model_name = model_name;
    q->cap = cap;
    q->preview_every = preview_every;
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) r = (uint32_t)time(NULL);
    q->next_id = (uint64_t)r << 16; /* ids differ between server runs */
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->work, NULL);
    pthread_cond_init(&q->done, NULL);
    if (pthread_create(&q->worker, NULL, jobs_worker, q)) return -1;
    q->worker_started = 1;
    return 0;
}

void srv_jobs_stop(srv_jobs *q) {
    pthread_mutex_lock(&q->mu);
    q->stopping = 1;
    if (q->running) q->running->cancel = 1;
    /* queued jobs will never run: finish them as cancelled */
    for (srv_job *j = q->head, *next; j; j = next) {
        next = j->next;
        j->next = NULL;
        j->state = SRV_JOB_CANCELLED;
        snprintf(j->error, sizeof j->error, "server shutting down");
        job_unref_locked(j);
    }
    q->head = q->tail = NULL;
    q->queued = 0;
    pthread_cond_broadcast(&q->work);
    pthread_cond_broadcast(&q->done);
    pthread_mutex_unlock(&q->mu);
    if (q->worker_started) pthread_join(q->worker, NULL);
    q->worker_started = 0;
}

void srv_jobs_free(srv_jobs *q) {
    pthread_mutex_lock(&q->mu);
    for (int i = 0; i < SRV_JOB_TABLE; i++)
        if (q->table[i]) {
            q->table[i]->in_table = 0;
            job_unref_locked(q->table[i]);
            q->table[i] = NULL;
        }
    pthread_mutex_unlock(&q->mu);
    pthread_cond_destroy(&q->work);
    pthread_cond_destroy(&q->done);
    pthread_mutex_destroy(&q->mu);
}

/* A free table slot, evicting the oldest finished job if needed; -1 if all are active. */
static int jobs_table_slot(srv_jobs *q) {
    int oldest = -1;
    for (int i = 0; i < SRV_JOB_TABLE; i++) {
        if (!q->table[i]) return i;
        if (job_final(q->table[i]) && (oldest < 0 || q->table[i]->finished < q->table[oldest]->finished)) oldest = i;
    }
    if (oldest >= 0) {
        q->table[oldest]->in_table = 0;
        job_unref_locked(q->table[oldest]);
        q->table[oldest] = NULL;
    }
    return oldest;
}

srv_submit_result srv_jobs_submit(srv_jobs *q, srv_request *r, int keep, srv_job **out) {
    *out = NULL;
    srv_job *j = calloc(1, sizeof *j);
    if (!j) return SRV_SUBMIT_FULL;
    pthread_mutex_lock(&q->mu);
    srv_submit_result res = SRV_SUBMIT_OK;
    int slot = -1;
    if (q->stopping) res = SRV_SUBMIT_STOPPING;
    else if (q->queued >= q->cap) res = SRV_SUBMIT_FULL;
    else if (keep && (slot = jobs_table_slot(q)) < 0) res = SRV_SUBMIT_FULL;
    if (res != SRV_SUBMIT_OK) {
        pthread_mutex_unlock(&q->mu);
        free(j);
        return res;
    }
    j->req = *r;
    memset(r, 0, sizeof *r);
    snprintf(j->id, sizeof j->id, "job-%012llx", (unsigned long long)(q->next_id++ & 0xffffffffffffULL)); /* 12 hex */
    j->state = SRV_JOB_QUEUED;
    j->created = srv_now();
    j->refs = 2; /* queue + caller */
    if (keep) {
        j->refs++;
        j->in_table = 1;
        q->table[slot] = j;
    }
    if (q->tail) q->tail->next = j;
    else q->head = j;
    q->tail = j;
    q->queued++;
    pthread_cond_signal(&q->work);
    pthread_mutex_unlock(&q->mu);
    *out = j;
    return SRV_SUBMIT_OK;
}

void srv_job_wait(srv_jobs *q, srv_job *j) {
    pthread_mutex_lock(&q->mu);
    while (!job_final(j)) pthread_cond_wait(&q->done, &q->mu);
    pthread_mutex_unlock(&q->mu);
}

srv_job *srv_jobs_find(srv_jobs *q, const char *id) {
    srv_job *found = NULL;
    pthread_mutex_lock(&q->mu);
    for (int i = 0; i < SRV_JOB_TABLE && !found; i++)
        if (q->table[i] && !strcmp(q->table[i]->id, id)) {
            found = q->table[i];
            found->refs++;
        }
    pthread_mutex_unlock(&q->mu);
    return found;
}

int srv_job_cancel(srv_jobs *q, srv_job *j) {
    int did = 0;
    pthread_mutex_lock(&q->mu);
    if (j->state == SRV_JOB_QUEUED) {
        /* unlink from the queue; it never runs */
        srv_job **pp = &q->head, *prev = NULL;
        while (*pp && *pp != j) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        if (*pp) {
            *pp = j->next;
            if (q->tail == j) q->tail = prev;
            j->next = NULL;
            q->queued--;
            j->state = SRV_JOB_CANCELLED;
            j->finished = srv_now();
            snprintf(j->error, sizeof j->error, "cancelled");
            pthread_cond_broadcast(&q->done);
            job_unref_locked(j); /* the queue's reference; the caller still holds one */
            did = 1;
        }
    } else if (j->state == SRV_JOB_RUNNING) {
        j->cancel = 1; /* the worker stops after the current step and marks it cancelled */
        did = 1;
    }
    pthread_mutex_unlock(&q->mu);
    return did;
}

void srv_jobs_forget(srv_jobs *q, srv_job *j) {
    pthread_mutex_lock(&q->mu);
    for (int i = 0; i < SRV_JOB_TABLE; i++)
        if (q->table[i] == j) {
            q->table[i] = NULL;
            j->in_table = 0;
            job_unref_locked(j);
        }
    pthread_mutex_unlock(&q->mu);
}

int srv_jobs_stopping(srv_jobs *q) {
    pthread_mutex_lock(&q->mu);
    int s = q->stopping;
    pthread_mutex_unlock(&q->mu);
    return s;
}

int srv_jobs_interrupt(srv_jobs *q) {
    pthread_mutex_lock(&q->mu);
    int any = q->running != NULL;
    if (any) q->running->cancel = 1;
    pthread_mutex_unlock(&q->mu);
    return any;
}
