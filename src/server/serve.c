/* serve.c - `zimage serve`: options, model loading, daemon start, signals, clean shutdown.
 *
 *   zimage serve -m MODEL [--host 127.0.0.1] [--port 7860] [--api-key KEY] [--queue N] ...
 *
 * Threads: the main thread waits for SIGTERM/SIGINT (blocked everywhere else, taken with
 * sigwait); libmicrohttpd runs one thread per connection; jobs.c runs one generation worker.
 * Shutdown: stop accepting, cancel the running and queued jobs (their clients get 503),
 * join the connection threads, then the worker, free the model, exit 0. */
#include "server.h"

#include <errno.h>
#include <libgen.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "jobs.h"

static void serve_usage(FILE *f) {
    fprintf(f,
            "usage: zimage serve -m MODEL_DIR [options]\n"
            "\n"
            "HTTP server: OpenAI images API (generations, edits), A1111 API (txt2img, img2img), a jobs API\n"
            "and a web page at /.\n"
            "The model is loaded once; requests are queued and generated one at a time.\n"
            "\n"
            "  -m, --model DIR          diffusers model folder (or --transformer/--text-encoder/--tokenizer/--vae)\n"
            "      --host ADDR          address to listen on (default 127.0.0.1; 0.0.0.0 for all interfaces)\n"
            "      --port N             port (default 7860; 0: any free port, printed at start)\n"
            "      --api-key KEY        require 'Authorization: Bearer KEY' (default: $ZIMAGE_API_KEY if set)\n"
            "      --queue N            jobs that may wait behind the running one (default 4, at most %d);\n"
            "                           a full queue answers 503 with Retry-After\n"
            "      --max-body BYTES     request body limit (default 16777216: an incompressible 1024x1024 PNG\n"
            "                           is ~4.2 MB in base64, so an init image and a mask fit twice over)\n"
            "      --preview-every N    previews of the running job every N steps for /sdapi/v1/progress\n"
            "                           current_image and GET /v1/jobs/ID (default 1; 0: none); a request\n"
            "                           may set its own with \"preview_every\"\n"
            "      --timeout S          drop clients idle for S seconds (default 30)\n"
            "      --max-connections N  simultaneous connections (default 64)\n"
            "      --precision P        auto|f32|bf16|int8, as for the CLI (zimage --help)\n"
            "      --vae-precision P    auto|f32|bf16, as for the CLI\n"
            "      --low-memory         drop the transformer's pages before each VAE decode (peak = the larger\n"
            "                           stage, not both; each generation maps them back: ~0.2 s per GB)\n"
            "  -t, --threads N          worker threads for generation (default: all cores)\n"
            "  -v, --verbose            log every request to stderr\n"
            "  -h, --help               this help\n",
            SRV_MAX_QUEUE);
}

