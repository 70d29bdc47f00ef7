/* vae.c - FLUX.1 AutoencoderKL: loader (diffusers / BFL names), decoder, encoder.
 *
 * Spec 7.2-7.5. Inside, an activation of C channels at H x W is channels-last
 * [H*W, C] float32 (kernels/conv.h); convs are implicit GEMMs (kn_conv2d: patches gathered while staging row tiles) whose input
 * GroupNorm+SiLU and nearest-2x upsample are fused into the tile staging, so no
 * normalized or upsampled copy is ever materialized: the full-size buffers alive
 * at once are a resnet's input and its conv1 output (a channel-reducing 1x1
 * shortcut runs in place). Activation buffers come from the kernels' scratch pool (reused
 * within a call, released at its end).
 * Peak activation memory of a 1024x1024 decode: 1 GiB + 512 MiB (first resnet of
 * the last level: 256 channels in, 128 out, at full resolution). */
#include "vae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/error.h"
#include "../io/json.h"

static const char *const vae_prefixes[] = {"vae.", "first_stage_model."};

/* ---------------------------------------------------------------- config */

static void vae_config_defaults(zi_vae_config *c) {
    static const int flux_ch[4] = {128, 256, 512, 512};
    memset(c, 0, sizeof *c);
    c->n_levels = 4;
    memcpy(c->ch, flux_ch, sizeof flux_ch);
    c->layers_per_block = 2;
    c->latent_channels = 16;
    c->in_channels = 3;
    c->out_channels = 3;
    c->groups = 32;
    c->mid_attention = 1;
    c->scaling = 0.3611f;
    c->shift = 0.1159f;
    c->eps = 1e-6f;
}

static int vae_config_read(zi_vae_config *c, const char *path) {
    json_t *j = zi_json_load_file(path);
    if (!j) return -1;
    long long ch[ZI_VAE_MAX_LEVELS], lpb = c->layers_per_block, lat = c->latent_channels, cin = c->in_channels,
              cout = c->out_channels, groups = c->groups;
    double sf = c->scaling, sh = c->shift;
    int n = 0, att = c->mid_attention;
    int rc = zi_json_get_int_array(j, "block_out_channels", 1, 65536, ch, ZI_VAE_MAX_LEVELS, &n, path);
    if (!rc) rc = zi_json_get_int_opt(j, "layers_per_block", &lpb, path);
    if (!rc) rc = zi_json_get_int_opt(j, "latent_channels", &lat, path);
    if (!rc) rc = zi_json_get_int_opt(j, "in_channels", &cin, path);
    if (!rc) rc = zi_json_get_int_opt(j, "out_channels", &cout, path);
    if (!rc) rc = zi_json_get_int_opt(j, "norm_num_groups", &groups, path);
    if (!rc) rc = zi_json_get_num_opt(j, "scaling_factor", &sf, path);
    if (!rc) rc = zi_json_get_num_opt(j, "shift_factor", &sh, path);
    if (!rc) rc = zi_json_get_bool_opt(j, "mid_block_add_attention", &att, path);
    json_decref(j);
    if (rc) return -1;
    if (n < 1) return zi_err("%s: block_out_channels is empty", path);
    if (lpb < 1 || lpb > ZI_VAE_MAX_LEVELS) return zi_err("%s: layers_per_block %lld out of range", path, lpb);
    if (groups < 1 || groups > 4096) return zi_err("%s: norm_num_groups %lld out of range", path, groups);
    for (int i = 0; i < n; i++)
        if (ch[i] < 1 || ch[i] > 65536 || ch[i] % groups != 0)
            return zi_err("%s: block_out_channels[%d] = %lld is not a positive multiple of norm_num_groups %lld",
                          path, i, ch[i], groups);
    if (lat < 1 || lat > 4096 || cin < 1 || cin > 4096 || cout < 1 || cout > 4096)
        return zi_err("%s: latent/in/out channel count out of range", path);
    if (!(sf > 1e-6 && sf < 1e6) || !(sh > -1e6 && sh < 1e6)) /* also NaN; inside float range */
        return zi_err("%s: bad scaling_factor/shift_factor", path);
    c->n_levels = n;
    for (int i = 0; i < n; i++) c->ch[i] = (int)ch[i];
    c->layers_per_block = (int)lpb;
    c->latent_channels = (int)lat;
    c->in_channels = (int)cin;
    c->out_channels = (int)cout;
    c->groups = (int)groups;
    c->mid_attention = att;
    c->scaling = (float)sf;
    c->shift = (float)sh;
    return 0;
}

