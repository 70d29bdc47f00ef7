/* main.c - the zimage command-line program. Uses only the public API (include/zimage.h).
 *
 *   zimage -m MODEL_DIR -p PROMPT [options]      generate a PNG
 *   zimage tokenize [-m MODEL_DIR | --tokenizer tokenizer.json] TEXT
 *   zimage encode -m MODEL_DIR PROMPT
 *   zimage serve -m MODEL_DIR [--host H] [--port P]   HTTP server (src/server/)
 *   zimage quantize -i MODEL -o OUT.gguf --type q8_0 [--component dit|text-encoder] [--force] */
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "zimage.h"
#include "../server/server.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: zimage -m MODEL_DIR -p PROMPT [options]\n"
            "       zimage tokenize [-m MODEL_DIR | --tokenizer FILE] [--template] TEXT\n"
            "       zimage encode -m MODEL_DIR PROMPT\n"
            "       zimage serve -m MODEL_DIR [--host 127.0.0.1] [--port 7860] [--api-key KEY] [--queue N]\n"
            "       zimage quantize -i MODEL -o OUT.gguf --type q8_0|q6_k|q5_k|q4_k|q4_0|q3_k|q2_k\n"
            "                       [--component dit|text-encoder] [--force] [--fast] [-t N]\n"
            "\n"
            "Generate an image with Z-Image / Z-Image-Turbo.\n"
            "\n"
            "  -m, --model DIR          diffusers model folder (transformer/, text_encoder/, tokenizer/, vae/)\n"
            "      --transformer PATH   transformer folder or single file (.safetensors, incl. fp8, or .gguf)\n"
            "      --text-encoder PATH  text encoder folder or single file (qwen_3_4b.safetensors, Qwen3-4B-Q8_0.gguf)\n"
            "      --tokenizer FILE     tokenizer.json (optional with a .gguf text encoder)\n"
            "      --vae PATH           VAE folder or ae.safetensors\n"
            "  -p, --prompt TEXT        what to draw\n"
            "  -n, --negative TEXT      negative prompt (used when guidance > 1; default \"\")\n"
            "  -W, --width N            image width, multiple of 16 (default 1024)\n"
            "  -H, --height N           image height, multiple of 16 (default 1024)\n"
            "  -s, --steps N            denoising steps (default: model's, Turbo 8)\n"
            "  -g, --guidance G         CFG scale (default: model's, Turbo 0 = off; CFG applies when > 1)\n"
            "      --cfg-normalization  clamp the CFG output norm to the positive branch's\n"
            "      --cfg-truncation T   disable CFG for t > T (default 1.0: never)\n"
            "      --seed S             random seed (default: random, always printed)\n"
            "      --max-tokens N       prompt token limit (default 512)\n"
            "      --init-img PATH      img2img: start from this PNG/JPEG (size: its own rounded down to 16,\n"
            "                           or resized to cover -W x -H and center-cropped)\n"
            "      --strength S         img2img/inpainting: how much to change, in (0, 1] (default 0.6; inpainting 1.0)\n"
            "      --mask PATH          inpainting: PNG/JPEG the size of --init-img, white = repaint\n"
            "      --mask-blur R        inpainting: paste the original back outside the mask blurred by R px\n"
            "      --lora PATH[:SCALE]  LoRA/LoKr/LoHa for the transformer and/or text encoder (repeatable; scale 1.0;\n"
            "                           diffusers, kohya/musubi, ComfyUI or LyCORIS keys)\n"
            "      --lora-lenient       skip adapter keys that match no weight (warn) instead of failing\n"
            "      --preview PATH       write a preview PNG of the current estimate while sampling (1/8 size,\n"
            "                           linear latent->RGB projection)\n"
            "      --preview-every N    preview every N steps (default 1)\n"
            "      --preview-vae        previews with the real VAE (full size, costs one decode each)\n"
            "  -o, --output FILE        output PNG (default zimage.png)\n"
            "  -t, --threads N          worker threads (default: all cores)\n"
            "  -v, --verbose            more detail\n"
            "  -h, --help               this help\n"
            "      --precision P        auto|f32|bf16|int8: arithmetic of text encoder and DiT (auto: bf16 where\n"
            "                           the CPU has bf16 units zimage uses, else f32; int8: GGUF-quantized\n"
            "                           matmuls on int8 dot products, the rest as bf16; see zimage info)\n"
            "      --vae-precision P    auto|f32|bf16: arithmetic of the VAE (auto: as --precision; f32: the\n"
            "                           official loader's fp32 VAE)\n"
            "      --version            print the version, CPU features and kernel path (also: zimage info)\n"
            "\n"
            "Environment: ZIMAGE_MODEL is the default for -m.\n");
}

