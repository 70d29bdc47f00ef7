/* unit_oom.c - out of memory anywhere in a generation is an error message, never a crash,
 * a leak or a changed result afterwards.
 *
 * Fault injection (common/error.h zi_alloc_fail_nth) makes the k-th checked allocation of a
 * call fail (zi_malloc & co. and every new scratch-pool buffer), for every k the call reaches:
 * zimage_generate on the tiny model (text-to-image with CFG and previews, and inpainting,
 * which adds the VAE encoder and the mask paths) and zimage_load (a sample of 30 points: each
 * load parses the 11 MB tokenizer.json). Each failing call must
 * return -1 with an "out of memory" message, leave no scratch buffer handed out, and the
 * next normal call must give the reference image bit for bit. Leaks are caught by
 * LeakSanitizer under `make test-san`. Runs single-threaded with the scratch pool emptied
 * before each call, so allocation k is the same site every time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/common/error.h"
#include "../../src/kernels/kernels.h"
#include "zimage.h"
#include "unit.h"

static int preview_count(void *user, int step, int total, const zimage_image *preview) {
    (void)step, (void)total, (void)preview;
    ++*(int *)user;
    return 0;
}

/* One generation with allocation `fail` failing (0: none). Returns rc; *allocs: numbers taken. */
static int oom_generate(zimage_model *m, const zimage_params *p, zimage_image *img, long fail, long *allocs) {
    kn_scratch_trim();
    zi_alloc_fail_nth(fail);
    int rc = zimage_generate(m, p, img);
    *allocs = zi_alloc_count();
    zi_alloc_fail_nth(0);
    return rc;
}

static int same_image(const zimage_image *a, const zimage_image *b) {
    return a->rgb && b->rgb && a->width == b->width && a->height == b->height &&
           !memcmp(a->rgb, b->rgb, (size_t)a->width * a->height * 3);
}

static int scratch_busy_is_zero(void) {
    size_t busy, idle;
    kn_scratch_stats(&busy, &idle);
    return busy == 0;
}

/* Every allocation point of one generation with parameters p. */
static void oom_sweep(zimage_model *m, const zimage_params *p, const char *what) {
    zimage_image ref, img;
    long K = 0, got = 0;
    if (oom_generate(m, p, &ref, 0, &K) != 0) {
        UNIT_CHECK(0, "oom %s: reference generation: %s", what, zimage_last_error());
        return;
    }
    int errors = 0, bad_msg = 0, not_reached = 0, succeeded = 0, busy = 0, differ = 0;
    char first_bad[512] = "";
    for (long k = 1; k <= K; k++) {
        int rc = oom_generate(m, p, &img, k, &got);
        if (got < k) not_reached++;
        if (rc == 0) { /* an allocation whose failure is absorbed must not change the result */
            succeeded++;
            if (!same_image(&img, &ref)) differ++;
            zimage_image_free(&img);
        } else {
            errors++;
            if (img.rgb) differ++; /* a failed call hands out no image */
            if (!strstr(zimage_last_error(), "out of memory")) {
                if (!bad_msg++) snprintf(first_bad, sizeof first_bad, "k=%ld: '%s'", k, zimage_last_error());
            }
        }
        if (!scratch_busy_is_zero()) busy++;
        /* the model is intact: a normal generation right after gives the same bits */
        if (rc != 0 && (k % 7 == 0 || k == K)) {
            if (oom_generate(m, p, &img, 0, &got) != 0 || !same_image(&img, &ref)) differ++;
            zimage_image_free(&img);
        }
    }
    printf("  oom: %s: %ld allocation points, %d failed with a message, %d absorbed\n", what, K, errors, succeeded);
    UNIT_CHECK(K > 20, "oom %s: only %ld allocations counted", what, K);
    UNIT_CHECK(not_reached == 0, "oom %s: %d injected failures not reached", what, not_reached);
    UNIT_CHECK(bad_msg == 0, "oom %s: %d errors without 'out of memory', first %s", what, bad_msg, first_bad);
    UNIT_CHECK(busy == 0, "oom %s: %d failed calls left scratch buffers handed out", what, busy);
    UNIT_CHECK(differ == 0, "oom %s: %d results differ from the reference", what, differ);
    UNIT_CHECK(errors > 0 && errors >= K * 9 / 10, "oom %s: only %d of %ld injected failures reported", what, errors, K);
    zimage_image_free(&ref);
}

void unit_oom(const char *fixtures) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tiny-zimage", fixtures);
    zimage_load_params lp = zimage_load_params_default();
    lp.model_dir = dir;
    lp.n_threads = 1; /* one thread: allocation k is the same site in every run */
    lp.precision = ZIMAGE_PRECISION_F32;

    /* zimage_load: every allocation point */
    zimage_model *m = NULL;
    zi_alloc_fail_nth(0);
    if (zimage_load(&m, &lp) != 0) {
        UNIT_CHECK(0, "oom: load: %s", zimage_last_error());
        return;
    }
    long KL = zi_alloc_count();
    zimage_free(m);
    int load_bad = 0, load_ok = 0;
    long stride = KL / 30 > 1 ? KL / 30 : 1; /* a load parses the 11 MB tokenizer.json: sample 30 */
    for (long k = 1; k <= KL; k = k < KL && k + stride > KL ? KL : k + stride) { /* ..., KL */
        zi_alloc_fail_nth(k);
        m = NULL;
        int rc = zimage_load(&m, &lp);
        zi_alloc_fail_nth(0);
        if (rc == 0) {
            load_ok++;
            zimage_free(m);
        } else if (m || !strstr(zimage_last_error(), "out of memory")) {
            if (!load_bad++) printf("  oom: load k=%ld: '%s'\n", k, zimage_last_error());
        }
    }
    printf("  oom: load: %ld allocation points, every %ld-th and the last failed: %d absorbed\n", KL, stride, load_ok);
    UNIT_CHECK(KL > 10 && load_bad == 0, "oom: load: %d of %ld failures without a clean error", load_bad, KL);

    if (zimage_load(&m, &lp) != 0) {
        UNIT_CHECK(0, "oom: load: %s", zimage_last_error());
        return;
    }
    int previews = 0;
    zimage_params p = zimage_params_default();
    p.prompt = "a red fox";
    p.negative_prompt = "blurry";
    p.width = p.height = 32;
    p.steps = 1;         /* a second step would only repeat the first one's allocation points */
    p.guidance = 2.0f; /* CFG: both DiT calls per step */
    p.seed = 7;
    p.preview = preview_count;
    p.preview_user = &previews;
    oom_sweep(m, &p, "text-to-image (CFG, previews)");

    /* inpainting: VAE encoder (built on first use: build it first), posterior, masks, blend */
    zimage_image init = {0}, mask = {0};
    init.width = mask.width = 32;
    init.height = mask.height = 32;
    init.rgb = malloc(32 * 32 * 3);
    mask.rgb = malloc(32 * 32 * 3);
    for (int i = 0; i < 32 * 32 * 3; i++) {
        init.rgb[i] = (uint8_t)(i * 37 % 251);
        mask.rgb[i] = (i / 3) % 32 < 16 ? 255 : 0;
    }
    zimage_params q = zimage_params_default();
    q.prompt = "a red fox";
    q.steps = 2;
    q.seed = 9;
    q.init_image = &init;
    q.mask = &mask;
    q.strength = 0.8;
    q.mask_blur = 2.0f;
    zimage_image warm;
    if (zimage_generate(m, &q, &warm) == 0) zimage_image_free(&warm);
    oom_sweep(m, &q, "inpainting");
    free(init.rgb);
    free(mask.rgb);
    zimage_free(m);
}