/* ---------------------------------------------------------------- tensor lookup */

static void *vae_own(zi_vae *v, void *p) {
    if (!p) return NULL;
    if (v->n_owned == v->cap_owned) {
        int cap = v->cap_owned ? 2 * v->cap_owned : 64;
        void **o = realloc(v->owned, sizeof *o * (size_t)cap);
        if (!o) {
            free(p);
            zi_err("out of memory");
            return NULL;
        }
        v->owned = o;
        v->cap_owned = cap;
    }
    v->owned[v->n_owned++] = p;
    return p;
}

static float *vae_vec(zi_vae *v, const char *prefix, const char *leaf, int64_t n) {
    char name[1024];
    snprintf(name, sizeof name, "%s.%s", prefix, leaf);
    return vae_own(v, zi_store_get_vec(&v->store, name, n));
}

/* After repacking, the mapped source pages of t are not needed: let the kernel drop
 * them from this process (clean file pages of a read-only private mapping refault
 * from the file if touched again). Only whole pages inside t, only when t lives in
 * the file mapping (not in an owned copy). Saves the decoder's size in RSS. */
static void vae_drop_source(const zi_vae *v, const zi_tensor *t) {
    uintptr_t a = (uintptr_t)t->data, b = a + t->nbytes, pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < v->store.n_files; i++) {
        const zi_st_file *f = &v->store.files[i];
        uintptr_t m0 = (uintptr_t)f->map, m1 = m0 + f->map_size;
        if (!f->map || f->owned || a < m0 || b > m1) continue;
        uintptr_t lo = (a + pg - 1) / pg * pg, hi = b / pg * pg;
        if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
        return;
    }
}

/* 3x3 conv `prefix`.{weight,bias}: weight repacked tap-major in its own dtype. */
static int vae_conv3(zi_vae *v, kn_conv *cv, const char *prefix, int cin, int cout, int stride, int pad) {
    char name[512];
    snprintf(name, sizeof name, "%s.weight", prefix);
    int64_t sh[4] = {cout, cin, 3, 3};
    const zi_tensor *t = zi_store_get(&v->store, name, 4, sh);
    if (!t) return -1;
    if (zi_dtype_is_block(t->dtype)) /* repacking moves single elements: blocks would be torn */
        return zi_err("%s: tensor '%s' is %s; block-quantized 3x3 conv weights are not supported", t->file, name,
                      zi_dtype_name(t->dtype));
    void *packed = vae_own(v, zi_malloc(t->nbytes));
    if (!packed) return -1;
    kn_conv_pack(packed, t->data, zi_dtype_size(t->dtype), cout, cin, 3);
    vae_drop_source(v, t);
    *cv = (kn_conv){.cin = cin, .cout = cout, .k = 3, .stride = stride, .pad = pad};
    cv->w = (kn_mat){.dtype = t->dtype, .rows = cout, .cols = 9 * (int64_t)cin, .data = packed};
    cv->bias = vae_vec(v, prefix, "bias", cout);
    return cv->bias ? 0 : -1;
}

/* Weight [rows, cols] stored either as a linear [rows, cols] or a 1x1 conv
 * [rows, cols, 1, 1]; a view on the mapped data. */
static int vae_mat(zi_vae *v, kn_mat *m, const char *prefix, int64_t rows, int64_t cols) {
    char name[1024];
    snprintf(name, sizeof name, "%s.weight", prefix);
    const zi_tensor *t = zi_store_find(&v->store, name);
    int64_t sh[4] = {rows, cols, 1, 1};
    t = zi_store_get(&v->store, name, t && t->ndim == 4 ? 4 : 2, sh);
    if (!t) return -1;
    *m = (kn_mat){.dtype = t->dtype, .rows = rows, .cols = cols, .data = t->data};
    return 0;
}

