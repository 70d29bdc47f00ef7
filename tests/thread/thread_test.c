/* thread_test.c - zimage-thread-test: concurrent use of the library gives the same bits.
 *
 * usage: zimage-thread-test FIXTURES_DIR [kernel-threads]
 *   1. two models (tiny-zimage f32 and bf16), two different generations run one after
 *      the other: the reference images;
 *   2. the same two generations at once, one thread per model: bit-identical images;
 *   3. one shared model, two generations at once: bit-identical images;
 *   4. one decoder-only VAE, two first zi_vae_encode calls at once (the encoder is built
 *      on demand): identical moments.
 * `make test` runs it; `make test-tsan` runs it under ThreadSanitizer (with 1 kernel
 * thread per call: GCC's OpenMP runtime is not instrumented). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/vae/vae.h"
#include "zimage.h"

static int n_pass, n_fail;

static void check(int ok, const char *what) {
    printf("  %s %s\n", ok ? "ok  " : "FAIL", what);
    if (ok)
        n_pass++;
    else
        n_fail++;
}

typedef struct {
    zimage_model *m;
    zimage_params p;
    zimage_image img;
    int rc;
    char err[512];
} gen_job;

static void *gen_run(void *arg) {
    gen_job *j = arg;
    j->rc = zimage_generate(j->m, &j->p, &j->img);
    if (j->rc) snprintf(j->err, sizeof j->err, "%s", zimage_last_error()); /* the message is per thread */
    return NULL;
}

static int same_image(const zimage_image *a, const zimage_image *b) {
    return a->rgb && b->rgb && a->width == b->width && a->height == b->height && a->seed == b->seed &&
           memcmp(a->rgb, b->rgb, (size_t)a->width * a->height * 3) == 0;
}

/* Run jobs [0, n) at once, each on its own thread; 0 if all succeeded. */
static int run_concurrently(gen_job *jobs, int n) {
    pthread_t th[4];
    for (int i = 0; i < n; i++) {
        memset(&jobs[i].img, 0, sizeof jobs[i].img);
        if (pthread_create(&th[i], NULL, gen_run, &jobs[i]) != 0) return -1;
    }
    int bad = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        if (jobs[i].rc) {
            printf("  job %d failed: %s\n", i, jobs[i].err);
            bad = 1;
        }
    }
    return bad;
}

typedef struct {
    zi_vae *v;
    const float *image;
    float *moments;
    int rc;
    int kernel_threads; /* this thread's kernel settings (the API would install the model's) */
    kn_precision precision;
} enc_job;

static void *enc_run(void *arg) {
    enc_job *j = arg;
    kn_set_threads(j->kernel_threads);
    kn_set_precision(j->precision);
    j->rc = zi_vae_encode(j->v, j->image, 64, 64, j->moments);
    return NULL;
}

static void check_vae_encode(const char *fixtures, int kt) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tiny-zimage/vae", fixtures);
    enum { N = 3 * 64 * 64, M = 32 * 8 * 8 };
    static float image[N], ref[M], got[2][M];
    for (int i = 0; i < N; i++) image[i] = (float)((i * 29) % 201) / 100.0f - 1.0f;
    zi_vae *v = NULL, *w = NULL;
    if (zi_vae_load(&v, dir) || zi_vae_load(&w, dir)) {
        check(0, "VAE load");
        zi_vae_free(v);
        return;
    }
    kn_set_threads(kt);
    int ok = zi_vae_encode(w, image, 64, 64, ref) == 0; /* reference on a separate VAE */
    kn_precision prec = kn_get_precision(); /* whatever an earlier check left (bf16 after an AUTO load on a bf16 CPU) */
    enc_job jobs[2] = {{v, image, got[0], -1, kt, prec}, {v, image, got[1], -1, kt, prec}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) ok &= pthread_create(&th[i], NULL, enc_run, &jobs[i]) == 0;
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    ok &= jobs[0].rc == 0 && jobs[1].rc == 0 && !memcmp(got[0], ref, sizeof ref) && !memcmp(got[1], ref, sizeof ref);
    check(ok, "two first encodes on one decoder-only VAE at once (encoder built once, same moments)");
    zi_vae_free(v);
    zi_vae_free(w);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: zimage-thread-test FIXTURES_DIR [kernel-threads]\n");
        return 2;
    }
    const char *fx = argv[1];
    int kt = argc > 2 ? atoi(argv[2]) : 0;
    char d32[4096], d16[4096], tok[4096];
    snprintf(d32, sizeof d32, "%s/tiny-zimage", fx);
    snprintf(d16, sizeof d16, "%s/tiny-zimage-bf16", fx);
    snprintf(tok, sizeof tok, "%s/tiny-zimage/tokenizer/tokenizer.json", fx);
    zimage_model *ma = NULL, *mb = NULL;
    zimage_load_params lp = zimage_load_params_default();
    lp.n_threads = kt;
    lp.model_dir = d32;
    if (zimage_load(&ma, &lp)) {
        printf("FAIL load %s: %s\n", d32, zimage_last_error());
        return 1;
    }
    lp.model_dir = d16;
    lp.tokenizer = tok; /* the bf16 copy has no tokenizer/ */
    if (zimage_load(&mb, &lp)) {
        printf("FAIL load %s: %s\n", d16, zimage_last_error());
        return 1;
    }
    gen_job ref[2], job[2];
    for (int i = 0; i < 2; i++) {
        memset(&ref[i], 0, sizeof ref[i]);
        ref[i].m = i ? mb : ma;
        ref[i].p = zimage_params_default();
        ref[i].p.prompt = i ? "a lighthouse at night, oil painting" : "a red fox in the snow, watercolor";
        ref[i].p.negative_prompt = "blurry";
        ref[i].p.width = i ? 48 : 64;
        ref[i].p.height = 64;
        ref[i].p.steps = 3;
        ref[i].p.guidance = i ? 2.5f : 0.0f; /* one with CFG */
        ref[i].p.seed = 7 + (uint64_t)i;
        gen_run(&ref[i]);
        if (ref[i].rc) {
            printf("FAIL reference generation %d: %s\n", i, ref[i].err);
            return 1;
        }
    }
    for (int round = 0; round < 2; round++) {
        memcpy(job, ref, sizeof job);
        int rc = run_concurrently(job, 2);
        check(rc == 0 && same_image(&job[0].img, &ref[0].img) && same_image(&job[1].img, &ref[1].img),
              "two models, two threads at once: images bit-identical to the sequential runs");
        for (int i = 0; i < 2; i++) zimage_image_free(&job[i].img);
    }
    memcpy(job, ref, sizeof job);
    job[1].m = ma; /* both on model A: the shared model's own image for job 1 */
    gen_job solo = job[1];
    gen_run(&solo);
    int rc = run_concurrently(job, 2);
    check(rc == 0 && solo.rc == 0 && same_image(&job[0].img, &ref[0].img) && same_image(&job[1].img, &solo.img),
          "one shared model, two threads at once: images bit-identical to the sequential runs");
    for (int i = 0; i < 2; i++) zimage_image_free(&job[i].img);
    zimage_image_free(&solo.img);
    check_vae_encode(fx, kt);
    for (int i = 0; i < 2; i++) zimage_image_free(&ref[i].img);
    zimage_free(ma);
    zimage_free(mb);
    printf("threads: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
