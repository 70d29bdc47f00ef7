/* bench_vae.c - speed and peak memory of the FLUX VAE decoder (and encoder).
 *
 * usage: bench_vae [-d DIR] [-t threads] [--f32] [--encode] [--bf16] [size ...]   (default sizes 256 512 1024)
 * --bf16: run the VAE in the bf16 precision mode (convs on the bf16 GEMM: AMX / vdpbf16ps where present).
 *
 * Writes a random-weight, full-size diffusers vae/ folder (block_out_channels
 * [128,256,512,512], layers_per_block 2, 16 latent channels; BF16 unless --f32) to
 * DIR (default /tmp/zimage-bench-vae, reused when present), then for each image size
 * runs one decode in a fresh child process and prints wall seconds, conv GFLOP/s
 * (multiply-add = 2 FLOPs; time spent inside the conv kernels) and the child's peak
 * RSS (getrusage ru_maxrss, so each size is measured on its own). --encode also runs
 * the encoder at each size. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "../src/common/dtype.h"
#include "../src/common/error.h"
#include "../src/kernels/conv.h"
#include "../src/vae/vae.h"

static const int CH[4] = {128, 256, 512, 512};
enum { LPB = 2, LATENT = 16 };

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* Linux: kilobytes */
}

/* ------------------------------------------------------------ random model folder */

typedef struct {
    char name[128];
    int ndim;
    int64_t shape[4];
    int kind; /* 0 weight (fan-in scaled), 1 norm gain, 2 bias / norm shift */
} tplan;

typedef struct {
    tplan *t;
    int n, cap;
} plan;

static void plan_add(plan *p, const char *name, int ndim, int64_t a, int64_t b, int64_t c, int64_t d, int kind) {
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 256;
        p->t = realloc(p->t, sizeof *p->t * (size_t)p->cap);
    }
    tplan *t = &p->t[p->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = a, t->shape[1] = b, t->shape[2] = c, t->shape[3] = d;
    t->kind = kind;
}

static void plan_norm(plan *p, const char *pre, int c) {
    char n[128];
    snprintf(n, sizeof n, "%s.weight", pre);
    plan_add(p, n, 1, c, 0, 0, 0, 1);
    snprintf(n, sizeof n, "%s.bias", pre);
    plan_add(p, n, 1, c, 0, 0, 0, 2);
}

static void plan_conv(plan *p, const char *pre, int cin, int cout, int k) {
    char n[128];
    snprintf(n, sizeof n, "%s.weight", pre);
    plan_add(p, n, 4, cout, cin, k, k, 0);
    snprintf(n, sizeof n, "%s.bias", pre);
    plan_add(p, n, 1, cout, 0, 0, 0, 2);
}

static void plan_resnet(plan *p, const char *pre, int cin, int cout) {
    char n[128];
    snprintf(n, sizeof n, "%s.norm1", pre), plan_norm(p, n, cin);
    snprintf(n, sizeof n, "%s.conv1", pre), plan_conv(p, n, cin, cout, 3);
    snprintf(n, sizeof n, "%s.norm2", pre), plan_norm(p, n, cout);
    snprintf(n, sizeof n, "%s.conv2", pre), plan_conv(p, n, cout, cout, 3);
    if (cin != cout) snprintf(n, sizeof n, "%s.conv_shortcut", pre), plan_conv(p, n, cin, cout, 1);
}

static void plan_mid(plan *p, const char *side, int c) {
    char n[128];
    for (int i = 0; i < 2; i++) snprintf(n, sizeof n, "%s.mid_block.resnets.%d", side, i), plan_resnet(p, n, c, c);
    snprintf(n, sizeof n, "%s.mid_block.attentions.0.group_norm", side), plan_norm(p, n, c);
    const char *lin[4] = {"to_q", "to_k", "to_v", "to_out.0"};
    for (int i = 0; i < 4; i++) {
        snprintf(n, sizeof n, "%s.mid_block.attentions.0.%s.weight", side, lin[i]);
        plan_add(p, n, 2, c, c, 0, 0, 0);
        snprintf(n, sizeof n, "%s.mid_block.attentions.0.%s.bias", side, lin[i]);
        plan_add(p, n, 1, c, 0, 0, 0, 2);
    }
}

