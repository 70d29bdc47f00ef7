/* tok_encode.c - text -> token ids (docs/MODEL.md §4.2), mirroring HF `tokenizers`:
 *   raw text --added-token split (leftmost-longest)--> segments
 *   segment --NFC--> --pre-tokenizer regex (isolated)--> pieces
 *   piece bytes --BPE by merge rank (min-heap, HF tie order)--> ids
 * BPE results are cached per call, keyed by the piece's bytes. A call only reads the
 * tokenizer, so encodes may run in several threads at once. */
#include <limits.h>

#include "tok_internal.h"

/* ------------------------------------------------------------------- encode */

typedef struct {
    int32_t id, prev, next; /* id < 0: merged away */
} bpe_sym;

typedef struct {
    int32_t rank, pos, new_id;
} bpe_cand;

typedef struct {
    const zi_tokenizer *t;
    ibuf out;
    str_map cache;  /* piece bytes -> offset into cache_ids */
    zbuf cache_keys;
    ibuf cache_ids; /* [count, ids...] per cached piece */
    bpe_sym *sym;
    bpe_cand *heap;
    size_t sym_cap, heap_n, heap_cap;
    zbuf tmp, norm;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jstack;
} enc_ctx;

static int cand_less(const bpe_cand *a, const bpe_cand *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static int heap_push(enc_ctx *c, bpe_cand v) {
    if (c->heap_n == c->heap_cap) {
        size_t cap = c->heap_cap ? c->heap_cap * 2 : 64;
        bpe_cand *h = realloc(c->heap, cap * sizeof *h);
        if (!h) return zi_err("tokenizer: out of memory");
        c->heap = h;
        c->heap_cap = cap;
    }
    size_t i = c->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&v, &c->heap[p])) break;
        c->heap[i] = c->heap[p];
        i = p;
    }
    c->heap[i] = v;
    return 0;
}

static bpe_cand heap_pop(enc_ctx *c) {
    bpe_cand top = c->heap[0], last = c->heap[--c->heap_n];
    size_t i = 0, n = c->heap_n;
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        const bpe_cand *best = &last;
        if (l < n && cand_less(&c->heap[l], best)) m = l, best = &c->heap[l];
        if (l + 1 < n && cand_less(&c->heap[l + 1], best)) m = l + 1;
        if (m == i) break;
        c->heap[i] = c->heap[m];
        i = m;
    }
    if (n) c->heap[i] = last;
    return top;
}

static int bpe_push_pair(enc_ctx *c, int32_t left) {
    int32_t right = c->sym[left].next;
    if (right < 0) return 0;
    const merge_slot *m = mmap_find(&c->t->merges, merge_key(c->sym[left].id, c->sym[right].id));
    if (m->key == UINT64_MAX) return 0;
    return heap_push(c, (bpe_cand){m->rank, left, m->new_id});
}

/* BPE over the bytes of one piece; appends the ids to c->out. Same procedure
 * as HF's Word::merge_all: repeatedly merge the lowest-rank pair (leftmost on
 * ties); a queued pair is stale when its left symbol is gone or the pair now
 * yields another token. */
