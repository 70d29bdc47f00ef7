/* tok_decode.c - token ids -> text (byte-level decode; added tokens as their content;
 * each maximal ill-formed UTF-8 subsequence becomes one U+FFFD, as HF does). */
#include "tok_internal.h"

/* ------------------------------------------------------------------- decode */

char *zi_tokenizer_decode_len(const zi_tokenizer *t, const int32_t *ids, int n, size_t *len) {
    zbuf raw = {0}, out = {0};
    if (len) *len = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_ids || !t->ent[ids[i]].kind) {
            zi_err("tokenizer: cannot decode unknown token id %d (position %d)", ids[i], i);
            free(raw.p);
            return NULL;
        }
        const tok_entry *e = &t->ent[ids[i]];
        if (zbuf_put(&raw, t->strs.p + e->bytes_off, e->bytes_len)) {
            free(raw.p);
            return NULL;
        }
    }
    /* lossy UTF-8: each maximal ill-formed subsequence -> U+FFFD */
    if (zbuf_reserve(&out, raw.n * 3 + 1)) {
        free(raw.p);
        return NULL;
    }
    const unsigned char *s = (const unsigned char *)raw.p;
    for (size_t i = 0, bad; i < raw.n;) {
        size_t l = s[i] < 0x80 ? 1 : zi_utf8_seq(s + i, raw.n - i, &bad);
        if (l) {
            memcpy(out.p + out.n, s + i, l);
            out.n += l;
            i += l;
        } else {
            memcpy(out.p + out.n, "\xEF\xBF\xBD", 3);
            out.n += 3;
            i += bad;
        }
    }
    out.p[out.n] = 0;
    free(raw.p);
    if (len) *len = out.n;
    return out.p;
}

char *zi_tokenizer_decode(const zi_tokenizer *t, const int32_t *ids, int n) {
    return zi_tokenizer_decode_len(t, ids, n, NULL);
}
