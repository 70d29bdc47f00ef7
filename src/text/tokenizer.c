/* tokenizer.c - Qwen2/Qwen3 byte-level BPE tokenizer (docs/MODEL.md §4.1-4.2).
 *
 * Pipeline position: prompt text -> [this] -> token ids -> Qwen3 text encoder.
 *
 * This file loads tokenizer.json (tok_json.c scans it) into the tables of
 * tok_internal.h and answers id/string lookups. The other parts:
 *   tok_json.c     strict streaming reader of tokenizer.json
 *   tok_unicode.c  Unicode classes of the pre-tokenizer regex, NFC fences
 *   tok_encode.c   encode: added tokens, NFC, regex split, BPE
 *   tok_decode.c   decode (byte-level, lossy UTF-8 like HF)
 *
 * Encode (mirrors HF `tokenizers`):
 *   raw text --added-token split (leftmost-longest)--> segments
 *   segment --NFC--> --pre-tokenizer regex (isolated)--> pieces
 *   piece bytes --BPE by merge rank (min-heap, HF tie order)--> ids
 * BPE results are cached per call, keyed by the piece's bytes. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../io/gguf.h"
#include "tok_internal.h"

/* GPT-2 regex, used for a ByteLevel pre-tokenizer with use_regex=true. */
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ------------------------------------------------------------------ loading */

static const char *json_type_str(const json_t *o) {
    return json_string_value(json_object_get(o, "type"));
}

/* normalizer: null, NFC, or a Sequence of those. */
static int load_normalizer(zi_tokenizer *t, const json_t *n, const char *path) {
    if (!n || json_is_null(n)) return 0;
    const char *type = json_type_str(n);
    if (type && !strcmp(type, "NFC")) {
        t->nfc = 1;
        return 0;
    }
    if (type && !strcmp(type, "Sequence")) {
        json_t *list = json_object_get(n, "normalizers"), *e;
        size_t i;
        if (!json_is_array(list)) return zi_err("%s: normalizer Sequence without \"normalizers\"", path);
        json_array_foreach(list, i, e) if (load_normalizer(t, e, path)) return -1;
        return 0;
    }
    return zi_err("%s: unsupported normalizer type \"%s\" (only NFC is implemented)", path, type ? type : "?");
}

/* pre_tokenizer: Split(Regex, Isolated) + ByteLevel(use_regex=false), or ByteLevel(use_regex=true). */
static int load_pretokenizer(const json_t *pt, const char *path, char **pattern) {
    if (!pt || json_is_null(pt))
        return zi_err("%s: no pre_tokenizer (expected Split regex + ByteLevel, as in Qwen2)", path);
    const json_t *items[8];
    size_t n = 0;
    const char *type = json_type_str(pt);
    if (type && !strcmp(type, "Sequence")) {
        json_t *list = json_object_get(pt, "pretokenizers");
        if (!json_is_array(list) || json_array_size(list) > 8)
            return zi_err("%s: pre_tokenizer Sequence needs \"pretokenizers\" (at most 8)", path);
        for (n = 0; n < json_array_size(list); n++) items[n] = json_array_get(list, n);
    } else
        items[n++] = pt;
    const char *pat = NULL;
    int bytelevel = 0;
    for (size_t i = 0; i < n; i++) {
        type = json_type_str(items[i]);
        if (type && !strcmp(type, "Split")) {
            const char *re = json_string_value(json_object_get(json_object_get(items[i], "pattern"), "Regex"));
            const char *beh = json_string_value(json_object_get(items[i], "behavior"));
            if (!re || pat) return zi_err("%s: pre_tokenizer Split must have one pattern.Regex", path);
            if (!beh || strcmp(beh, "Isolated") || json_is_true(json_object_get(items[i], "invert")))
                return zi_err("%s: pre_tokenizer Split: only behavior Isolated without invert is supported", path);
            pat = re;
        } else if (type && !strcmp(type, "ByteLevel")) {
            if (json_is_true(json_object_get(items[i], "add_prefix_space")))
                return zi_err("%s: ByteLevel add_prefix_space=true is not supported", path);
            if (json_is_true(json_object_get(items[i], "use_regex"))) {
                if (pat) return zi_err("%s: pre_tokenizer has two regex splits", path);
                pat = gpt2_pattern;
            }
            bytelevel = 1;
        } else
            return zi_err("%s: unsupported pre_tokenizer type \"%s\"", path, type ? type : "?");
    }
    if (!bytelevel || !pat) return zi_err("%s: pre_tokenizer must be a regex split plus ByteLevel", path);
    return tok_rewrite_pattern(pat, pattern);
}