static int vae_conv1(zi_vae *v, kn_conv *cv, const char *prefix, int cin, int cout) {
    *cv = (kn_conv){.cin = cin, .cout = cout, .k = 1, .stride = 1, .pad = 0};
    if (vae_mat(v, &cv->w, prefix, cout, cin)) return -1;
    cv->bias = vae_vec(v, prefix, "bias", cout);
    return cv->bias ? 0 : -1;
}

/* ---------------------------------------------------------------- build */

static int vae_resnet_build(zi_vae *v, zi_vae_resnet *r, const char *p, int cin, int cout) {
    char name[512];
    memset(r, 0, sizeof *r);
    r->cin = cin;
    r->cout = cout;
    snprintf(name, sizeof name, "%s.norm1", p);
    if (!(r->n1_g = vae_vec(v, name, "weight", cin)) || !(r->n1_b = vae_vec(v, name, "bias", cin))) return -1;
    snprintf(name, sizeof name, "%s.conv1", p);
    if (vae_conv3(v, &r->conv1, name, cin, cout, 1, 1)) return -1;
    snprintf(name, sizeof name, "%s.norm2", p);
    if (!(r->n2_g = vae_vec(v, name, "weight", cout)) || !(r->n2_b = vae_vec(v, name, "bias", cout))) return -1;
    snprintf(name, sizeof name, "%s.conv2", p);
    if (vae_conv3(v, &r->conv2, name, cout, cout, 1, 1)) return -1;
    if (cin != cout) {
        snprintf(name, sizeof name, "%s.%s", p, v->bfl ? "nin_shortcut" : "conv_shortcut");
        if (vae_conv1(v, &r->shortcut, name, cin, cout)) return -1;
    }
    return 0;
}

static int vae_attn_build(zi_vae *v, zi_vae_attn *a, const char *p, int c) {
    static const char *const diff[5] = {"group_norm", "to_q", "to_k", "to_v", "to_out.0"};
    static const char *const bfl[5] = {"norm", "q", "k", "v", "proj_out"};
    const char *const *nm = v->bfl ? bfl : diff;
    kn_mat *w[4] = {&a->wq, &a->wk, &a->wv, &a->wo};
    float **b[4] = {&a->bq, &a->bk, &a->bv, &a->bo};
    char name[512];
    a->c = c;
    snprintf(name, sizeof name, "%s.%s", p, nm[0]);
    if (!(a->n_g = vae_vec(v, name, "weight", c)) || !(a->n_b = vae_vec(v, name, "bias", c))) return -1;
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s.%s", p, nm[i + 1]);
        if (vae_mat(v, w[i], name, c, c) || !(*b[i] = vae_vec(v, name, "bias", c))) return -1;
    }
    return 0;
}

/* Mid block (resnet, attention, resnet) of `side` ("encoder"/"decoder") at c channels. */
static int vae_mid_build(zi_vae *v, zi_vae_coder *m, const char *side, int c) {
    char p[256];
    for (int i = 0; i < 2; i++) {
        if (v->bfl)
            snprintf(p, sizeof p, "%s.mid.block_%d", side, i + 1);
        else
            snprintf(p, sizeof p, "%s.mid_block.resnets.%d", side, i);
        if (vae_resnet_build(v, i ? &m->mid2 : &m->mid1, p, c, c)) return -1;
    }
    if (!v->cfg.mid_attention) return 0;
    snprintf(p, sizeof p, v->bfl ? "%s.mid.attn_1" : "%s.mid_block.attentions.0", side);
    return vae_attn_build(v, &m->attn, p, c);
}

static int vae_out_build(zi_vae *v, zi_vae_coder *m, const char *side, int c, int cout) {
    char p[256];
    snprintf(p, sizeof p, v->bfl ? "%s.norm_out" : "%s.conv_norm_out", side);
    if (!(m->no_g = vae_vec(v, p, "weight", c)) || !(m->no_b = vae_vec(v, p, "bias", c))) return -1;
    snprintf(p, sizeof p, "%s.conv_out", side);
    return vae_conv3(v, &m->conv_out, p, c, cout, 1, 1);
}