static int serve_int(const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "zimage serve: %s: '%s' is not an integer between %ld and %ld\n", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

/* "auto" | "f32" | "bf16" -> ZIMAGE_PRECISION_*; -1 otherwise. */
/* int8 is a DiT/text-encoder mode only (the VAE's convs have no int8 form). */
static int serve_precision(const char *s, int allow_int8, int *out) {
    static const char *const names[] = {"auto", "f32", "bf16", "int8"};
    static const int values[] = {ZIMAGE_PRECISION_AUTO, ZIMAGE_PRECISION_F32, ZIMAGE_PRECISION_BF16,
                                 ZIMAGE_PRECISION_INT8};
    for (int i = 0; i < (allow_int8 ? 4 : 3); i++)
        if (!strcmp(s, names[i])) return *out = values[i], 0;
    return -1;
}

int zimage_serve_main(int argc, char **argv) {
    zimage_load_params lp = zimage_load_params_default();
    const char *host = "127.0.0.1", *api_key = getenv("ZIMAGE_API_KEY");
    long port = 7860, queue = 4, max_body = 16L << 20, timeout = 30, max_conn = 64, v;
    long preview_every = 1;
    int verbose = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define ARG(s, l) (!strcmp(a, s) || !strcmp(a, l))
#define NEED()                                                                          \
    if (i + 1 >= argc) {                                                                \
        fprintf(stderr, "zimage serve: option '%s' needs a value\n", a);                \
        return 2;                                                                       \
    }                                                                                   \
    const char *val = argv[++i];
        if (ARG("-h", "--help")) {
            serve_usage(stdout);
            return 0;
        } else if (ARG("-v", "--verbose")) {
            verbose = 1;
        } else if (ARG("-m", "--model")) {
            NEED();
            lp.model_dir = val;
        } else if (!strcmp(a, "--transformer")) {
            NEED();
            lp.transformer = val;
        } else if (!strcmp(a, "--text-encoder")) {
            NEED();
            lp.text_encoder = val;
        } else if (!strcmp(a, "--tokenizer")) {
            NEED();
            lp.tokenizer = val;
        } else if (!strcmp(a, "--vae")) {
            NEED();
            lp.vae = val;
        } else if (!strcmp(a, "--host")) {
            NEED();
            host = val;
        } else if (!strcmp(a, "--port")) {
            NEED();
            if (serve_int(a, val, 0, 65535, &port)) return 2;
        } else if (!strcmp(a, "--api-key")) {
            NEED();
            api_key = val;
        } else if (!strcmp(a, "--queue")) {
            NEED();
            if (serve_int(a, val, 1, SRV_MAX_QUEUE, &queue)) return 2;
        } else if (!strcmp(a, "--max-body")) {
            NEED();
            if (serve_int(a, val, 1024, 1L << 30, &max_body)) return 2;
        } else if (!strcmp(a, "--preview-every")) {
            NEED();
            if (serve_int(a, val, 0, SRV_MAX_PREVIEW_EVERY, &preview_every)) return 2;
        } else if (!strcmp(a, "--low-memory")) {
            lp.low_memory = 1;
        } else if (!strcmp(a, "--timeout")) {
            NEED();
            if (serve_int(a, val, 1, 3600, &timeout)) return 2;
        } else if (!strcmp(a, "--max-connections")) {
            NEED();
            if (serve_int(a, val, 2, 1024, &max_conn)) return 2;
        } else if (!strcmp(a, "--precision")) {
            NEED();
            if (serve_precision(val, 1, &lp.precision)) {
                fprintf(stderr, "zimage serve: --precision: '%s' is not one of auto, f32, bf16, int8\n", val);
                return 2;
            }
        } else if (!strcmp(a, "--vae-precision")) {
            NEED();
            if (serve_precision(val, 0, &lp.vae_precision)) {
                fprintf(stderr, "zimage serve: --vae-precision: '%s' is not one of auto, f32, bf16\n", val);
                return 2;
            }
        } else if (ARG("-t", "--threads")) {
            NEED();
            if (serve_int(a, val, 1, 1024, &v)) return 2;
            lp.n_threads = (int)v;
        } else {
            fprintf(stderr, "zimage serve: unknown option '%s' (see zimage serve --help)\n", a);
            return 2;
        }
#undef ARG
#undef NEED
    }
    if (!lp.model_dir && !lp.transformer) lp.model_dir = getenv("ZIMAGE_MODEL");
    if (!lp.model_dir && !(lp.transformer && lp.text_encoder && lp.vae && lp.tokenizer)) {
        fprintf(stderr, "zimage serve: no model given (-m MODEL_DIR, or --transformer, --text-encoder, --tokenizer and --vae)\n");
        return 2;
    }
    if (api_key && !*api_key) api_key = NULL;

    /* Signals are taken by this thread only (sigwait); every thread created below inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    zimage_model *m;
    if (zimage_load(&m, &lp)) {
        fprintf(stderr, "zimage serve: %s\n", zimage_last_error());
        return 1;
    }
    /* the same model name as the CLI writes into the PNG metadata */
    char namebuf[4096];
    snprintf(namebuf, sizeof namebuf, "%s", lp.model_dir ? lp.model_dir : lp.transformer);
    size_t nl = strlen(namebuf);
    while (nl > 1 && namebuf[nl - 1] == '/') namebuf[--nl] = 0;
    const char *name = basename(namebuf);

    srv_jobs jobs;
    if (srv_jobs_start(&jobs, m, name, (int)queue, (int)preview_every)) {
        fprintf(stderr, "zimage serve: cannot start the worker thread\n");
        zimage_free(m);
        return 1;
    }
    srv_http h = {&jobs, name, api_key, (size_t)max_body, (unsigned)timeout, verbose, 0};
    char err[256];
    int bound = 0;
    struct MHD_Daemon *d = srv_http_start(&h, host, (int)port, (int)max_conn, &bound, err, sizeof err);
    if (!d) {
        fprintf(stderr, "zimage serve: %s\n", err);
        srv_jobs_stop(&jobs);
        srv_jobs_free(&jobs);
        zimage_free(m);
        return 1;
    }
    printf("zimage serve: model %s, listening on http://%s%s%s:%d/ (queue %ld%s)\n", name,
           strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", bound, queue,
           api_key ? ", API key required" : "");
    fflush(stdout);

    int sig = 0;
    while (sigwait(&sigs, &sig) != 0) {
    }
    fprintf(stderr, "zimage serve: %s received, shutting down\n", sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "SIGHUP");
    MHD_quiesce_daemon(d);  /* no new connections */
    srv_jobs_stop(&jobs);   /* cancel running + queued jobs; waiting handlers answer 503 */
    int stalled = srv_http_drain(&h, 2.0); /* let those 503s reach their clients */
    if (stalled && verbose) fprintf(stderr, "zimage serve: dropping %d unfinished request(s)\n", stalled);
    MHD_stop_daemon(d);     /* joins every connection thread */
    srv_jobs_free(&jobs);
    zimage_free(m);
    fprintf(stderr, "zimage serve: stopped\n");
    return 0;
}
