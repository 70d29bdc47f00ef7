/* jobs.h - the server's job queue: a bounded FIFO of generation requests and one
 * worker thread that runs them one at a time on the loaded model.
 *
 * Sits between the HTTP layer (http.c submits, waits, polls, cancels) and the public
 * API (zimage_generate with a progress callback and a cancel flag). Jobs are reference
 * counted: the queue/worker, each HTTP handler using it, and the job table (jobs kept for
 * GET /v1/jobs/{id}) each hold one reference. All mutable fields are guarded by q->mu. */
#ifndef SRV_JOBS_H
#define SRV_JOBS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "zimage.h"
#include "request.h"

#define SRV_JOB_TABLE 64   /* jobs remembered for the jobs API (oldest finished ones are dropped) */
#define SRV_MAX_QUEUE 32

typedef enum { SRV_JOB_QUEUED, SRV_JOB_RUNNING, SRV_JOB_DONE, SRV_JOB_FAILED, SRV_JOB_CANCELLED } srv_job_state;

typedef struct srv_job {
    char id[40];
    srv_request req;
    srv_job_state state;
    volatile int cancel;     /* polled by zimage_generate between steps */
    int refs;
    int in_table;
    double created, started, finished; /* monotonic seconds */
    /* progress of the running job */
    int image;               /* index of the image being generated */
    int step, steps;         /* denoising steps of that image */
    /* results, immutable once the state is DONE/FAILED/CANCELLED */
    int n_done;              /* images finished (also the partial count when cancelled) */
    uint8_t *png[SRV_MAX_IMAGES];
    size_t png_len[SRV_MAX_IMAGES];
    uint64_t seed[SRV_MAX_IMAGES];
    int steps_used;
    float guidance_used;
    double seconds;          /* generation time of the images (zimage_timings.total, summed) */
    char error[256];
    /* latest preview of the running job (PNG of the linear latent->RGB projection, 1/8 size);
     * replaced under q->mu by the worker, dropped when the job ends */
    uint8_t *preview_png;
    size_t preview_len;
    int preview_step, preview_image;
    struct srv_job *next;    /* queue link */
} srv_job;

typedef struct {
    zimage_model *model;
    const char *model_name;
    pthread_mutex_t mu;
    pthread_cond_t work;     /* worker: a job was queued, or stop */
    pthread_cond_t done;     /* waiters: some job reached a final state */
    srv_job *head, *tail;
    int queued, cap;
    srv_job *running;
    srv_job *table[SRV_JOB_TABLE];
    int stopping;
    pthread_t worker;
    int worker_started;
    uint64_t next_id;
    long n_finished;
    int preview_every;       /* previews of requests that do not say (0: none) */
} srv_jobs;

/* Start the worker. cap: most jobs waiting (not counting the running one), 1..SRV_MAX_QUEUE.
 * preview_every: preview the running job every N steps unless its request says (0: never). */
int srv_jobs_start(srv_jobs *q, zimage_model *m, const char *model_name, int cap, int preview_every);
/* Refuse new jobs, cancel the running and queued ones, join the worker. Handlers
 * waiting on jobs wake up; the queue stays usable for lookups until srv_jobs_free. */
void srv_jobs_stop(srv_jobs *q);
/* Free the job table and the locks (after every handler has returned). The model is not freed. */
void srv_jobs_free(srv_jobs *q);

typedef enum { SRV_SUBMIT_OK = 0, SRV_SUBMIT_FULL, SRV_SUBMIT_STOPPING } srv_submit_result;
/* Queue a request (moved into the job on success). keep: also list it in the job table.
 * *out gets a reference for the caller (release with srv_job_release). */
srv_submit_result srv_jobs_submit(srv_jobs *q, srv_request *r, int keep, srv_job **out);
/* Block until the job is DONE, FAILED or CANCELLED. */
void srv_job_wait(srv_jobs *q, srv_job *j);
void srv_job_release(srv_jobs *q, srv_job *j);
/* Find a job of the table by id (a new reference), or NULL. */
srv_job *srv_jobs_find(srv_jobs *q, const char *id);
/* Cancel a queued or running job. Returns 1 when something was cancelled. */
int srv_job_cancel(srv_jobs *q, srv_job *j);
/* Drop a finished job from the table (DELETE of a finished job). */
void srv_jobs_forget(srv_jobs *q, srv_job *j);
/* Cancel the running job (A1111 interrupt). Returns 1 when one was running. */
int srv_jobs_interrupt(srv_jobs *q);

/* Is the server shutting down? */
int srv_jobs_stopping(srv_jobs *q);

/* The job's image parameters for image i (init image, mask, strength, blur; prompt pointers
 * borrowed from j->req). No callbacks, seed or previews: see job_run. */
zimage_params srv_request_params(const srv_request *r, int i);

/* Progress of job j in 0..1 and the estimated seconds left (-1: unknown). Call with q->mu held. */
void srv_job_progress(const srv_job *j, double now, double *progress, double *eta);
const char *srv_job_state_name(srv_job_state s);
double srv_now(void);

#endif