static void added_finish(zi_tokenizer *t);

static int load_added(zi_tokenizer *t, const json_t *list, const char *path) {
    if (!list || json_is_null(list)) return 0;
    if (!json_is_array(list)) return zi_err("%s: added_tokens must be an array", path);
    size_t n = json_array_size(list), i;
    json_t *a;
    t->added = calloc(n ? n : 1, sizeof *t->added);
    if (!t->added) return zi_err("tokenizer: out of memory");
    json_array_foreach(list, i, a) {
        json_t *jid = json_object_get(a, "id"), *jc = json_object_get(a, "content");
        if (!json_is_integer(jid) || json_integer_value(jid) < 0 || json_integer_value(jid) >= TOK_MAX_ID)
            return zi_err("%s: added_tokens[%zu]: \"id\" must be an integer in [0, %d)", path, i, TOK_MAX_ID);
        if (!json_is_string(jc) || !json_string_length(jc))
            return zi_err("%s: added_tokens[%zu]: \"content\" must be a non-empty string", path, i);
        added_tok *d = &t->added[t->n_added++];
        d->id = (int32_t)json_integer_value(jid);
        d->off = (uint32_t)t->strs.n;
        d->len = (uint32_t)json_string_length(jc);
        if (zbuf_put(&t->strs, json_string_value(jc), d->len) || zbuf_putc(&t->strs, 0)) return -1;
        d->normalized = json_is_true(json_object_get(a, "normalized"));
        d->lstrip = json_is_true(json_object_get(a, "lstrip"));
        d->rstrip = json_is_true(json_object_get(a, "rstrip"));
        d->single_word = json_is_true(json_object_get(a, "single_word"));
    }
    added_finish(t);
    return 0;
}

/* Sort the added tokens longest first (the first match at a position is the longest one) and
 * note their first bytes. */
static void added_finish(zi_tokenizer *t) {
    for (int x = 1; x < t->n_added; x++)
        for (int y = x; y > 0 && t->added[y].len > t->added[y - 1].len; y--) {
            added_tok tmp = t->added[y];
            t->added[y] = t->added[y - 1];
            t->added[y - 1] = tmp;
        }
    for (int x = 0; x < t->n_added; x++) {
        unsigned char c0 = (unsigned char)t->strs.p[t->added[x].off];
        if (t->added[x].normalized) {
            t->first_norm[c0] = 1;
            t->has_norm_added = 1;
        } else
            t->first_raw[c0] = 1;
    }
}

static int load_model_options(zi_tokenizer *t, const json_t *m, const char *path) {
    const char *type = json_type_str(m);
    if (type && strcmp(type, "BPE")) return zi_err("%s: model type \"%s\" is not BPE", path, type);
    static const char *const empty_keys[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        json_t *v = json_object_get(m, empty_keys[i]);
        if (v && !json_is_null(v) && !(json_is_string(v) && !json_string_length(v)))
            return zi_err("%s: model.%s is not supported", path, empty_keys[i]);
    }
    json_t *d = json_object_get(m, "dropout");
    if (d && !json_is_null(d) && !(json_is_number(d) && json_number_value(d) == 0))
        return zi_err("%s: BPE dropout is not supported", path);
    t->ignore_merges = json_is_true(json_object_get(m, "ignore_merges"));
    return 0;
}

/* The tables are ~4 MB each and filled in random order: hash PF entries
 * ahead and prefetch their slots so the cache misses overlap. */
enum { PF = 16 };

/* model.vocab string -> id */
static int load_vocab_map(loader *L, const char *path) {
    zi_tokenizer *t = L->t;
    uint32_t h[PF];
    if (smap_init(&t->vocab, L->n_vocab)) return -1;
    for (size_t i = 0; i < L->n_vocab + PF; i++) {
        if (i >= PF) { /* insert entry i - PF */
            const vocab_item *v = &L->vocab[i - PF];
            uint32_t hv = h[i % PF];
            str_slot *s = smap_find(&t->vocab, t->strs.p, t->strs.p + v->off, v->len, hv);
            if (s->h) return zi_err("%s: duplicate vocab token \"%s\"", path, t->strs.p + v->off);
            *s = (str_slot){hv, v->off, v->len, v->id};
            t->vocab.n++;
        }
        if (i < L->n_vocab) { /* hash entry i */
            h[i % PF] = hash_bytes(t->strs.p + L->vocab[i].off, L->vocab[i].len);
            PREFETCH(&t->vocab.slot[h[i % PF] & t->vocab.mask]);
        }
    }
    return 0;
}

