/* tok_internal.h - private to the tokenizer files of src/text/ (tokenizer.c loads,
 * tok_json.c scans tokenizer.json, tok_unicode.c holds the Unicode data, tok_encode.c
 * runs BPE, tok_decode.c decodes). Shared state: the zi_tokenizer struct, growable
 * buffers, the open-addressing hash maps and the GPT-2 byte alphabet. */
#ifndef ZI_TOK_INTERNAL_H
#define ZI_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "../common/error.h"
#include "../common/utf8.h"
#include "tokenizer.h"

#define TOK_MAX_ID (1 << 24)     /* ids above this are rejected (bounded id tables) */
#define TOK_CACHE_MAX_WORD 256   /* longer pieces are not cached */
#define JSON_MAX_DEPTH 256

/* ------------------------------------------------------------------ buffers */

typedef struct {
    char *p;
    size_t n, cap;
} zbuf;

static inline int zbuf_reserve(zbuf *b, size_t extra) {
    if (b->cap - b->n >= extra) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->n < extra) {
        if (cap > SIZE_MAX / 2) return zi_err("tokenizer: buffer too large");
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) return zi_err("tokenizer: out of memory (%zu bytes)", cap);
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline int zbuf_put(zbuf *b, const void *s, size_t n) {
    if (zbuf_reserve(b, n + 1)) return -1;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    return 0;
}

static inline int zbuf_putc(zbuf *b, char c) { return zbuf_put(b, &c, 1); }

typedef struct {
    int32_t *p;
    size_t n, cap;
} ibuf;

static inline int ibuf_push(ibuf *b, int32_t v) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        int32_t *p = realloc(b->p, cap * sizeof *p);
        if (!p) return zi_err("tokenizer: out of memory");
        b->p = p;
        b->cap = cap;
    }
    b->p[b->n++] = v;
    return 0;
}