/* "auto" | "f32" | "bf16" -> ZIMAGE_PRECISION_*; -1 otherwise. */
/* int8 is a DiT/text-encoder mode only (the VAE's convs have no int8 form). */
static int precision_parse(const char *s, int allow_int8, int *out) {
    static const char *const names[] = {"auto", "f32", "bf16", "int8"};
    static const int values[] = {ZIMAGE_PRECISION_AUTO, ZIMAGE_PRECISION_F32, ZIMAGE_PRECISION_BF16,
                                 ZIMAGE_PRECISION_INT8};
    for (int i = 0; i < (allow_int8 ? 4 : 3); i++)
        if (!strcmp(s, names[i])) return *out = values[i], 0;
    return -1;
}

static int die(const char *fmt, const char *a) {
    fprintf(stderr, "zimage: ");
    fprintf(stderr, fmt, a);
    fprintf(stderr, "\n");
    return 2;
}

/* Strict integer parse: whole string, in [lo, hi]. */
static int parse_int(const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "zimage: %s: '%s' is not an integer between %ld and %ld\n", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_float(const char *opt, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !(v >= lo && v <= hi)) {
        fprintf(stderr, "zimage: %s: '%s' is not a number between %g and %g\n", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_seed(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || s[0] == '-' || v == UINT64_MAX) {
        fprintf(stderr, "zimage: --seed: '%s' is not a non-negative integer below 2^64-1\n", s);
        return -1;
    }
    *out = v;
    return 0;
}

/* Can we create `path`? (folder exists and is writable; path is not a folder) */
static int check_output(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    const char *dir = dirname(buf);
    if (access(dir, W_OK) != 0) {
        fprintf(stderr, "zimage: cannot write output '%s': folder '%s' %s\n", path, dir,
                access(dir, F_OK) ? "does not exist" : "is not writable");
        return -1;
    }
    if (access(path, F_OK) == 0 && access(path, W_OK) != 0) {
        fprintf(stderr, "zimage: cannot write output '%s': file is not writable\n", path);
        return -1;
    }
    size_t n = strlen(path);
    if (n == 0 || path[n - 1] == '/') {
        fprintf(stderr, "zimage: output '%s' is a folder, not a file\n", path);
        return -1;
    }
    return 0;
}

/* Ctrl-C: first press asks the library to stop after the current step, second one exits. */
static volatile int cancel_requested = 0;

static void on_sigint(int sig) {
    (void)sig;
    if (cancel_requested) _exit(130);
    cancel_requested = 1;
}

typedef struct {
    int tty, verbose;
    double start, sum;
} progress_state;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int on_progress(void *user, zimage_stage st, int step, int total, double secs) {
    progress_state *ps = user;
    if (st == ZIMAGE_STAGE_TEXT && ps->verbose) fprintf(stderr, "encoding prompt...\n");
    if (st == ZIMAGE_STAGE_DENOISE) {
        if (step == 0) {
            ps->start = now_s();
            ps->sum = 0;
        } else {
            ps->sum += secs;
        }
        double per = step ? ps->sum / step : 0, eta = per * (total - step);
        if (ps->tty) {
            int width = 30, fill = total ? step * width / total : 0;
            fprintf(stderr, "\rstep %d/%d [", step, total);
            for (int i = 0; i < width; i++) fputc(i < fill ? '=' : (i == fill ? '>' : ' '), stderr);
            fprintf(stderr, "] %.2f s/step  ETA %.1f s   ", per, eta);
            if (step == total) fputc('\n', stderr);
        } else if (step > 0 && ps->verbose) {
            fprintf(stderr, "step %d/%d %.2f s\n", step, total, secs);
        }
    }
    if (st == ZIMAGE_STAGE_DECODE && ps->verbose) fprintf(stderr, "decoding...\n");
    return 0;
}

/* Preview callback: rewrite the preview PNG (atomically) each time; a failed write is a warning. */
static int on_preview(void *user, int step, int total, const zimage_image *img) {
    static int warned = 0;
    (void)step, (void)total;
    if (zimage_save_png(img, (const char *)user, NULL, "preview") && !warned) {
        fprintf(stderr, "\nzimage: warning: preview: %s\n", zimage_last_error());
        warned = 1;
    }
    return 0;
}

/* a .gguf text encoder carries its vocabulary: --tokenizer is then optional */
static int is_gguf_name(const char *p) {
    size_t n = strlen(p);
    return n > 5 && !strcmp(p + n - 5, ".gguf");
}

static int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *tokfile = NULL, *text = NULL;
    int templated = 0;
    for (int i = 0; i < argc; i++) {
        if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc)
            tokfile = argv[++i];
        else if (!strcmp(argv[i], "--template"))
            templated = 1;
        else if (argv[i][0] == '-' && argv[i][1])
            return die("tokenize: unknown option '%s'", argv[i]);
        else
            text = argv[i];
    }
    if (!text) return die("%s", "tokenize: no text given (zimage tokenize -m MODEL_DIR TEXT)");
    char path[4096];
    if (!model) model = getenv("ZIMAGE_MODEL");
    if (!tokfile) {
        if (!model) return die("%s", "tokenize: give -m MODEL_DIR, --tokenizer tokenizer.json or set ZIMAGE_MODEL");
        snprintf(path, sizeof path, "%s/tokenizer/tokenizer.json", model);
        tokfile = path;
    }
    int32_t *ids;
    char **pieces;
    int n;
    if (zimage_tokenize(tokfile, text, templated, 512, &ids, &pieces, &n)) {
        fprintf(stderr, "zimage: %s\n", zimage_last_error());
        return 1;
    }
    printf("%d tokens\n", n);
    for (int i = 0; i < n; i++) printf("%6d  %-8d %s\n", i, ids[i], pieces[i]);
    zimage_tokens_free(ids, pieces, n);
    return 0;
}