/* Decoder levels in diffusers order k = 0..n-1 (BFL up.{n-1-k}); channels are
 * block_out_channels reversed; every level but the last ends with an upsampler. */
static int vae_decoder_build(zi_vae *v) {
    const zi_vae_config *c = &v->cfg;
    zi_vae_coder *d = &v->dec;
    int n = c->n_levels, top = c->ch[n - 1];
    char p[256];
    if (vae_conv3(v, &d->conv_in, "decoder.conv_in", c->latent_channels, top, 1, 1)) return -1;
    if (vae_mid_build(v, d, "decoder", top)) return -1;
    int prev = top;
    for (int k = 0; k < n; k++) {
        zi_vae_level *lv = &d->lv[k];
        int ch = c->ch[n - 1 - k];
        lv->n_res = c->layers_per_block + 1;
        for (int j = 0; j < lv->n_res; j++) {
            if (v->bfl)
                snprintf(p, sizeof p, "decoder.up.%d.block.%d", n - 1 - k, j);
            else
                snprintf(p, sizeof p, "decoder.up_blocks.%d.resnets.%d", k, j);
            if (vae_resnet_build(v, &lv->res[j], p, j ? ch : prev, ch)) return -1;
        }
        lv->has_resample = k < n - 1;
        if (lv->has_resample) {
            if (v->bfl)
                snprintf(p, sizeof p, "decoder.up.%d.upsample.conv", n - 1 - k);
            else
                snprintf(p, sizeof p, "decoder.up_blocks.%d.upsamplers.0.conv", k);
            if (vae_conv3(v, &lv->resample, p, ch, ch, 1, 1)) return -1;
        }
        prev = ch;
    }
    if (vae_out_build(v, d, "decoder", c->ch[0], c->out_channels)) return -1;
    d->loaded = 1;
    return 0;
}

/* Encoder levels l = 0..n-1, layers_per_block resnets each, a stride-2 downsampler
 * (zero pad right/bottom, no top/left padding) after every level but the last. */
static int vae_encoder_build(zi_vae *v) {
    const zi_vae_config *c = &v->cfg;
    zi_vae_coder *e = &v->enc;
    int n = c->n_levels, top = c->ch[n - 1];
    char p[256];
    if (vae_conv3(v, &e->conv_in, "encoder.conv_in", c->in_channels, c->ch[0], 1, 1)) return -1;
    int prev = c->ch[0];
    for (int l = 0; l < n; l++) {
        zi_vae_level *lv = &e->lv[l];
        int ch = c->ch[l];
        lv->n_res = c->layers_per_block;
        for (int j = 0; j < lv->n_res; j++) {
            if (v->bfl)
                snprintf(p, sizeof p, "encoder.down.%d.block.%d", l, j);
            else
                snprintf(p, sizeof p, "encoder.down_blocks.%d.resnets.%d", l, j);
            if (vae_resnet_build(v, &lv->res[j], p, j ? ch : prev, ch)) return -1;
        }
        lv->has_resample = l < n - 1;
        if (lv->has_resample) {
            if (v->bfl)
                snprintf(p, sizeof p, "encoder.down.%d.downsample.conv", l);
            else
                snprintf(p, sizeof p, "encoder.down_blocks.%d.downsamplers.0.conv", l);
            if (vae_conv3(v, &lv->resample, p, ch, ch, 2, 0)) return -1;
        }
        prev = ch;
    }
    if (vae_mid_build(v, e, "encoder", top)) return -1;
    if (vae_out_build(v, e, "encoder", top, 2 * c->latent_channels)) return -1;
    e->loaded = 1;
    return 0;
}