/* merges: (a, b) -> (rank = position, id of a+b). A later duplicate pair
 * overwrites an earlier one, as HF's HashMap collect does. */
static int load_merge_table(loader *L, const char *path) {
    zi_tokenizer *t = L->t;
    size_t n = L->n_merges, cap = table_cap(n);
    int32_t *res = malloc(sizeof *res * 3 * (n ? n : 1)); /* a, b, a+b ids */
    t->merges.slot = malloc(cap * sizeof *t->merges.slot);
    if (!res || !t->merges.slot) {
        free(res);
        return zi_err("tokenizer: out of memory");
    }
    memset(t->merges.slot, 0xFF, cap * sizeof *t->merges.slot); /* key UINT64_MAX = empty */
    t->merges.mask = cap - 1;
    uint32_t h[PF][3];
    for (size_t i = 0; i < n + PF; i++) {
        if (i >= PF) { /* resolve merge i - PF */
            size_t r = i - PF;
            const merge_item *m = &L->merges[r];
            const char *a = L->mstr.p + m->a_off, *b = L->mstr.p + m->b_off;
            const uint32_t *hr = h[r % PF];
            const str_slot *sa = smap_find(&t->vocab, t->strs.p, a, m->a_len, hr[0]);
            const str_slot *sb = smap_find(&t->vocab, t->strs.p, b, m->b_len, hr[1]);
            const str_slot *sc = smap_find2(&t->vocab, t->strs.p, a, m->a_len, b, m->b_len, hr[2]);
            if (!sa->h || !sb->h || !sc->h) {
                if (!sa->h || !sb->h)
                    zi_err("%s: merge %zu (\"%.*s %.*s\") uses token \"%.*s\" that is not in model.vocab", path, r,
                           (int)m->a_len, a, (int)m->b_len, b, (int)(!sa->h ? m->a_len : m->b_len), !sa->h ? a : b);
                else
                    zi_err("%s: merge %zu (\"%.*s %.*s\") gives token \"%.*s%.*s\" that is not in model.vocab", path,
                           r, (int)m->a_len, a, (int)m->b_len, b, (int)m->a_len, a, (int)m->b_len, b);
                free(res);
                return -1;
            }
            res[3 * r] = sa->val;
            res[3 * r + 1] = sb->val;
            res[3 * r + 2] = sc->val;
        }
        if (i < n) { /* hash merge i */
            const merge_item *m = &L->merges[i];
            uint64_t fa = fnv_update(FNV_INIT, L->mstr.p + m->a_off, m->a_len);
            uint32_t *hi = h[i % PF];
            hi[0] = hash_final(fa);
            hi[1] = hash_bytes(L->mstr.p + m->b_off, m->b_len);
            hi[2] = hash_final(fnv_update(fa, L->mstr.p + m->b_off, m->b_len));
            for (int k = 0; k < 3; k++) PREFETCH(&t->vocab.slot[hi[k] & t->vocab.mask]);
        }
    }
    for (size_t i = 0; i < n + PF; i++) {
        if (i < n) PREFETCH(&t->merges.slot[hash_u64(merge_key(res[3 * i], res[3 * i + 1])) & t->merges.mask]);
        if (i < PF) continue;
        size_t r = i - PF;
        uint64_t key = merge_key(res[3 * r], res[3 * r + 1]);
        *mmap_find(&t->merges, key) = (merge_slot){key, (int32_t)r, res[3 * r + 2]};
    }
    free(res);
    return 0;
}