static int cmd_encode(int argc, char **argv) {
    zimage_load_params lp = zimage_load_params_default();
    const char *prompt = NULL;
    for (int i = 0; i < argc; i++) {
        if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc)
            lp.model_dir = argv[++i];
        else if (!strcmp(argv[i], "--text-encoder") && i + 1 < argc)
            lp.text_encoder = argv[++i];
        else if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc)
            lp.tokenizer = argv[++i];
        else if (argv[i][0] == '-' && argv[i][1])
            return die("encode: unknown option '%s'", argv[i]);
        else
            prompt = argv[i];
    }
    if (!lp.model_dir) lp.model_dir = getenv("ZIMAGE_MODEL");
    if ((!lp.model_dir && !(lp.text_encoder && (lp.tokenizer || is_gguf_name(lp.text_encoder)))) || !prompt)
        return die("%s", "encode: usage: zimage encode -m MODEL_DIR PROMPT");
    float *f;
    int n, dim;
    if (zimage_encode_prompt(&lp, prompt, 512, &f, &n, &dim)) {
        fprintf(stderr, "zimage: %s\n", zimage_last_error());
        return 1;
    }
    double sum = 0, asum = 0;
    for (long i = 0; i < (long)n * dim; i++) {
        sum += f[i];
        asum += fabs(f[i]);
    }
    printf("features [%d, %d]  sum %.6f  abs-sum %.6f  first %.6f  last %.6f\n", n, dim, sum, asum, f[0],
           f[(long)n * dim - 1]);
    free(f);
    return 0;
}

static int cli_generate(zimage_load_params *lp, zimage_params *p, const char *output, int verbose);

static void quantize_progress(void *user, uint64_t done, uint64_t total, const char *tensor) {
    int *last = user, width = 30, pct = total ? (int)(100.0 * (double)done / (double)total) : 100;
    if (pct == *last && done < total) return;
    *last = pct;
    int fill = width * pct / 100;
    fprintf(stderr, "\r[");
    for (int i = 0; i < width; i++) fputc(i < fill ? '=' : ' ', stderr);
    fprintf(stderr, "] %3d%%  %-48.48s", pct, tensor ? tensor : "");
    if (done >= total) fputc('\n', stderr);
}