int zi_vae_load_ex(zi_vae **out, const char *path, int parts) {
    *out = NULL;
    zi_vae *v = calloc(1, sizeof *v);
    if (!v) return zi_err("out of memory");
    pthread_mutex_init(&v->enc_lock, NULL);
    vae_config_defaults(&v->cfg);
    struct stat st;
    if (stat(path, &st) != 0) {
        zi_vae_free(v);
        return zi_err("%s: no such VAE file or folder", path);
    }
    if (S_ISDIR(st.st_mode)) {
        char cp[4096];
        snprintf(cp, sizeof cp, "%s/config.json", path);
        if (stat(cp, &st) == 0 && vae_config_read(&v->cfg, cp) != 0) {
            zi_vae_free(v);
            return -1;
        }
    }
    if (zi_store_open(&v->store, path) != 0) {
        zi_vae_free(v);
        return -1;
    }
    v->store.prefixes = vae_prefixes;
    v->store.n_prefixes = 2;
    if (zi_store_has(&v->store, "decoder.mid_block.resnets.0.conv1.weight") ||
        zi_store_has(&v->store, "encoder.mid_block.resnets.0.conv1.weight"))
        v->bfl = 0;
    else if (zi_store_has(&v->store, "decoder.mid.block_1.conv1.weight") ||
             zi_store_has(&v->store, "encoder.mid.block_1.conv1.weight"))
        v->bfl = 1;
    else {
        zi_err("%s: not a VAE: neither diffusers (decoder.mid_block.*) nor BFL (decoder.mid.block_1.*) tensor names",
               path);
        zi_vae_free(v);
        return -1;
    }
    if (((parts & ZI_VAE_DECODER) && vae_decoder_build(v) != 0) ||
        ((parts & ZI_VAE_ENCODER) && vae_encoder_build(v) != 0)) {
        zi_err_ctx("loading VAE %s", path);
        zi_vae_free(v);
        return -1;
    }
    *out = v;
    return 0;
}

int zi_vae_load(zi_vae **out, const char *path) { return zi_vae_load_ex(out, path, ZI_VAE_DECODER); }

void zi_vae_free(zi_vae *v) {
    if (!v) return;
    for (int i = 0; i < v->n_owned; i++) free(v->owned[i]);
    free(v->owned);
    zi_store_close(&v->store);
    pthread_mutex_destroy(&v->enc_lock);
    free(v);
}

/* ---------------------------------------------------------------- activation buffers */

/* Activations come from the kernels' scratch pool (kernels.h kn_scratch_get), which also holds
 * the convs' buffers: freed buffers are reused (best fit), so the many same-sized layer outputs
 * do not fault in fresh pages each time, and when nothing idle is big enough all idle buffers
 * are released first, which keeps the peak at the live set (sizes only grow along the decoder).
 * A decode/encode releases the idle buffers when it ends (kn_scratch_trim). */
static float *vae_get(int64_t n) { return kn_scratch_get(sizeof(float) * (size_t)(n > 0 ? n : 1)); }
static void vae_put(float *p) { kn_scratch_put(p); }

/* conv work of the calling thread's last decode/encode (zi_vae_last_conv_stats) */
static _Thread_local double vae_conv_macs, vae_conv_seconds;

void zi_vae_last_conv_stats(double *macs, double *seconds) {
    *macs = vae_conv_macs;
    *seconds = vae_conv_seconds;
}

static void vae_call_end(const kn_conv_ws *ws) {
    vae_conv_macs = ws->macs;
    vae_conv_seconds = ws->seconds;
    kn_scratch_trim();
}

/* ---------------------------------------------------------------- forward */

/* Resnet on x [H*W, cin] -> x [H*W, cout] in the same buffer (its capacity must hold
 * both): x' = shortcut(x) + conv2(silu(GN2(conv1(silu(GN1(x)))))). cout > cin moves
 * x to a new buffer (*px). */