static int load_tables(loader *L, const char *path) {
    zi_tokenizer *t = L->t;
    int32_t n_ids = 0;
    for (size_t i = 0; i < L->n_vocab; i++)
        if (L->vocab[i].id >= n_ids) n_ids = L->vocab[i].id + 1;
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id >= n_ids) n_ids = t->added[i].id + 1;
    t->n_ids = n_ids;
    t->ent = calloc(n_ids ? (size_t)n_ids : 1, sizeof *t->ent);
    if (!t->ent) return zi_err("tokenizer: out of memory");
    /* vocab strings -> decoded bytes; a token with characters outside the
     * byte alphabet decodes to its own UTF-8 (as HF's ByteLevel decoder does) */
    if (zbuf_reserve(&t->strs, t->strs.n + 1)) return -1; /* decoded bytes are never longer */
    for (size_t i = 0; i < L->n_vocab; i++) {
        vocab_item *v = &L->vocab[i];
        tok_entry *e = &t->ent[v->id];
        if (e->kind) return zi_err("%s: vocab id %d is used twice", path, v->id);
        e->kind = 1;
        e->str_off = v->off;
        e->str_len = v->len;
        const unsigned char *s = (const unsigned char *)t->strs.p + v->off;
        char tmp[1024], *dst = v->len <= sizeof tmp ? tmp : NULL;
        size_t k = 0, nb = 0;
        int ok = dst != NULL;
        while (ok && k < v->len) {
            uint32_t cp;
            k += zi_utf8_get(s + k, &cp);
            if (cp < 324 && t->u2b[cp] >= 0)
                dst[nb++] = (char)t->u2b[cp];
            else
                ok = 0;
        }
        if (!ok) { /* identical to the string itself */
            e->bytes_off = v->off;
            e->bytes_len = v->len;
            continue;
        }
        e->bytes_off = (uint32_t)t->strs.n;
        e->bytes_len = (uint32_t)nb;
        if (zbuf_put(&t->strs, tmp, nb)) return -1;
    }
    if (load_vocab_map(L, path)) return -1;
    for (int i = 0; i < t->n_added; i++) {
        tok_entry *e = &t->ent[t->added[i].id];
        e->kind = 2;
        e->str_off = e->bytes_off = t->added[i].off;
        e->str_len = e->bytes_len = t->added[i].len;
    }
    /* single-byte symbols */
    for (int b = 0; b < 256; b++) {
        char s[4];
        size_t l = zi_utf8_put(s, t->b2u[b]);
        str_slot *sl = smap_find(&t->vocab, t->strs.p, s, l, hash_bytes(s, l));
        if (!sl->h) return zi_err("%s: model.vocab has no token for byte 0x%02x (\"%.*s\")", path, b, (int)l, s);
        t->byte_id[b] = sl->val;
    }
    return load_merge_table(L, path);
}

static int load_regex(zi_tokenizer *t, const char *pattern, const char *path) {
    int err;
    PCRE2_SIZE eoff;
    t->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &eoff, NULL);
    if (!t->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return zi_err("%s: cannot compile the pre_tokenizer regex at offset %zu: %s", path, (size_t)eoff,
                      (char *)msg);
    }
    pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE); /* optional: falls back to the interpreter */
    return 0;
}