static int cmd_quantize(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *type = NULL, *comp = "dit";
    int flags = 0;
    for (int i = 0; i < argc; i++) {
        if ((!strcmp(argv[i], "-i") || !strcmp(argv[i], "--input")) && i + 1 < argc)
            in = argv[++i];
        else if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--type") && i + 1 < argc)
            type = argv[++i];
        else if (!strcmp(argv[i], "--component") && i + 1 < argc)
            comp = argv[++i];
        else if (!strcmp(argv[i], "--force"))
            flags |= ZIMAGE_QUANTIZE_FORCE;
        else if (!strcmp(argv[i], "--fast"))
            flags |= ZIMAGE_QUANTIZE_FAST;
        else if ((!strcmp(argv[i], "-t") || !strcmp(argv[i], "--threads")) && i + 1 < argc && atoi(argv[i + 1]) > 0 &&
                 atoi(argv[i + 1]) < (1 << 20))
            flags |= ZIMAGE_QUANTIZE_THREADS(atoi(argv[++i]));
        else
            return die("quantize: unknown or incomplete option '%s'", argv[i]);
    }
    if (!in || !out || !type)
        return die("%s", "quantize: usage: zimage quantize -i MODEL -o OUT.gguf --type q8_0 [--component dit|text-encoder] [--force] [--fast] [-t N]");
    int last = -1;
    if (zimage_quantize(in, out, type, comp, flags, quantize_progress, &last)) {
        fprintf(stderr, "%szimage: %s\n", last >= 0 && last < 100 ? "\n" : "", zimage_last_error());
        return 1;
    }
    fprintf(stderr, "wrote %s\n", out);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "quantize")) return cmd_quantize(argc - 2, argv + 2);
    if (argc > 1 && !strcmp(argv[1], "tokenize")) return cmd_tokenize(argc - 2, argv + 2);
    if (argc > 1 && !strcmp(argv[1], "encode")) return cmd_encode(argc - 2, argv + 2);
    if (argc > 1 && !strcmp(argv[1], "info")) {
        printf("zimage %s\n%s", ZIMAGE_VERSION, zimage_system_info());
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "serve")) return zimage_serve_main(argc - 1, argv + 1);
    zimage_load_params lp = zimage_load_params_default();
    lp.low_memory = 1; /* one run per process: drop the DiT's pages before each VAE decode */
    zimage_params p = zimage_params_default();
    const char *output = "zimage.png";
    const char *init_path = NULL, *mask_path = NULL, *preview_path = NULL;
    int preview_opts = 0;
    zimage_lora loras[16];
    int n_loras = 0;
    char lora_paths[16][4096];
    int verbose = 0, strength_set = 0, blur_set = 0;
    long v;
    double d;
    if (argc == 1) {
        usage(stderr);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define ARG(s, l) (!strcmp(a, s) || !strcmp(a, l))
#define NEED()                                                          \
    if (i + 1 >= argc) return die("option '%s' needs a value", a);      \
    const char *val = argv[++i];
        if (ARG("-h", "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--version")) {
            printf("zimage %s\n%s", ZIMAGE_VERSION, zimage_system_info());
            return 0;
        } else if (ARG("-v", "--verbose")) {
            verbose = 1;
        } else if (!strcmp(a, "--cfg-normalization")) {
            p.cfg_normalization = 1;
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
        } else if (ARG("-p", "--prompt")) {
            NEED();
            p.prompt = val;
        } else if (ARG("-n", "--negative")) {
            NEED();
            p.negative_prompt = val;
        } else if (ARG("-W", "--width")) {
            NEED();
            if (parse_int(a, val, 16, 8192, &v)) return 2;
            if (v % 16) return die("width %s is not a multiple of 16", val);
            p.width = (int)v;
        } else if (ARG("-H", "--height")) {
            NEED();
            if (parse_int(a, val, 16, 8192, &v)) return 2;
            if (v % 16) return die("height %s is not a multiple of 16", val);
            p.height = (int)v;
        } else if (ARG("-s", "--steps")) {
            NEED();
            if (parse_int(a, val, 1, 1000, &v)) return 2;
            p.steps = (int)v;
        } else if (ARG("-g", "--guidance")) {
            NEED();
            if (parse_float(a, val, 0, 100, &d)) return 2;
            p.guidance = (float)d;
        } else if (!strcmp(a, "--cfg-truncation")) {
            NEED();
            if (parse_float(a, val, 0, 1e9, &d)) return 2;
            p.cfg_truncation = (float)d;
        } else if (!strcmp(a, "--seed")) {
            NEED();
            if (parse_seed(val, &p.seed)) return 2;
        } else if (!strcmp(a, "--max-tokens")) {
            NEED();
            if (parse_int(a, val, 1, 1024, &v)) return 2;
            p.max_sequence_length = (int)v;
        } else if (!strcmp(a, "--lora")) {
            NEED();
            if (n_loras == 16) return die("%s", "--lora: at most 16 adapters");
            /* PATH[:SCALE]: a trailing ":number" is the scale, anything else is part of the path */
            snprintf(lora_paths[n_loras], sizeof lora_paths[n_loras], "%s", val);
            float scale = 1.0f;
            char *colon = strrchr(lora_paths[n_loras], ':');
            if (colon) {
                char *end;
                errno = 0;
                double sc = strtod(colon + 1, &end);
                if (colon[1] && !*end && !errno) {
                    if (!(sc >= -100 && sc <= 100)) return die("--lora %s: scale must be between -100 and 100", val);
                    scale = (float)sc;
                    *colon = 0;
                }
            }
            if (access(lora_paths[n_loras], R_OK) != 0) return die("--lora %s: cannot read the file", lora_paths[n_loras]);
            loras[n_loras].path = lora_paths[n_loras];
            loras[n_loras].scale = scale;
            n_loras++;
        } else if (!strcmp(a, "--preview")) {
            NEED();
            preview_path = val;
        } else if (!strcmp(a, "--preview-every")) {
            NEED();
            if (parse_int(a, val, 1, 1000, &v)) return 2;
            p.preview_every = (int)v;
            preview_opts = 1;
        } else if (!strcmp(a, "--preview-vae")) {
            p.preview_vae = 1;
            preview_opts = 1;
        } else if (!strcmp(a, "--lora-lenient")) {
            lp.lora_lenient = 1;
        } else if (!strcmp(a, "--init-img")) {
            NEED();
            init_path = val;
        } else if (!strcmp(a, "--mask")) {
            NEED();
            mask_path = val;
        } else if (!strcmp(a, "--strength")) {
            NEED();
            if (parse_float(a, val, 0, 1, &d)) return 2;
            if (d <= 0) return die("--strength %s: must be greater than 0 (and at most 1)", val);
            p.strength = d;
            strength_set = 1;
        } else if (!strcmp(a, "--mask-blur")) {
            NEED();
            if (parse_float(a, val, 0, 256, &d)) return 2;
            p.mask_blur = (float)d;
            blur_set = 1;
        } else if (ARG("-o", "--output")) {
            NEED();
            output = val;
        } else if (ARG("-t", "--threads")) {
            NEED();
            if (parse_int(a, val, 1, 1024, &v)) return 2;
            lp.n_threads = (int)v;
        } else if (!strcmp(a, "--precision")) {
            NEED();
            if (precision_parse(val, 1, &lp.precision))
                return die("--precision: '%s' is not one of auto, f32, bf16, int8", val);
        } else if (!strcmp(a, "--vae-precision")) {
            NEED();
            if (precision_parse(val, 0, &lp.vae_precision))
                return die("--vae-precision: '%s' is not one of auto, f32, bf16", val);
        } else {
            fprintf(stderr, "zimage: unknown option '%s' (see zimage --help)\n", a);
            return 2;
        }
#undef ARG
#undef NEED
    }
    if (!lp.model_dir && !lp.transformer) lp.model_dir = getenv("ZIMAGE_MODEL");
    if (!p.prompt) return die("%s", "no prompt given (-p TEXT)");
    if (!lp.model_dir &&
        !(lp.transformer && lp.text_encoder && lp.vae && (lp.tokenizer || is_gguf_name(lp.text_encoder))))
        return die("%s", "no model given (-m MODEL_DIR, or --transformer, --text-encoder, --tokenizer and --vae; "
                         "a .gguf text encoder carries its tokenizer)");
    if (check_output(output)) return 2;
    if (preview_opts && !preview_path) return die("%s", "--preview-every/--preview-vae need --preview PATH");
    if (preview_path && check_output(preview_path)) return 2;
    if (strength_set && !init_path) return die("%s", "--strength needs --init-img");
    if (mask_path && !init_path) return die("%s", "--mask needs --init-img (inpainting repaints an image)");
    if (blur_set && !mask_path) return die("%s", "--mask-blur needs --mask");
    zimage_image init_img = {0}, mask_img = {0};
    if (init_path && zimage_image_load(init_path, &init_img)) {
        fprintf(stderr, "zimage: --init-img: %s\n", zimage_last_error());
        return 2;
    }
    if (mask_path && zimage_image_load(mask_path, &mask_img)) {
        fprintf(stderr, "zimage: --mask: %s\n", zimage_last_error());
        zimage_image_free(&init_img);
        return 2;
    }
    if (mask_path && (mask_img.width != init_img.width || mask_img.height != init_img.height)) {
        fprintf(stderr, "zimage: --mask is %dx%d but --init-img is %dx%d: they must have the same size\n",
                mask_img.width, mask_img.height, init_img.width, init_img.height);
        zimage_image_free(&init_img);
        zimage_image_free(&mask_img);
        return 2;
    }
    lp.loras = loras;
    lp.n_loras = n_loras;
    if (init_path) p.init_image = &init_img;
    if (preview_path) {
        p.preview = on_preview;
        p.preview_user = (void *)preview_path;
    }
    if (mask_path) p.mask = &mask_img;
    int rc = cli_generate(&lp, &p, output, verbose);
    zimage_image_free(&init_img);
    zimage_image_free(&mask_img);
    return rc;
}