static int vae_resnet_forward(const zi_vae *v, kn_conv_ws *ws, const zi_vae_resnet *r, float **px, int H, int W) {
    const zi_vae_config *c = &v->cfg;
    int64_t P = (int64_t)H * W;
    int cmax = r->cin > r->cout ? r->cin : r->cout;
    float *x = *px, *h = NULL;
    float *sc = zi_malloc(sizeof(float) * 2 * (size_t)cmax), *sh = sc ? sc + cmax : NULL;
    if (!sc) return -1;
    kn_conv_pre pre = {sc, sh, 1, 0};
    if (kn_groupnorm_coeffs(x, P, r->cin, c->groups, c->eps, r->n1_g, r->n1_b, sc, sh)) goto fail;
    h = vae_get(P * r->cout);
    if (!h || kn_conv2d(ws, h, NULL, H, W, x, H, W, &r->conv1, &pre)) goto fail; /* [P, cout] */
    if (kn_groupnorm_coeffs(h, P, r->cout, c->groups, c->eps, r->n2_g, r->n2_b, sc, sh)) goto fail;
    if (r->shortcut.w.data) {
        if (r->cout <= r->cin) { /* in place: the first P*cout floats of x */
            if (kn_conv1x1(ws, x, x, P, &r->shortcut)) goto fail;
        } else {
            float *s = vae_get(P * r->cout);
            if (!s || kn_conv1x1(ws, s, x, P, &r->shortcut)) {
                vae_put(s);
                goto fail;
            }
            vae_put(x);
            *px = x = s;
        }
    }
    if (kn_conv2d(ws, x, x, H, W, h, H, W, &r->conv2, &pre)) goto fail; /* x += conv2(silu(GN2(h))) */
    vae_put(h);
    free(sc);
    return 0;
fail:
    vae_put(h);
    free(sc);
    return -1;
}

/* Single-head self-attention over the H*W tokens of x [P, C], residual in place. */
static int vae_attn_forward(const zi_vae *v, const zi_vae_attn *a, float *x, int64_t P) {
    int C = a->c;
    float *sc = zi_malloc(sizeof(float) * 2 * (size_t)C);
    float *n = vae_get(P * C), *q = vae_get(P * C), *k = vae_get(P * C), *vv = vae_get(P * C);
    int rc = -1;
    if (!sc || !n || !q || !k || !vv) goto done;
    if (kn_groupnorm_coeffs(x, P, C, v->cfg.groups, v->cfg.eps, a->n_g, a->n_b, sc, sc + C)) goto done;
    kn_channel_affine(n, x, P, C, sc, sc + C);
    if (kn_linear(q, n, P, &a->wq, a->bq) || /* [P, C] x [C, C]^T */
        kn_linear(k, n, P, &a->wk, a->bk) || kn_linear(vv, n, P, &a->wv, a->bv) ||
        kn_attention(n, C, q, C, k, C, vv, C, P, P, 1, 1, C, (float)(1.0 / sqrt((double)C)), 0) ||
        kn_linear(q, n, P, &a->wo, a->bo)) {
        zi_err_ctx("VAE mid-block attention over %lld pixels", (long long)P);
        goto done;
    }
    for (int64_t i = 0; i < P * C; i++) x[i] += q[i];
    rc = 0;
done:
    free(sc);
    vae_put(n);
    vae_put(q);
    vae_put(k);
    vae_put(vv);
    return rc;
}

static int vae_mid_forward(const zi_vae *v, kn_conv_ws *ws, const zi_vae_coder *m, float **px, int H, int W) {
    if (vae_resnet_forward(v, ws, &m->mid1, px, H, W)) return -1;
    if (v->cfg.mid_attention && vae_attn_forward(v, &m->attn, *px, (int64_t)H * W)) return -1;
    return vae_resnet_forward(v, ws, &m->mid2, px, H, W);
}

static void vae_dump(zi_vae_dump_fn dump, void *user, const char *name, const float *x, int C, int H, int W) {
    if (!dump) return;
    int64_t P = (int64_t)H * W;
    float *t = zi_malloc(sizeof(float) * (size_t)(P * C));
    if (!t) return;
    kn_hwc_to_chw(t, x, C, P);
    dump(user, name, t, C, H, W);
    free(t);
}

/* Returns conv_out(silu(GN(x))) [P, cout] in a pool buffer; x [P, c] goes back to the pool. */
static float *vae_out_forward(const zi_vae *v, kn_conv_ws *ws, const zi_vae_coder *m, float *x, int c, int H, int W,
                              zi_vae_dump_fn dump, void *user, const char *name) {
    int64_t P = (int64_t)H * W;
    float *sc = zi_malloc(sizeof(float) * 2 * (size_t)c), *y = NULL;
    if (!sc || kn_groupnorm_coeffs(x, P, c, v->cfg.groups, v->cfg.eps, m->no_g, m->no_b, sc, sc + c)) goto done;
    if (dump) {
        float *t = zi_malloc(sizeof(float) * (size_t)(P * c));
        if (!t) goto done;
        kn_channel_affine(t, x, P, c, sc, sc + c);
        vae_dump(dump, user, name, t, c, H, W);
        free(t);
    }
    y = vae_get(P * m->conv_out.cout);
    kn_conv_pre pre = {sc, sc + c, 1, 0};
    if (y && kn_conv2d(ws, y, NULL, H, W, x, H, W, &m->conv_out, &pre)) {
        vae_put(y);
        y = NULL;
    }
done:
    free(sc);
    vae_put(x);
    return y;
}