static int bpe_piece(enc_ctx *c, const unsigned char *w, size_t n) {
    const zi_tokenizer *t = c->t;
    if (n > INT32_MAX / 2) return zi_err("tokenizer: pre-token of %zu bytes is too long", n);
    if (t->ignore_merges) { /* whole piece in the vocab: take it as is */
        c->tmp.n = 0;
        if (zbuf_reserve(&c->tmp, n * 2)) return -1;
        for (size_t i = 0; i < n; i++) c->tmp.n += zi_utf8_put(c->tmp.p + c->tmp.n, t->b2u[w[i]]);
        const str_slot *s = smap_find(&t->vocab, t->strs.p, c->tmp.p, c->tmp.n, hash_bytes(c->tmp.p, c->tmp.n));
        if (s->h) return ibuf_push(&c->out, s->val);
    }
    if (n > c->sym_cap) {
        bpe_sym *s = realloc(c->sym, n * sizeof *s);
        if (!s) return zi_err("tokenizer: out of memory");
        c->sym = s;
        c->sym_cap = n;
    }
    for (size_t i = 0; i < n; i++)
        c->sym[i] = (bpe_sym){t->byte_id[w[i]], (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1};
    c->heap_n = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (bpe_push_pair(c, (int32_t)i)) return -1;
    while (c->heap_n) {
        bpe_cand top = heap_pop(c);
        bpe_sym *l = &c->sym[top.pos];
        if (l->id < 0 || l->next < 0) continue;
        bpe_sym *r = &c->sym[l->next];
        const merge_slot *m = mmap_find(&t->merges, merge_key(l->id, r->id));
        if (m->key == UINT64_MAX || m->new_id != top.new_id) continue;
        l->id = top.new_id; /* [l r] -> l */
        r->id = -1;
        l->next = r->next;
        if (r->next >= 0) c->sym[r->next].prev = top.pos;
        if (l->prev >= 0 && bpe_push_pair(c, l->prev)) return -1;
        if (bpe_push_pair(c, top.pos)) return -1;
    }
    for (int32_t i = 0; i >= 0; i = c->sym[i].next)
        if (ibuf_push(&c->out, c->sym[i].id)) return -1;
    return 0;
}

/* BPE with the per-call cache. */
static int encode_piece(enc_ctx *c, const unsigned char *w, size_t n) {
    if (n == 1) return ibuf_push(&c->out, c->t->byte_id[w[0]]);
    if (n > TOK_CACHE_MAX_WORD) return bpe_piece(c, w, n);
    uint64_t h = hash_bytes(w, n);
    str_slot *s = smap_find(&c->cache, c->cache_keys.p, w, n, h);
    if (s->h) {
        const int32_t *v = c->cache_ids.p + s->val;
        for (int32_t i = 1; i <= v[0]; i++)
            if (ibuf_push(&c->out, v[i])) return -1;
        return 0;
    }
    size_t before = c->out.n;
    if (bpe_piece(c, w, n)) return -1;
    /* remember the result */
    size_t cnt = c->out.n - before, off = c->cache_ids.n, koff = c->cache_keys.n;
    if (c->cache_ids.n + cnt + 1 > INT32_MAX || koff + n > UINT32_MAX) return 0; /* cache full */
    if (ibuf_push(&c->cache_ids, (int32_t)cnt)) return -1;
    for (size_t i = 0; i < cnt; i++)
        if (ibuf_push(&c->cache_ids, c->out.p[before + i])) return -1;
    if (zbuf_put(&c->cache_keys, w, n) || smap_grow(&c->cache)) return -1;
    s = smap_find(&c->cache, c->cache_keys.p, w, n, h);
    *s = (str_slot){h, (uint32_t)koff, (uint32_t)n, (int32_t)off};
    c->cache.n++;
    return 0;
}

/* Pre-tokenizer split ("isolated": both matches and the gaps are pieces). */
static int encode_pretok(enc_ctx *c, const char *s, size_t n) {
    size_t pos = 0, off = 0;
    while (off < n) {
        int rc = pcre2_match(c->t->re, (PCRE2_SPTR)s, n, off, PCRE2_NO_UTF_CHECK, c->md, c->mctx);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !c->jstack) { /* retry once with a large JIT stack */
            c->mctx = pcre2_match_context_create(NULL);
            c->jstack = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, NULL);
            if (!c->mctx || !c->jstack) return zi_err("tokenizer: out of memory");
            pcre2_jit_stack_assign(c->mctx, NULL, c->jstack);
            continue;
        }
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return zi_err("tokenizer: pre_tokenizer regex failed at byte %zu: %s", off, (char *)msg);
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
        size_t ms = ov[0], me = ov[1];
        if (ms > pos && encode_piece(c, (const unsigned char *)s + pos, ms - pos)) return -1;
        if (me == ms) { /* empty match: step over one character, it stays in the gap */
            uint32_t cp;
            off = ms + zi_utf8_get((const unsigned char *)s + ms, &cp);
            pos = ms;
            continue;
        }
        if (encode_piece(c, (const unsigned char *)s + ms, me - ms)) return -1;
        pos = off = me;
    }
    if (pos < n && encode_piece(c, (const unsigned char *)s + pos, n - pos)) return -1;
    return 0;
}

