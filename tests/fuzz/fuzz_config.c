/* fuzz_config.c - libFuzzer target: the JSON files of a model folder.
 *
 * The first input byte picks the file, the rest is its text:
 *   0 transformer/config.json        -> zi_dit_load   (tiny DiT weights)
 *   1 text_encoder/config.json       -> zi_qwen3_load (tiny Qwen3 weights)
 *   2 vae/config.json                -> zi_vae_load   (tiny VAE weights)
 *   3 scheduler/scheduler_config.json -> zi_sched_config_load + sigmas
 *   4 transformer/...index.json      -> zi_store_open (shard map)
 * The weights are symlinks into $ZIMAGE_FIXTURES/tiny-zimage (default tests/fixtures),
 * so a config that loads builds a real model. */
#include <sys/stat.h>

#include "../../src/dit/dit.h"
#include "../../src/io/store.h"
#include "../../src/sampling/scheduler.h"
#include "../../src/text/qwen3.h"
#include "../../src/vae/vae.h"
#include "fuzz_util.h"

static char dirs[5][512];

static void link_weights(const char *sub, const char *fixtures, const char *dst) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && ln -sf \"$(realpath '%s')\"/tiny-zimage/%s/*.safetensors* '%s'/", dst,
             fixtures, sub, dst);
    if (system(cmd) != 0) {
        fprintf(stderr, "fuzz_config: cannot link %s weights (set ZIMAGE_FIXTURES)\n", sub);
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *t = fuzz_tmpdir(), *fx = fuzz_fixtures();
    static const char *const sub[5] = {"transformer", "text_encoder", "vae", "scheduler", "index"};
    for (int i = 0; i < 5; i++) snprintf(dirs[i], sizeof dirs[i], "%s/%s", t, sub[i]);
    link_weights("transformer", fx, dirs[0]);
    link_weights("text_encoder", fx, dirs[1]);
    link_weights("vae", fx, dirs[2]);
    mkdir(dirs[3], 0700);
    link_weights("transformer", fx, dirs[4]);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp \"$(realpath '%s')\"/tiny-zimage/transformer/config.json '%s'/", fx, dirs[4]);
    if (system(cmd) != 0) abort();
    return 0;
}

static void write_at(const char *dir, const char *name, const uint8_t *data, size_t size) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path); /* may be a symlink into the fixtures: never write through it */
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 65536) return 0;
    int which = data[0] % 5;
    data++;
    size--;
    zi_err_clear();
    int rc;
    if (which == 0) {
        write_at(dirs[0], "config.json", data, size);
        zi_dit *m = NULL;
        rc = zi_dit_load(&m, dirs[0]);
        if (rc == 0) zi_dit_free(m);
    } else if (which == 1) {
        write_at(dirs[1], "config.json", data, size);
        zi_qwen3 *m = NULL;
        rc = zi_qwen3_load(&m, dirs[1]);
        if (rc == 0) zi_qwen3_free(m);
    } else if (which == 2) {
        write_at(dirs[2], "config.json", data, size);
        zi_vae *v = NULL;
        rc = zi_vae_load(&v, dirs[2]);
        if (rc == 0) zi_vae_free(v);
    } else if (which == 3) {
        char path[700];
        write_at(dirs[3], "scheduler_config.json", data, size);
        snprintf(path, sizeof path, "%s/scheduler_config.json", dirs[3]);
        zi_sched_config cfg;
        rc = zi_sched_config_load(&cfg, path);
        if (rc == 0) {
            float sig[9];
            if (zi_sched_sigmas(&cfg, 8, sig) != 0) fuzz_expect_message("zi_sched_sigmas");
        }
    } else {
        write_at(dirs[4], "diffusion_pytorch_model.safetensors.index.json", data, size);
        zi_store s;
        rc = zi_store_open(&s, dirs[4]);
        if (rc == 0) zi_store_close(&s);
    }
    if (rc != 0) fuzz_expect_message("config loader");
    return 0;
}