/* Largest spatial size accepted (pixels per side of the image). */
#define VAE_MAX_SIDE 16384

/* On failure every buffer taken here is back in the pool (x, y, z: NULL or owned). */
static int vae_decode_run(zi_vae *v, kn_conv_ws *ws, const float *latents, int h, int w, float *image,
                          zi_vae_dump_fn dump, void *dump_user) {
    const zi_vae_config *c = &v->cfg;
    int n = c->n_levels, lc = c->latent_channels;
    int64_t P = (int64_t)h * w;
    int rc = -1;
    float *z = vae_get(P * lc), *x = NULL, *y = NULL;
    if (!z) goto done;
    for (int64_t i = 0; i < P * lc; i++) z[i] = latents[i] / c->scaling + c->shift; /* [lc, h, w] */
    if (dump) dump(dump_user, "z", z, lc, h, w);
    x = vae_get(P * lc);
    if (!x) goto done;
    kn_chw_to_hwc(x, z, lc, P);
    vae_put(z);
    z = NULL;

    int H = h, W = w, C = c->ch[n - 1];
    y = vae_get(P * C);
    if (!y || kn_conv2d(ws, y, NULL, H, W, x, H, W, &v->dec.conv_in, NULL)) goto done;
    vae_put(x);
    x = y, y = NULL;
    vae_dump(dump, dump_user, "decoder.conv_in", x, C, H, W);
    if (vae_mid_forward(v, ws, &v->dec, &x, H, W)) goto done;
    vae_dump(dump, dump_user, "decoder.mid_block", x, C, H, W);

    for (int k = 0; k < n; k++) {
        const zi_vae_level *lv = &v->dec.lv[k];
        for (int j = 0; j < lv->n_res; j++)
            if (vae_resnet_forward(v, ws, &lv->res[j], &x, H, W)) goto done;
        C = lv->res[lv->n_res - 1].cout;
        if (lv->has_resample) { /* nearest 2x fused into the conv's input staging */
            y = vae_get((int64_t)4 * H * W * C);
            kn_conv_pre up = {NULL, NULL, 0, 1};
            if (!y || kn_conv2d(ws, y, NULL, 2 * H, 2 * W, x, H, W, &lv->resample, &up)) goto done;
            vae_put(x);
            x = y, y = NULL;
            H *= 2;
            W *= 2;
        }
        char name[64];
        snprintf(name, sizeof name, "decoder.up_blocks.%d", k);
        vae_dump(dump, dump_user, name, x, C, H, W);
    }
    y = vae_out_forward(v, ws, &v->dec, x, C, H, W, dump, dump_user, "decoder.conv_norm_out");
    x = NULL; /* back in the pool */
    if (!y) goto done;
    kn_hwc_to_chw(image, y, c->out_channels, (int64_t)H * W);
    rc = 0;
done:
    vae_put(z);
    vae_put(x);
    vae_put(y);
    return rc;
}

int zi_vae_decode_ex(zi_vae *v, const float *latents, int h, int w, float *image, zi_vae_dump_fn dump,
                     void *dump_user) {
    int f = 1 << (v->cfg.n_levels - 1);
    if (!v->dec.loaded) return zi_err("VAE decode: the decoder is not loaded");
    if (h < 1 || w < 1 || (int64_t)h * f > VAE_MAX_SIDE || (int64_t)w * f > VAE_MAX_SIDE)
        return zi_err("VAE decode: latent size %dx%d out of range (image side at most %d)", h, w, VAE_MAX_SIDE);
    kn_conv_ws ws = {0};
    int rc = vae_decode_run(v, &ws, latents, h, w, image, dump, dump_user);
    vae_call_end(&ws);
    return rc ? zi_err_ctx("VAE decode %dx%d", h, w) : 0;
}