/* Find the next added token of one class (normalized or not) in s[from..n):
 * leftmost, longest at that position. Returns its index or -1; [*ms, *me) is
 * the span it consumes (extended over whitespace for lstrip/rstrip). */
static int find_added(const zi_tokenizer *t, const unsigned char *s, size_t n, size_t from, int normalized,
                      size_t *ms, size_t *me) {
    const uint8_t *first = normalized ? t->first_norm : t->first_raw;
    for (size_t i = from; i < n; i++) {
        if (!first[s[i]]) continue;
        for (int k = 0; k < t->n_added; k++) {
            const added_tok *a = &t->added[k];
            if (a->normalized != normalized || a->len > n - i || memcmp(s + i, t->strs.p + a->off, a->len))
                continue;
            size_t b = i, e = i + a->len;
            if (a->single_word) { /* no word character right before or after */
                uint32_t cp;
                int before = 0, after = 0;
                if (b > 0) {
                    size_t p = b - 1;
                    while (p > 0 && (s[p] & 0xC0) == 0x80) p--;
                    zi_utf8_get(s + p, &cp);
                    before = cp_is_word(cp);
                }
                if (e < n) {
                    zi_utf8_get(s + e, &cp);
                    after = cp_is_word(cp);
                }
                if (before || after) continue;
            }
            if (a->lstrip)
                while (b > from) {
                    size_t p = b - 1;
                    uint32_t cp;
                    while (p > from && (s[p] & 0xC0) == 0x80) p--;
                    zi_utf8_get(s + p, &cp);
                    if (!cp_is_space(cp)) break;
                    b = p;
                }
            if (a->rstrip)
                while (e < n) {
                    uint32_t cp;
                    size_t l = zi_utf8_get(s + e, &cp);
                    if (!cp_is_space(cp)) break;
                    e += l;
                }
            *ms = b;
            *me = e;
            return k;
        }
    }
    return -1;
}

/* NFC-normalized text of one segment, then normalized added tokens, then the regex. */
/* NFC of s[0..n) (no nfc_barrier code point inside) appended to out. */
static int nfc_part(zbuf *out, const char *s, size_t n) {
    int ascii = 1;
    for (size_t i = 0; i < n && ascii; i++) ascii = (unsigned char)s[i] < 0x80;
    if (ascii) return zbuf_put(out, s, n); /* ASCII is NFC */
    utf8proc_uint8_t *norm = NULL;
    utf8proc_ssize_t r =
        utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &norm, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (r < 0) return zi_err("tokenizer: NFC normalization failed: %s", utf8proc_errmsg(r));
    int rc = zbuf_put(out, norm, (size_t)r);
    free(norm);
    return rc;
}

/* NFC as HF computes it: nfc_barrier code points are copied as they are and
 * split the text into independently normalized parts (for HF's Unicode 9.0
 * data they are starters that neither decompose nor compose, so nothing
 * reorders or composes across them). */
static int nfc_append(zbuf *out, const char *s, size_t n) {
    size_t start = 0, i = 0;
    while (i < n) {
        if ((unsigned char)s[i] < 0xDF) { /* below U+07C0: never a barrier */
            i++;
            continue;
        }
        uint32_t cp;
        size_t l = zi_utf8_get((const unsigned char *)s + i, &cp);
        if (tok_is_nfc_barrier(cp)) {
            if (nfc_part(out, s + start, i - start) || zbuf_put(out, s + i, l)) return -1;
            start = i + l;
        }
        i += l;
    }
    return nfc_part(out, s + start, n - start);
}