/* Rust char::is_whitespace (Unicode White_Space). */
static inline int cp_is_space(uint32_t c) {
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Letter, number or '_' (word character for single_word added tokens). */
static inline int cp_is_word(uint32_t c) {
    if (c == '_') return 1;
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) ||
           (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
}

/* ------------------------------------------------------- GPT-2 byte alphabet */

/* Bytes 33..126, 161..172, 174..255 stand for themselves; the other 68 bytes
 * map in order to U+0100.. so that every byte is a printable character. */
static inline void bytelevel_tables(uint32_t b2u[256], int16_t u2b[324]) {
    int k = 0;
    for (int i = 0; i < 324; i++) u2b[i] = -1;
    for (int b = 0; b < 256; b++) {
        int self = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        b2u[b] = self ? (uint32_t)b : (uint32_t)(256 + k++);
        u2b[b2u[b]] = (int16_t)b;
    }
}

#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void)(p))
#endif

#define FNV_INIT 1469598103934665603ull

static inline uint64_t fnv_update(uint64_t h, const void *p, size_t n) {
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

static inline uint32_t hash_final(uint64_t h) {
    h ^= h >> 32;
    h *= 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 32) | 1; /* 0 marks an empty slot */
}

static inline uint32_t hash_bytes(const void *p, size_t n) { return hash_final(fnv_update(FNV_INIT, p, n)); }

static inline uint64_t hash_u64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

/* Open addressing, linear probing, load <= 0.6. */
static inline size_t table_cap(size_t n) {
    size_t cap = 64;
    while (cap * 3 < n * 5) cap *= 2;
    return cap;
}

/* byte string (stored in an arena by offset) -> int32 */
typedef struct {
    uint32_t h; /* 0: empty */
    uint32_t off, len;
    int32_t val;
} str_slot;

typedef struct {
    str_slot *slot;
    size_t mask, n;
} str_map;

static inline int smap_init(str_map *m, size_t expect) {
    size_t cap = table_cap(expect);
    m->slot = calloc(cap, sizeof *m->slot);
    if (!m->slot) return zi_err("tokenizer: out of memory");
    m->mask = cap - 1;
    m->n = 0;
    return 0;
}

/* The slot holding the key a[0..la) + b[0..lb) (b may be empty), or the empty
 * slot where it would go. h is hash_bytes of the whole key. */
static inline str_slot *smap_find2(const str_map *m, const char *arena, const void *a, size_t la, const void *b, size_t lb,
                            uint32_t h) {
    size_t i = h & m->mask;
    for (;;) {
        str_slot *s = &m->slot[i];
        if (!s->h) return s;
        if (s->h == h && s->len == la + lb && !memcmp(arena + s->off, a, la) &&
            (!lb || !memcmp(arena + s->off + la, b, lb)))
            return s;
        i = (i + 1) & m->mask;
    }
}

static inline str_slot *smap_find(const str_map *m, const char *arena, const void *key, size_t len, uint32_t h) {
    return smap_find2(m, arena, key, len, NULL, 0, h);
}

/* Make room for one more entry. */
static inline int smap_grow(str_map *m) {
    if ((m->n + 1) * 5 <= (m->mask + 1) * 3) return 0;
    size_t cap = (m->mask + 1) * 2;
    str_slot *ns = calloc(cap, sizeof *ns);
    if (!ns) return zi_err("tokenizer: out of memory");
    for (size_t i = 0; i <= m->mask; i++) {
        if (!m->slot[i].h) continue;
        size_t j = m->slot[i].h & (cap - 1);
        while (ns[j].h) j = (j + 1) & (cap - 1);
        ns[j] = m->slot[i];
    }
    free(m->slot);
    m->slot = ns;
    m->mask = cap - 1;
    return 0;
}

/* (left id, right id) -> merge rank and merged id */
typedef struct {
    uint64_t key; /* UINT64_MAX: empty */
    int32_t rank, new_id;
} merge_slot;

typedef struct {
    merge_slot *slot;
    size_t mask;
} merge_map;

static inline uint64_t merge_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

static inline merge_slot *mmap_find(const merge_map *m, uint64_t key) {
    size_t i = hash_u64(key) & m->mask;
    for (;;) {
        merge_slot *s = &m->slot[i];
        if (s->key == key || s->key == UINT64_MAX) return s;
        i = (i + 1) & m->mask;
    }
}

/* ---------------------------------------------------------------- tokenizer */

typedef struct {
    uint32_t str_off, str_len;     /* string as in tokenizer.json */
    uint32_t bytes_off, bytes_len; /* decoded bytes */
    uint8_t kind;                  /* 0: unused id, 1: vocab, 2: added token */
} tok_entry;

typedef struct {
    uint32_t off, len; /* content in strs */
    int32_t id;
    uint8_t normalized, lstrip, rstrip, single_word;
} added_tok;

struct zi_tokenizer {
    zbuf strs;          /* every token string and decoded byte string */
    str_map vocab;      /* model vocab: tokenizer.json string -> id */
    merge_map merges;
    tok_entry *ent;     /* [n_ids] */
    int32_t n_ids;
    int32_t byte_id[256]; /* id of each single-byte symbol */
    added_tok *added;   /* sorted by content length, longest first */
    int n_added;
    uint8_t first_raw[256], first_norm[256]; /* first bytes of added tokens per class */
    int has_norm_added, nfc, ignore_merges;
    pcre2_code *re;
    uint32_t b2u[256];
    int16_t u2b[324];
};

/* ------------------------------------------------------------ tokenizer.json reading (tok_json.c) */

typedef struct {
    const char *s, *p, *e; /* file, cursor, end */
    const char *path;
    zbuf scratch;
} jscan;

typedef struct {
    int32_t id;
    uint32_t off, len;
} vocab_item;

typedef struct {
    uint32_t a_off, a_len, b_off, b_len;
} merge_item;

typedef struct {
    jscan j;
    zi_tokenizer *t;
    vocab_item *vocab;
    size_t n_vocab, cap_vocab;
    int has_vocab, has_merges;
    zbuf mstr; /* merge token strings */
    merge_item *merges;
    size_t n_merges, cap_merges;
    json_t *top, *model; /* everything else, via jansson */
} loader;

/* Strict JSON scan of a whole tokenizer.json held in L->j: model.vocab and
 * model.merges stream into L->vocab / L->merges (strings into t->strs / L->mstr),
 * every other value goes through jansson into L->top / L->model. */
int tok_json_read(loader *L);

/* ------------------------------------------------------------ Unicode data (tok_unicode.c) */

/* Oniguruma pattern -> PCRE2 pattern with the same meaning (new string in *out). */
int tok_rewrite_pattern(const char *pat, char **out);
/* Code points that fence NFC normalization (see tok_unicode.c). */
int tok_is_nfc_barrier(uint32_t cp);

#endif
