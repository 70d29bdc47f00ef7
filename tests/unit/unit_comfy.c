/* unit_comfy.c - the DiT loads a ComfyUI-style single file (fused qkv, Lumina-2 names,
 * "model.diffusion_model." prefix, no config.json) and computes exactly what the
 * diffusers folder computes. The file is converted from the tiny fixture here. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/common/error.h"
#include "../../src/dit/dit.h"
#include "../../src/io/st_writer.h"
#include "../../src/io/store.h"
#include "unit.h"

/* diffusers name -> ComfyUI name (qkv handled by the caller) */
static void comfy_name(const char *in, char *out, size_t cap) {
    const char *from[] = {"all_x_embedder.2-1.", "all_final_layer.2-1.", ".attention.to_out.0.", ".attention.norm_q.",
                          ".attention.norm_k."};
    const char *to[] = {"x_embedder.", "final_layer.", ".attention.out.", ".attention.q_norm.", ".attention.k_norm."};
    char buf[1600];
    snprintf(buf, sizeof buf, "%s", in);
    for (int i = 0; i < 5; i++) {
        char *p = strstr(buf, from[i]);
        if (p) {
            char rest[512];
            snprintf(rest, sizeof rest, "%s", p + strlen(from[i]));
            *p = 0;
            char tmp[1600];
            snprintf(tmp, sizeof tmp, "%.500s%s%.500s", buf, to[i], rest);
            snprintf(buf, sizeof buf, "%s", tmp);
        }
    }
    snprintf(out, cap, "model.diffusion_model.%.400s", buf);
}

void unit_comfy(const char *fixtures) {
    char dir[1024], file[1024];
    snprintf(dir, sizeof dir, "%s/tiny-zimage-bf16/transformer", fixtures);
    snprintf(file, sizeof file, "/tmp/zimage-comfy-%d.safetensors", (int)getpid());
    zi_store s;
    if (zi_store_open(&s, dir)) {
        UNIT_CHECK(0, "open %s: %s", dir, zi_last_error());
        return;
    }
    zi_st_writer w;
    zi_st_writer_init(&w);
    void *bufs[64];
    int nb = 0;
    for (int fi = 0; fi < s.n_files; fi++)
        for (int ti = 0; ti < s.files[fi].n_tensors; ti++) {
            const zi_tensor *t = &s.files[fi].tensors[ti];
            char out[512];
            if (strstr(t->name, ".attention.to_k.") || strstr(t->name, ".attention.to_v.")) continue;
            if (strstr(t->name, ".attention.to_q.")) { /* fuse q, k, v rows -> qkv [3D, D] */
                char base[256], kn[300], vn[300];
                snprintf(base, sizeof base, "%.*s", (int)(strstr(t->name, ".attention.to_q.") - t->name), t->name);
                snprintf(kn, sizeof kn, "%s.attention.to_k.weight", base);
                snprintf(vn, sizeof vn, "%s.attention.to_v.weight", base);
                const zi_tensor *k = zi_store_find(&s, kn), *v = zi_store_find(&s, vn);
                char *qkv = malloc(3 * t->nbytes);
                memcpy(qkv, t->data, t->nbytes);
                memcpy(qkv + t->nbytes, k->data, k->nbytes);
                memcpy(qkv + 2 * t->nbytes, v->data, v->nbytes);
                bufs[nb++] = qkv;
                int64_t sh[2] = {3 * t->shape[0], t->shape[1]};
                snprintf(out, sizeof out, "model.diffusion_model.%s.attention.qkv.weight", base);
                zi_st_writer_add(&w, out, t->dtype, 2, sh, qkv);
                continue;
            }
            comfy_name(t->name, out, sizeof out);
            zi_st_writer_add(&w, out, t->dtype, t->ndim, t->shape, t->data);
        }
    int rc = zi_st_writer_write(&w, file);
    UNIT_CHECK(rc == 0, "write comfy file: %s", zi_last_error());
    zi_st_writer_free(&w);
    zi_store_close(&s);
    for (int i = 0; i < nb; i++) free(bufs[i]);
    if (rc) return;

    zi_dit *a = NULL, *b = NULL;
    int ra = zi_dit_load(&a, dir), rb = zi_dit_load(&b, file);
    UNIT_CHECK(ra == 0 && rb == 0, "load diffusers (%d) and comfy (%d): %s", ra, rb, zi_last_error());
    if (ra == 0 && rb == 0) {
        UNIT_CHECK(b->cfg.dim == a->cfg.dim && b->cfg.n_layers == a->cfg.n_layers &&
                       b->cfg.axes_dims[1] == a->cfg.axes_dims[1] && b->cfg.cap_feat_dim == a->cfg.cap_feat_dim,
                   "comfy config inferred from shapes differs");
        enum { H = 8, W = 6, L = 13 };
        float x[16 * H * W], cap[L * 8], oa[16 * H * W], ob[16 * H * W];
        for (int i = 0; i < 16 * H * W; i++) x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
        for (int i = 0; i < L * 8; i++) cap[i] = (float)((i * 53) % 97) / 48.0f - 1.0f;
        zi_dit_forward(a, x, H, W, 0.3f, cap, L, oa, NULL, NULL);
        zi_dit_forward(b, x, H, W, 0.3f, cap, L, ob, NULL, NULL);
        UNIT_CHECK(memcmp(oa, ob, sizeof oa) == 0, "comfy single file output differs from diffusers folder");
        /* FFN row chunking (7-row chunks here) must not change results */
        int saved = a->ffn_chunk_rows;
        a->ffn_chunk_rows = 7;
        zi_dit_forward(a, x, H, W, 0.3f, cap, L, ob, NULL, NULL);
        a->ffn_chunk_rows = saved;
        float md = 0;
        for (int i = 0; i < 16 * H * W; i++) md = fabsf(oa[i] - ob[i]) > md ? fabsf(oa[i] - ob[i]) : md;
        /* equal up to summation order (row counts <= 4 take the GEMV path) */
        UNIT_CHECK(md <= 1e-5f, "DiT output with 7-row FFN chunks differs by %g", (double)md);
    }
    zi_dit_free(a);
    zi_dit_free(b);
    unlink(file);
}