static int cli_generate(zimage_load_params *lp_in, zimage_params *p_in, const char *output, int verbose) {
    zimage_load_params lp = *lp_in;
    zimage_params p = *p_in;
    signal(SIGINT, on_sigint);
    double t0 = now_s();
    zimage_model *m;
    if (zimage_load(&m, &lp)) {
        fprintf(stderr, "zimage: %s\n", zimage_last_error());
        return 1;
    }
    double t_load = now_s() - t0;
    if (zimage_load_warnings(m)) fprintf(stderr, "zimage: warning: %s\n", zimage_load_warnings(m));
    if (zimage_validate(m, &p)) {
        fprintf(stderr, "zimage: %s\n", zimage_last_error());
        zimage_free(m);
        return 2;
    }
    if (verbose) fputs(zimage_system_info(), stderr);
    progress_state ps = {isatty(2), verbose, 0, 0};
    p.progress = on_progress;
    p.progress_user = &ps;
    p.cancel = &cancel_requested;
    zimage_image img;
    if (zimage_generate(m, &p, &img)) {
        if (ps.tty) fputc('\n', stderr);
        fprintf(stderr, "zimage: %s\n", cancel_requested ? "interrupted" : zimage_last_error());
        zimage_free(m);
        return cancel_requested ? 130 : 1;
    }
    if (img.prompt_truncated)
        fprintf(stderr, "zimage: warning: the prompt is %d tokens; only the first %d were used (as the official pipeline does; --max-tokens)\n",
                img.prompt_tokens, p.max_sequence_length);
    const char *name = lp.model_dir ? lp.model_dir : lp.transformer;
    char namebuf[4096];
    snprintf(namebuf, sizeof namebuf, "%s", name);
    int rc = zimage_save_png(&img, output, &p, basename(namebuf));
    if (rc) {
        fprintf(stderr, "zimage: %s\n", zimage_last_error());
    } else {
        printf("wrote %s (%dx%d, %d steps, guidance %g, seed %llu)\n", output, img.width, img.height, img.steps,
               (double)img.guidance, (unsigned long long)img.seed);
        const zimage_timings *t = &img.timings;
        printf("time: load %.2f s, text encoder %.2f s, denoise %.2f s", t_load, t->text, t->denoise);
        if (img.steps <= 12 || verbose) {
            printf(" (");
            for (int i = 0; i < img.steps && i < 1000; i++) printf("%s%.2f", i ? " " : "", t->step[i]);
            printf(" s/step)");
        } else {
            printf(" (%.2f s/step average)", t->denoise / img.steps);
        }
        printf(", VAE %.2f s, total %.2f s\n", t->decode, now_s() - t0);
        if (t->n_previews)
            printf("previews: %d, %.3f ms each (included in denoise)\n", t->n_previews, 1e3 * t->preview / t->n_previews);
        printf("peak memory: %.1f MiB\n", (double)zimage_peak_rss() / (1024.0 * 1024.0));
    }
    zimage_image_free(&img);
    zimage_free(m);
    return rc ? 1 : 0;
}