int zi_vae_decode(zi_vae *v, const float *latents, int h, int w, float *image) {
    return zi_vae_decode_ex(v, latents, h, w, image, NULL, NULL);
}

static int vae_encode_run(zi_vae *v, kn_conv_ws *ws, const float *image, int H, int W, float *moments) {
    const zi_vae_config *c = &v->cfg;
    int n = c->n_levels, C = c->ch[0];
    int64_t P = (int64_t)H * W;
    int rc = -1;
    float *x = vae_get(P * c->in_channels), *y = NULL;
    if (!x) goto done;
    kn_chw_to_hwc(x, image, c->in_channels, P);
    y = vae_get(P * C);
    if (!y || kn_conv2d(ws, y, NULL, H, W, x, H, W, &v->enc.conv_in, NULL)) goto done;
    vae_put(x);
    x = y, y = NULL;
    for (int l = 0; l < n; l++) {
        const zi_vae_level *lv = &v->enc.lv[l];
        for (int j = 0; j < lv->n_res; j++)
            if (vae_resnet_forward(v, ws, &lv->res[j], &x, H, W)) goto done;
        C = lv->res[lv->n_res - 1].cout;
        if (lv->has_resample) { /* pad (0,1,0,1) + 3x3 stride 2: output H/2 x W/2 */
            y = vae_get((int64_t)(H / 2) * (W / 2) * C);
            if (!y || kn_conv2d(ws, y, NULL, H / 2, W / 2, x, H, W, &lv->resample, NULL)) goto done;
            vae_put(x);
            x = y, y = NULL;
            H /= 2;
            W /= 2;
        }
    }
    if (vae_mid_forward(v, ws, &v->enc, &x, H, W)) goto done;
    y = vae_out_forward(v, ws, &v->enc, x, C, H, W, NULL, NULL, NULL);
    x = NULL; /* back in the pool */
    if (!y) goto done;
    kn_hwc_to_chw(moments, y, 2 * c->latent_channels, (int64_t)H * W);
    rc = 0;
done:
    vae_put(x);
    vae_put(y);
    return rc;
}

int zi_vae_encode(zi_vae *v, const float *image, int H, int W, float *moments) {
    int f = 1 << (v->cfg.n_levels - 1);
    pthread_mutex_lock(&v->enc_lock); /* two first encodes must not both build it */
    int built = v->enc.loaded || vae_encoder_build(v) == 0;
    pthread_mutex_unlock(&v->enc_lock);
    if (!built) return zi_err_ctx("loading the VAE encoder from %s", v->store.path);
    if (H < f || W < f || H % f || W % f || H > VAE_MAX_SIDE || W > VAE_MAX_SIDE)
        return zi_err("VAE encode: image size %dx%d must be a positive multiple of %d (at most %d)", H, W, f,
                      VAE_MAX_SIDE);
    kn_conv_ws ws = {0};
    int rc = vae_encode_run(v, &ws, image, H, W, moments);
    vae_call_end(&ws);
    return rc ? zi_err_ctx("VAE encode %dx%d", H, W) : 0;
}

void zi_vae_latents_mode(const zi_vae *v, const float *moments, int h, int w, float *latents) {
    int64_t n = (int64_t)v->cfg.latent_channels * h * w; /* the mean: first latent_channels channels */
    for (int64_t i = 0; i < n; i++) latents[i] = (moments[i] - v->cfg.shift) * v->cfg.scaling;
}

void zi_vae_to_u8(const float *image, int H, int W, uint8_t *rgb) {
    int64_t P = (int64_t)H * W;
    for (int64_t p = 0; p < P; p++)
        for (int c = 0; c < 3; c++) {
            float x = image[c * P + p] / 2.0f + 0.5f;
            x = x > 0.0f ? (x < 1.0f ? x : 1.0f) : 0.0f; /* NaN -> 0 */
            x = x * 255.0f;
            rgb[p * 3 + c] = (uint8_t)nearbyintf(x); /* default rounding mode: half to even */
        }
}
