/* fuzz_lora.c - libFuzzer target: LoRA / LoKr / LoHa adapter files (src/pipeline/lora.c) on the
 * tiny fixture DiT: key formats and prefixes, module matching (fused qkv, aliases),
 * factor shape checks, alpha, LoKr and LoHa factor products, merge and run-time terms.
 *
 * The first input byte picks the setting, the rest is the adapter (.safetensors):
 *   bits 0-1  the model: 0, 3 tiny-zimage (F32, merged), 1 tiny-zimage-bf16 (BF16, merged),
 *             2 gguf_dit_q8_0_sdcpp.gguf (Q8_0, run-time low-rank terms)
 *   bit 2     lenient (unmatched keys skipped with a warning)
 *   bit 3     ZI_LORA_RUNTIME (run-time terms even on dense weights)
 *   bit 4     the file applied twice (scales 0.75 and -0.5), else once (scale 1)
 * The model is loaded fresh for each input (a failed apply may have merged part of it).
 * After a successful apply the first and last element of every weight matrix and every
 * run-time term (a [rank, cols], b [rows, rank]: the sizes the GEMM reads) is read, so a
 * merged buffer or term smaller than its shape is an out-of-bounds read under ASan. (No DiT
 * forward: ~50 ms per input under ASan, it took most of the run's time.) */
#include "../../src/dit/dit.h"
#include "../../src/pipeline/lora.h"
#include "fuzz_util.h"

static char model_path[3][1024];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    setenv("OMP_NUM_THREADS", "1", 0); /* one input at a time: OpenMP workers only spin (set before any parallel region) */
    const char *fx = fuzz_fixtures();
    snprintf(model_path[0], sizeof model_path[0], "%s/tiny-zimage/transformer", fx);
    snprintf(model_path[1], sizeof model_path[1], "%s/tiny-zimage-bf16/transformer", fx);
    snprintf(model_path[2], sizeof model_path[2], "%s/gguf/gguf_dit_q8_0_sdcpp.gguf", fx);
    for (int i = 0; i < 3; i++) {
        zi_dit *d = NULL;
        if (zi_dit_load(&d, model_path[i]) != 0) {
            fprintf(stderr, "fuzz_lora: cannot load %s: %s (set ZIMAGE_FIXTURES)\n", model_path[i], zi_last_error());
            abort();
        }
        zi_dit_free(d);
    }
    return 0;
}

static volatile float sink;

/* First and last element of each buffer: ASan flags a buffer smaller than the shape says. */
static void read_mat(const kn_mat *m) {
    if (!m->data) return;
    size_t nb = zi_dtype_row_bytes(m->dtype, m->cols) * (size_t)m->rows;
    float s = 0;
    if (nb) s += ((const uint8_t *)m->data)[0] + ((const uint8_t *)m->data)[nb - 1];
    for (int k = 0; k < m->n_lora; k++) {
        const kn_lowrank *l = &m->lora[k];
        if (l->rank < 1 || m->rows < 1 || m->cols < 1) abort();
        s += l->a[0] + l->a[l->rank * m->cols - 1] + l->b[0] + l->b[m->rows * l->rank - 1];
    }
    sink = s;
}

static void read_weights(const zi_dit *d) {
    read_mat(&d->t_w1), read_mat(&d->t_w2), read_mat(&d->cap_w), read_mat(&d->x_w);
    read_mat(&d->final_w), read_mat(&d->final_ada_w);
    const zi_dit_block *blk[3] = {d->noise_refiner, d->context_refiner, d->layers};
    int cnt[3] = {d->cfg.n_refiner, d->cfg.n_refiner, d->cfg.n_layers};
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < cnt[s]; i++) {
            const zi_dit_block *b = &blk[s][i];
            read_mat(&b->wq), read_mat(&b->wk), read_mat(&b->wv), read_mat(&b->wo);
            read_mat(&b->w1), read_mat(&b->w2), read_mat(&b->w3), read_mat(&b->ada_w);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > (1 << 20)) return 0;
    int sel = data[0], which = (sel & 3) == 3 ? 0 : sel & 3;
    const char *path = fuzz_write("in.safetensors", data + 1, size - 1);
    zi_dit *d = NULL;
    if (zi_dit_load(&d, model_path[which]) != 0) {
        fprintf(stderr, "fuzz_lora: %s: %s\n", model_path[which], zi_last_error());
        abort();
    }
    zimage_lora l[2] = {{path, (sel & 16) ? 0.75f : 1.0f}, {path, -0.5f}};
    char *warn = NULL;
    zi_err_clear();
    if (zi_lora_apply(d, NULL, l, (sel & 16) ? 2 : 1, (sel >> 2) & 1, (sel & 8) ? ZI_LORA_RUNTIME : ZI_LORA_AUTO, &warn, NULL) != 0) {
        fuzz_expect_message("zi_lora_apply");
    } else {
        read_weights(d);
    }
    free(warn);
    zi_dit_free(d);
    return 0;
}