static void plan_vae(plan *p) {
    char n[128];
    /* decoder */
    plan_conv(p, "decoder.conv_in", LATENT, CH[3], 3);
    plan_mid(p, "decoder", CH[3]);
    int prev = CH[3];
    for (int k = 0; k < 4; k++) {
        int ch = CH[3 - k];
        for (int j = 0; j <= LPB; j++)
            snprintf(n, sizeof n, "decoder.up_blocks.%d.resnets.%d", k, j), plan_resnet(p, n, j ? ch : prev, ch);
        if (k < 3) snprintf(n, sizeof n, "decoder.up_blocks.%d.upsamplers.0.conv", k), plan_conv(p, n, ch, ch, 3);
        prev = ch;
    }
    plan_norm(p, "decoder.conv_norm_out", CH[0]);
    plan_conv(p, "decoder.conv_out", CH[0], 3, 3);
    /* encoder */
    plan_conv(p, "encoder.conv_in", 3, CH[0], 3);
    prev = CH[0];
    for (int l = 0; l < 4; l++) {
        for (int j = 0; j < LPB; j++) {
            snprintf(n, sizeof n, "encoder.down_blocks.%d.resnets.%d", l, j);
            plan_resnet(p, n, j ? CH[l] : prev, CH[l]);
        }
        if (l < 3)
            snprintf(n, sizeof n, "encoder.down_blocks.%d.downsamplers.0.conv", l), plan_conv(p, n, CH[l], CH[l], 3);
        prev = CH[l];
    }
    plan_mid(p, "encoder", CH[3]);
    plan_norm(p, "encoder.conv_norm_out", CH[3]);
    plan_conv(p, "encoder.conv_out", CH[3], 2 * LATENT, 3);
}

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static float urand(void) { /* uniform [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 8388608.0) - 1.0);
}

static int64_t tnumel(const tplan *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

static int write_model(const char *dir, int f32) {
    plan p = {0};
    plan_vae(&p);
    size_t es = f32 ? 4 : 2;
    json_t *h = json_object();
    json_object_set_new(h, "__metadata__", json_pack("{ss}", "format", "pt"));
    size_t off = 0;
    int64_t dec = 0, enc = 0;
    for (int i = 0; i < p.n; i++) {
        tplan *t = &p.t[i];
        int64_t n = tnumel(t);
        json_t *sh = json_array();
        for (int d = 0; d < t->ndim; d++) json_array_append_new(sh, json_integer(t->shape[d]));
        json_object_set_new(h, t->name,
                            json_pack("{s:s,s:o,s:[I,I]}", "dtype", f32 ? "F32" : "BF16", "shape", sh, "data_offsets",
                                      (json_int_t)off, (json_int_t)(off + (size_t)n * es)));
        off += (size_t)n * es;
        if (!strncmp(t->name, "decoder.", 8))
            dec += n;
        else
            enc += n;
    }
    printf("random VAE: %d tensors, decoder %lld params, encoder %lld params (%s) -> %s\n", p.n, (long long)dec,
           (long long)enc, f32 ? "F32" : "BF16", dir);
    char path[4096];
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "{\"_class_name\": \"AutoencoderKL\", \"block_out_channels\": [128, 256, 512, 512], "
               "\"in_channels\": 3, \"out_channels\": 3, \"latent_channels\": 16, \"layers_per_block\": 2, "
               "\"norm_num_groups\": 32, \"scaling_factor\": 0.3611, \"shift_factor\": 0.1159, "
               "\"mid_block_add_attention\": true, \"use_quant_conv\": false, \"use_post_quant_conv\": false}\n");
    fclose(f);
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
    f = fopen(path, "wb");
    if (!f) return -1;
    char *txt = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    size_t len = strlen(txt), padded = (len + 7) / 8 * 8;
    uint8_t lb[8];
    for (int i = 0; i < 8; i++) lb[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    fwrite(lb, 1, 8, f);
    fwrite(txt, 1, len, f);
    for (size_t i = len; i < padded; i++) fputc(' ', f);
    free(txt);
    for (int i = 0; i < p.n; i++) {
        tplan *t = &p.t[i];
        int64_t n = tnumel(t);
        double fan_in = t->ndim == 4 ? (double)t->shape[1] * t->shape[2] * t->shape[3] : (double)t->shape[t->ndim - 1];
        float a = t->kind == 0 ? (float)sqrt(3.0 / fan_in) : 0.05f;
        for (int64_t j = 0; j < n; j++) {
            float v = (t->kind == 1 ? 1.0f : 0.0f) + a * urand();
            if (f32) {
                fwrite(&v, 4, 1, f);
            } else {
                uint16_t b = zi_f32_to_bf16(v);
                fwrite(&b, 2, 1, f);
            }
        }
    }
    free(p.t);
    return fclose(f);
}

/* ------------------------------------------------------------ one measurement per child */

static int run_one(const char *dir, int size, int encode) {
    zi_vae *v;
    double t0 = now_s();
    if (zi_vae_load_ex(&v, dir, encode ? ZI_VAE_ENCODER : ZI_VAE_DECODER)) {
        fprintf(stderr, "load: %s\n", zi_last_error());
        return 1;
    }
    double t_load = now_s() - t0, rss_load = peak_rss_mb();
    int h = size / 8, w = size / 8;
    float *lat = malloc(sizeof(float) * 2 * LATENT * (size_t)h * w); /* latents, or moments when encoding */
    float *img = malloc(sizeof(float) * 3 * (size_t)size * size);
    for (int64_t i = 0; i < (int64_t)LATENT * h * w; i++) lat[i] = urand();
    for (int64_t i = 0; i < (int64_t)3 * size * size; i++) img[i] = urand();
    t0 = now_s();
    int rc = encode ? zi_vae_encode(v, img, size, size, lat) : zi_vae_decode(v, lat, h, w, img);
    double dt = now_s() - t0;
    if (rc) {
        fprintf(stderr, "%s: %s\n", encode ? "encode" : "decode", zi_last_error());
        return 1;
    }
    double macs, tc;
    zi_vae_last_conv_stats(&macs, &tc);
    double flops = 2.0 * macs;
    double sum = 0;
    int64_t n_out = encode ? (int64_t)2 * LATENT * h * w : (int64_t)3 * size * size;
    for (int64_t i = 0; i < n_out; i++) sum += fabs(encode ? lat[i] : img[i]);
    printf("%-6s %4dx%-4d  %8.2f s  conv %7.1f TFLOP in %7.2f s = %7.1f GFLOP/s  other %6.2f s  peak RSS %7.0f MB"
           "  (after load %.0f MB, load %.2f s, mean|out| %.3f)\n",
           encode ? "encode" : "decode", size, size, dt, flops * 1e-12, tc, flops / tc * 1e-9, dt - tc,
           peak_rss_mb(), rss_load, t_load, sum / (double)n_out);
    fflush(stdout);
    free(lat);
    free(img);
    zi_vae_free(v);
    return 0;
}

int main(int argc, char **argv) {
    const char *dir = "/tmp/zimage-bench-vae";
    int sizes[16], n_sizes = 0, threads = 0, f32 = 0, encode = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-d") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--f32"))
            f32 = 1;
        else if (!strcmp(argv[i], "--encode"))
            encode = 1;
        else if (!strcmp(argv[i], "--bf16"))
            kn_set_precision(KN_PREC_BF16); /* inherited by the forked children */
        else if (n_sizes < 16 && atoi(argv[i]) >= 8 && atoi(argv[i]) % 8 == 0)
            sizes[n_sizes++] = atoi(argv[i]);
        else {
            fprintf(stderr, "usage: bench_vae [-d DIR] [-t threads] [--f32] [--encode] [--bf16] [size ...]\n");
            return 2;
        }
    }
    if (n_sizes == 0) sizes[0] = 256, sizes[1] = 512, sizes[2] = 1024, n_sizes = 3;
    kn_set_threads(threads);
    char path[4096];
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
    struct stat st;
    if (stat(path, &st) != 0 && write_model(dir, f32) != 0) {
        fprintf(stderr, "cannot write %s\n", dir);
        return 1;
    }
    printf("threads %d, model %s, path %s, %s mode\n", kn_get_threads(), dir, kn_isa_name(kn_get_isa()),
           kn_get_precision() == KN_PREC_BF16 ? "bf16" : "f32");
    fflush(stdout);
    for (int pass = 0; pass < 1 + encode; pass++)
        for (int i = 0; i < n_sizes; i++) {
            pid_t pid = fork();
            if (pid == 0) _exit(run_one(dir, sizes[i], pass));
            int status = 0;
            waitpid(pid, &status, 0);
            if (!WIFEXITED(status) || WEXITSTATUS(status)) return 1;
        }
    return 0;
}