/* Map the whole file read-only (pages populated up front). */
static const char *map_file(const char *path, size_t *n) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        zi_err("cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    void *p = NULL;
    if (fstat(fd, &sb) != 0)
        zi_err("cannot read %s: %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        zi_err("%s: not a regular file", path);
    else if (sb.st_size == 0)
        zi_err("%s: file is empty", path);
    else if (sb.st_size > INT32_MAX)
        zi_err("%s: file too large for a tokenizer.json (%lld bytes)", path, (long long)sb.st_size);
    else {
        int flags = MAP_PRIVATE;
#ifdef MAP_POPULATE
        flags |= MAP_POPULATE;
#endif
        p = mmap(NULL, (size_t)sb.st_size, PROT_READ, flags, fd, 0);
        if (p == MAP_FAILED) {
            zi_err("cannot map %s: %s", path, strerror(errno));
            p = NULL;
        }
    }
    close(fd);
    *n = p ? (size_t)sb.st_size : 0;
    return p;
}

void zi_tokenizer_free(zi_tokenizer *t) {
    if (!t) return;
    free(t->strs.p);
    free(t->vocab.slot);
    free(t->merges.slot);
    free(t->ent);
    free(t->added);
    pcre2_code_free(t->re);
    free(t);
}

/* Qwen2's pre-tokenizer split (tokenizer.ggml.pre = "qwen2"); identical to the Split regex of
 * Qwen's tokenizer.json. */
static const char qwen2_pattern[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* The vocabulary of a GGUF in llama.cpp's layout: tokenizer.ggml.model "gpt2" (byte-level BPE),
 * .pre "qwen2", .tokens (id -> byte-level string), .token_type (1 normal, 3 control and 4
 * user-defined = added tokens matched verbatim, 5 unused = padding ids, skipped) and .merges
 * ("a b"). NFC normalization, as Qwen's tokenizer.json. */
static int tokenizer_load_gguf(zi_tokenizer *t, loader *L, const zi_st_file *f, char **pattern) {
    const char *path = f->path, *model = zi_gguf_get_str(f, "tokenizer.ggml.model");
    const char *pre = zi_gguf_get_str(f, "tokenizer.ggml.pre");
    const zi_gguf_kv *toks = zi_gguf_find(f, "tokenizer.ggml.tokens");
    const zi_gguf_kv *types = zi_gguf_find(f, "tokenizer.ggml.token_type");
    const zi_gguf_kv *merges = zi_gguf_find(f, "tokenizer.ggml.merges");
    if (!model || strcmp(model, "gpt2"))
        return zi_err("%s: tokenizer.ggml.model is %s%s%s, expected \"gpt2\" (byte-level BPE)", path,
                      model ? "\"" : "", model ? model : "missing", model ? "\"" : "");
    if (!pre || strcmp(pre, "qwen2"))
        return zi_err("%s: tokenizer.ggml.pre is %s, only \"qwen2\" is supported", path, pre ? pre : "missing");
    if (!toks || toks->type != ZI_GGUF_ARRAY || toks->arr_type != ZI_GGUF_STRING || !toks->arr_n ||
        toks->arr_n >= TOK_MAX_ID)
        return zi_err("%s: tokenizer.ggml.tokens missing or not an array of strings", path);
    if (!merges || merges->type != ZI_GGUF_ARRAY || merges->arr_type != ZI_GGUF_STRING)
        return zi_err("%s: tokenizer.ggml.merges missing or not an array of strings", path);
    if (types && (types->type != ZI_GGUF_ARRAY || types->arr_n != toks->arr_n ||
                  (types->arr_type != ZI_GGUF_I32 && types->arr_type != ZI_GGUF_U32)))
        return zi_err("%s: tokenizer.ggml.token_type must be an int32 array as long as the tokens", path);
    uint64_t n = toks->arr_n, n_added = 0;
    for (uint64_t i = 0; types && i < n; i++) n_added += zi_gguf_arr_int(types, i) == 3 || zi_gguf_arr_int(types, i) == 4;
    t->added = calloc(n_added ? (size_t)n_added : 1, sizeof *t->added);
    L->vocab = malloc(sizeof *L->vocab * (size_t)n);
    L->merges = malloc(sizeof *L->merges * (merges->arr_n ? (size_t)merges->arr_n : 1));
    if (!t->added || !L->vocab || !L->merges) return zi_err("tokenizer: out of memory");
    for (uint64_t i = 0; i < n; i++) {
        const zi_gguf_str *s = &toks->arr_strs[i];
        int64_t type = types ? zi_gguf_arr_int(types, i) : 1;
        if (s->len == 0 || s->len > UINT32_MAX / 2 || memchr(s->s, 0, s->len))
            return zi_err("%s: tokenizer.ggml.tokens[%llu] is empty or holds a NUL byte", path, (unsigned long long)i);
        if (type == 5) continue; /* unused (padding of the embedding table) */
        uint32_t off = (uint32_t)t->strs.n;
        if (zbuf_put(&t->strs, s->s, s->len) || zbuf_putc(&t->strs, 0)) return -1;
        if (type == 3 || type == 4) {
            t->added[t->n_added++] = (added_tok){off, (uint32_t)s->len, (int32_t)i, 0, 0, 0, 0};
        } else if (type == 1) {
            L->vocab[L->n_vocab++] = (vocab_item){(int32_t)i, off, (uint32_t)s->len};
        } else
            return zi_err("%s: tokenizer.ggml.token_type[%llu] = %lld is not supported (1, 3, 4, 5 are)", path,
                          (unsigned long long)i, (long long)type);
    }
    added_finish(t);
    for (uint64_t i = 0; i < merges->arr_n; i++) {
        const zi_gguf_str *s = &merges->arr_strs[i];
        const char *sp = memchr(s->s, ' ', s->len);
        if (!sp || sp == s->s || sp + 1 == s->s + s->len || memchr(sp + 1, ' ', s->len - (size_t)(sp + 1 - s->s)))
            return zi_err("%s: tokenizer.ggml.merges[%llu]: expected two tokens separated by one space", path,
                          (unsigned long long)i);
        merge_item m;
        m.a_off = (uint32_t)L->mstr.n;
        m.a_len = (uint32_t)(sp - s->s);
        m.b_off = m.a_off + m.a_len + 1;
        m.b_len = (uint32_t)(s->len - m.a_len - 1);
        if (zbuf_put(&L->mstr, s->s, s->len)) return -1;
        L->merges[L->n_merges++] = m;
    }
    t->nfc = 1;
    return tok_rewrite_pattern(qwen2_pattern, pattern);
}

/* A GGUF file (text encoder with its vocabulary) instead of tokenizer.json. */
static int file_is_gguf(const char *path) {
    FILE *fp = fopen(path, "rb");
    char m[4] = {0};
    int r = fp && fread(m, 1, 4, fp) == 4 && !memcmp(m, "GGUF", 4);
    if (fp) fclose(fp);
    return r;
}

static int zi_tokenizer_load_gguf(zi_tokenizer **out, const char *path) {
    zi_st_file f;
    if (zi_st_open(&f, path)) return -1;
    zi_tokenizer *t = calloc(1, sizeof *t);
    loader L = {0};
    char *pattern = NULL;
    int rc = -1;
    if (!t) {
        zi_err("tokenizer: out of memory");
        goto done;
    }
    L.t = t;
    bytelevel_tables(t->b2u, t->u2b);
    if (tokenizer_load_gguf(t, &L, &f, &pattern) || load_tables(&L, path) || load_regex(t, pattern, path)) goto done;
    rc = 0;
done:
    free(pattern);
    free(L.vocab);
    free(L.merges);
    free(L.mstr.p);
    zi_st_close(&f);
    if (rc) {
        zi_tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

int zi_tokenizer_load(zi_tokenizer **out, const char *path) {
    *out = NULL;
    if (file_is_gguf(path)) return zi_tokenizer_load_gguf(out, path);
    size_t n;
    const char *buf = map_file(path, &n);
    if (!buf) return -1;
    zi_tokenizer *t = calloc(1, sizeof *t);
    loader L = {0};
    char *pattern = NULL;
    int rc = -1;
    if (!t) {
        zi_err("tokenizer: out of memory");
        goto done;
    }
    L.t = t;
    L.j = (jscan){buf, buf, buf + n, path, {0}};
    bytelevel_tables(t->b2u, t->u2b);
    /* initial arena sizes, enough for the Qwen file without regrowth */
    if (zbuf_reserve(&t->strs, n / 2 + 4096) || zbuf_reserve(&L.mstr, n / 4 + 4096)) goto done;
    if (tok_json_read(&L)) goto done;
    if (!L.model || !L.has_vocab || !L.has_merges) {
        zi_err("%s: %s is missing", path, !L.model ? "\"model\"" : !L.has_vocab ? "model.vocab" : "model.merges");
        goto done;
    }
    if (load_model_options(t, L.model, path) ||
        load_normalizer(t, json_object_get(L.top, "normalizer"), path) ||
        load_pretokenizer(json_object_get(L.top, "pre_tokenizer"), path, &pattern) ||
        load_added(t, json_object_get(L.top, "added_tokens"), path))
        goto done;
    if (load_tables(&L, path) || load_regex(t, pattern, path)) goto done;
    rc = 0;
done:
    free(pattern);
    free(L.j.scratch.p);
    free(L.vocab);
    free(L.merges);
    free(L.mstr.p);
    json_decref(L.top);
    json_decref(L.model);
    munmap((void *)buf, n);
    if (rc) {
        zi_tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

/* ------------------------------------------------------------------- lookup */

const char *zi_tokenizer_token_str(const zi_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_ids || !t->ent[id].kind) return NULL;
    return t->strs.p + t->ent[id].str_off;
}

int32_t zi_tokenizer_token_id(const zi_tokenizer *t, const char *str) {
    size_t l = strlen(str);
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].len == l && !memcmp(t->strs.p + t->added[i].off, str, l)) return t->added[i].id;
    const str_slot *s = smap_find(&t->vocab, t->strs.p, str, l, hash_bytes(str, l));
    return s->h ? s->val : -1;
}

int32_t zi_tokenizer_vocab_size(const zi_tokenizer *t) { return t->n_ids; }