/* NFC-normalized text of one segment, then normalized added tokens, then the regex. */
static int encode_segment(enc_ctx *c, const char *s, size_t n) {
    const zi_tokenizer *t = c->t;
    if (!n) return 0;
    if (t->nfc) {
        c->norm.n = 0;
        if (nfc_append(&c->norm, s, n)) return -1;
        s = c->norm.p;
        n = c->norm.n;
    }
    int rc = 0;
    if (t->has_norm_added) {
        size_t from = 0, ms, me;
        int k;
        while (!rc && (k = find_added(t, (const unsigned char *)s, n, from, 1, &ms, &me)) >= 0) {
            rc = encode_pretok(c, s + from, ms - from) || ibuf_push(&c->out, t->added[k].id);
            from = me;
        }
        if (!rc) rc = encode_pretok(c, s + from, n - from);
    } else
        rc = encode_pretok(c, s, n);
    return rc ? -1 : 0;
}

static void enc_free(enc_ctx *c) {
    free(c->out.p);
    free(c->cache.slot);
    free(c->cache_keys.p);
    free(c->cache_ids.p);
    free(c->sym);
    free(c->heap);
    free(c->tmp.p);
    free(c->norm.p);
    pcre2_match_data_free(c->md);
    pcre2_match_context_free(c->mctx);
    if (c->jstack) pcre2_jit_stack_free(c->jstack);
}

static int encode_text(const zi_tokenizer *t, const char *text, size_t len, int32_t **ids, int *n_ids,
                       const char *what, size_t what_off) {
    *ids = NULL;
    *n_ids = 0;
    if (!t) return zi_err("tokenizer: not loaded");
    if (len && !text) return zi_err("tokenizer: NULL text");
    if (len > INT_MAX / 2) return zi_err("tokenizer: %s of %zu bytes is too long", what, len);
    size_t bad = zi_utf8_valid_upto((const unsigned char *)text, len);
    if (bad != len) return zi_err("%s is not valid UTF-8 at byte %zu", what, bad - what_off);
    if (!len) return 0;
    enc_ctx c = {0};
    c.t = t;
    int rc = -1;
    c.md = pcre2_match_data_create_from_pattern(t->re, NULL);
    if (!c.md || smap_init(&c.cache, 256)) {
        if (!c.md) zi_err("tokenizer: out of memory");
        goto done;
    }
    size_t from = 0, ms, me;
    int k;
    while ((k = find_added(t, (const unsigned char *)text, len, from, 0, &ms, &me)) >= 0) {
        if (encode_segment(&c, text + from, ms - from) || ibuf_push(&c.out, t->added[k].id)) goto done;
        from = me;
    }
    if (encode_segment(&c, text + from, len - from)) goto done;
    if (c.out.n > INT_MAX) {
        zi_err("tokenizer: too many tokens");
        goto done;
    }
    *ids = c.out.p;
    *n_ids = (int)c.out.n;
    c.out.p = NULL;
    rc = 0;
done:
    enc_free(&c);
    return rc;
}

int zi_tokenizer_encode(const zi_tokenizer *t, const char *text, size_t len, int32_t **ids, int *n_ids) {
    return encode_text(t, text, len, ids, n_ids, "text", 0);
}

int zi_tokenizer_encode_prompt(const zi_tokenizer *t, const char *prompt, int max_len, int32_t **ids,
                               int *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    if (!prompt) return zi_err("tokenizer: NULL prompt");
    size_t pl = strlen(prompt), a = strlen(ZI_PROMPT_PREFIX), b = strlen(ZI_PROMPT_SUFFIX);
    size_t bad = zi_utf8_valid_upto((const unsigned char *)prompt, pl);
    if (bad != pl) return zi_err("prompt is not valid UTF-8 at byte %zu", bad);
    char *s = malloc(a + pl + b + 1);
    if (!s) return zi_err("tokenizer: out of memory");
    memcpy(s, ZI_PROMPT_PREFIX, a);
    memcpy(s + a, prompt, pl);
    memcpy(s + a + pl, ZI_PROMPT_SUFFIX, b + 1);
    int rc = encode_text(t, s, a + pl + b, ids, n_ids, "prompt", a);
    free(s);
    if (rc) return -1;
    if (max_len > 0 && *n_ids > max_len) *n_ids = max_len; /* right truncation */
    return 0;
}
