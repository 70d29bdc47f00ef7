/* tokenizer.c - Qwen2/Qwen3 byte-level BPE tokenizer (docs/MODEL.md §4.1-4.2).
 *
 * Pipeline position: prompt text -> [this] -> token ids -> Qwen3 text encoder.
 *
 * Load: tokenizer.json is 11 MB, mostly model.vocab (151,643 entries) and
 * model.merges (151,387 pairs). jansson needs ~0.4 s for it, so a small strict
 * JSON scanner reads the file once: vocab and merges go straight into hash
 * tables, every other value is handed (as its byte span) to jansson.
 *
 * Encode (mirrors HF `tokenizers`):
 *   raw text --added-token split (leftmost-longest)--> segments
 *   segment --NFC--> --pre-tokenizer regex (isolated)--> pieces
 *   piece bytes --BPE by merge rank (min-heap, HF tie order)--> ids
 * BPE results are cached per call, keyed by the piece's bytes. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utf8proc.h>

#include "../common/error.h"

#define TOK_MAX_ID (1 << 24)     /* ids above this are rejected (bounded id tables) */
#define TOK_CACHE_MAX_WORD 256   /* longer pieces are not cached */
#define JSON_MAX_DEPTH 256

/* GPT-2 regex, used for a ByteLevel pre-tokenizer with use_regex=true. */
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

#include "unicode_tables.h"
/* ------------------------------------------------------------------ buffers */

typedef struct {
    char *p;
    size_t n, cap;
} zbuf;

static int zbuf_reserve(zbuf *b, size_t extra) {
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

static int zbuf_put(zbuf *b, const void *s, size_t n) {
    if (zbuf_reserve(b, n + 1)) return -1;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    return 0;
}

static int zbuf_putc(zbuf *b, char c) { return zbuf_put(b, &c, 1); }

typedef struct {
    int32_t *p;
    size_t n, cap;
} ibuf;

static int ibuf_push(ibuf *b, int32_t v) {
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

/* --------------------------------------------------------------------- UTF-8 */

/* Length (1..4) of the well-formed UTF-8 sequence at s[0..n), or 0 when it is
 * ill-formed; then *bad = length of the maximal ill-formed prefix (>= 1), the
 * unit Rust's from_utf8_lossy replaces with one U+FFFD. */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *bad) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F; /* <= U+10FFFF */
    } else {
        *bad = 1;
        return 0;
    }
    if (n < 2 || s[1] < lo || s[1] > hi) {
        *bad = 1;
        return 0;
    }
    for (size_t i = 2; i < need; i++)
        if (i >= n || s[i] < 0x80 || s[i] > 0xBF) {
            *bad = i;
            return 0;
        }
    return need;
}

/* Offset of the first ill-formed byte, or n when s[0..n) is valid UTF-8. */
static size_t utf8_valid_upto(const unsigned char *s, size_t n) {
    size_t i = 0, bad;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t l = utf8_seq(s + i, n - i, &bad);
        if (!l) return i;
        i += l;
    }
    return n;
}

/* Decode one code point of valid UTF-8; returns its length. */
static size_t utf8_get(const unsigned char *s, uint32_t *cp) {
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (s[0] < 0xE0) {
        *cp = ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if (s[0] < 0xF0) {
        *cp = ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    }
    *cp = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) | ((uint32_t)(s[2] & 0x3F) << 6) |
          (s[3] & 0x3F);
    return 4;
}

static size_t utf8_put(char *o, uint32_t cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Rust char::is_whitespace (Unicode White_Space). */
static int cp_is_space(uint32_t c) {
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Letter, number or '_' (word character for single_word added tokens). */
static int cp_is_word(uint32_t c) {
    if (c == '_') return 1;
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) ||
           (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
}

/* ------------------------------------------------------- GPT-2 byte alphabet */

/* Bytes 33..126, 161..172, 174..255 stand for themselves; the other 68 bytes
 * map in order to U+0100.. so that every byte is a printable character. */
static void bytelevel_tables(uint32_t b2u[256], int16_t u2b[324]) {
    int k = 0;
    for (int i = 0; i < 324; i++) u2b[i] = -1;
    for (int b = 0; b < 256; b++) {
        int self = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        b2u[b] = self ? (uint32_t)b : (uint32_t)(256 + k++);
        u2b[b2u[b]] = (int16_t)b;
    }
}

/* ---------------------------------------------------------------- hash maps */

#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void)(p))
#endif

#define FNV_INIT 1469598103934665603ull

static uint64_t fnv_update(uint64_t h, const void *p, size_t n) {
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

static uint32_t hash_final(uint64_t h) {
    h ^= h >> 32;
    h *= 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 32) | 1; /* 0 marks an empty slot */
}

static uint32_t hash_bytes(const void *p, size_t n) { return hash_final(fnv_update(FNV_INIT, p, n)); }

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

/* Open addressing, linear probing, load <= 0.6. */
static size_t table_cap(size_t n) {
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

static int smap_init(str_map *m, size_t expect) {
    size_t cap = table_cap(expect);
    m->slot = calloc(cap, sizeof *m->slot);
    if (!m->slot) return zi_err("tokenizer: out of memory");
    m->mask = cap - 1;
    m->n = 0;
    return 0;
}

/* The slot holding the key a[0..la) + b[0..lb) (b may be empty), or the empty
 * slot where it would go. h is hash_bytes of the whole key. */
static str_slot *smap_find2(const str_map *m, const char *arena, const void *a, size_t la, const void *b, size_t lb,
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

static str_slot *smap_find(const str_map *m, const char *arena, const void *key, size_t len, uint32_t h) {
    return smap_find2(m, arena, key, len, NULL, 0, h);
}

/* Make room for one more entry. */
static int smap_grow(str_map *m) {
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

static merge_slot *mmap_find(const merge_map *m, uint64_t key) {
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

/* ------------------------------------------------------------ JSON scanner */

typedef struct {
    const char *s, *p, *e; /* file, cursor, end */
    const char *path;
    zbuf scratch;
} jscan;

static int js_fail(jscan *j, const char *at, const char *fmt, ...) ZI_PRINTF(3, 4);
static int js_fail(jscan *j, const char *at, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (at >= j->e) return zi_err("%s: invalid JSON: unexpected end of file (truncated?) while %s", j->path, msg);
    int line = 1, col = 1;
    for (const char *q = j->s; q < at; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)*q & 0xC0) != 0x80)
            col++;
    }
    return zi_err("%s: invalid JSON at line %d column %d: %s", j->path, line, col, msg);
}

static void js_ws(jscan *j) {
    while (j->p < j->e && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t')) j->p++;
}

/* Skip whitespace and check the next character is c (consumed). */
static int js_expect(jscan *j, char c, const char *ctx) {
    js_ws(j);
    if (j->p >= j->e || *j->p != c) return js_fail(j, j->p, "expected '%c' %s", c, ctx);
    j->p++;
    return 0;
}

/* After a member/element: 1 if another follows (',' consumed), 0 at the closer. */
static int js_next(jscan *j, char closer, const char *ctx) {
    js_ws(j);
    if (j->p < j->e && *j->p == ',') {
        j->p++;
        return 1;
    }
    if (j->p < j->e && *j->p == closer) {
        j->p++;
        return 0;
    }
    return js_fail(j, j->p, "expected ',' or '%c' %s", closer, ctx);
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int js_hex4(jscan *j, const char *q, uint32_t *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        if (q + i >= j->e) return js_fail(j, j->e, "reading a \\u escape");
        int h = hexval(q[i]);
        if (h < 0) return js_fail(j, q + i, "invalid \\u escape");
        *v = *v << 4 | (uint32_t)h;
    }
    return 0;
}

/* Decode the string at the cursor (whitespace skipped) and append its bytes to out. */
static int js_string(jscan *j, zbuf *out, const char *ctx) {
    js_ws(j);
    if (j->p >= j->e || *j->p != '"') return js_fail(j, j->p, "expected a string %s", ctx);
    const char *p = j->p + 1;
    for (;;) {
        const char *q = p;
        int hi = 0;
        while (q < j->e && (unsigned char)*q >= 0x20 && *q != '"' && *q != '\\') hi |= (unsigned char)*q++;
        if (hi & 0x80) {
            size_t ok = utf8_valid_upto((const unsigned char *)p, (size_t)(q - p));
            if (ok != (size_t)(q - p)) return js_fail(j, p + ok, "invalid UTF-8 in string");
        }
        if (zbuf_put(out, p, (size_t)(q - p))) return -1;
        if (q >= j->e) return js_fail(j, j->e, "reading a string %s", ctx);
        if (*q == '"') {
            j->p = q + 1;
            return 0;
        }
        if (*q != '\\') return js_fail(j, q, "control character in string");
        if (q + 1 >= j->e) return js_fail(j, j->e, "reading a string %s", ctx);
        char c = q[1], buf[4];
        p = q + 2;
        switch (c) {
        case '"': case '\\': case '/': buf[0] = c; break;
        case 'b': buf[0] = '\b'; break;
        case 'f': buf[0] = '\f'; break;
        case 'n': buf[0] = '\n'; break;
        case 'r': buf[0] = '\r'; break;
        case 't': buf[0] = '\t'; break;
        case 'u': {
            uint32_t v, w;
            if (js_hex4(j, p, &v)) return -1;
            p += 4;
            if (v >= 0xDC00 && v <= 0xDFFF) return js_fail(j, q, "lone low surrogate in \\u escape");
            if (v >= 0xD800 && v <= 0xDBFF) {
                if (p + 1 >= j->e || p[0] != '\\' || p[1] != 'u')
                    return js_fail(j, q, "high surrogate without a low surrogate in \\u escape");
                if (js_hex4(j, p + 2, &w)) return -1;
                if (w < 0xDC00 || w > 0xDFFF) return js_fail(j, p, "invalid low surrogate in \\u escape");
                v = 0x10000 + ((v - 0xD800) << 10) + (w - 0xDC00);
                p += 6;
            }
            if (zbuf_put(out, buf, utf8_put(buf, v))) return -1;
            continue;
        }
        default: return js_fail(j, q, "invalid escape '\\%c'", c);
        }
        if (zbuf_put(out, buf, 1)) return -1;
    }
}

/* Number at the cursor; *is_int / *iv for plain integers (iv saturates). */
static int js_number(jscan *j, int *is_int, long long *iv) {
    js_ws(j);
    const char *p = j->p, *e = j->e;
    int neg = 0;
    long long v = 0;
    *is_int = 1;
    if (p < e && *p == '-') neg = 1, p++;
    if (p >= e) return js_fail(j, p, "reading a number");
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9') {
        while (p < e && *p >= '0' && *p <= '9') {
            v = v < LLONG_MAX / 10 - 10 ? v * 10 + (*p - '0') : LLONG_MAX / 10;
            p++;
        }
    } else
        return js_fail(j, p, "invalid value");
    if (p < e && *p == '.') {
        p++;
        if (p >= e || *p < '0' || *p > '9') return js_fail(j, p, "invalid number");
        while (p < e && *p >= '0' && *p <= '9') p++;
        *is_int = 0;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (p >= e || *p < '0' || *p > '9') return js_fail(j, p, "invalid number");
        while (p < e && *p >= '0' && *p <= '9') p++;
        *is_int = 0;
    }
    *iv = neg ? -v : v;
    j->p = p;
    return 0;
}

/* Validate and skip any value. */
static int js_skip(jscan *j, int depth) {
    js_ws(j);
    if (j->p >= j->e) return js_fail(j, j->e, "reading a value");
    if (depth > JSON_MAX_DEPTH) return js_fail(j, j->p, "nesting deeper than %d", JSON_MAX_DEPTH);
    char c = *j->p;
    if (c == '"') {
        j->scratch.n = 0;
        return js_string(j, &j->scratch, "");
    }
    if (c == '{' || c == '[') {
        char closer = c == '{' ? '}' : ']';
        j->p++;
        js_ws(j);
        if (j->p < j->e && *j->p == closer) {
            j->p++;
            return 0;
        }
        int more;
        do {
            if (c == '{') {
                j->scratch.n = 0;
                if (js_string(j, &j->scratch, "as object key") || js_expect(j, ':', "after an object key"))
                    return -1;
            }
            if (js_skip(j, depth + 1)) return -1;
            more = js_next(j, closer, c == '{' ? "in an object" : "in an array");
            if (more < 0) return -1;
        } while (more);
        return 0;
    }
    static const char *const words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t l = strlen(words[i]);
        if (c == words[i][0]) {
            if ((size_t)(j->e - j->p) < l || memcmp(j->p, words[i], l)) return js_fail(j, j->p, "invalid value");
            j->p += l;
            return 0;
        }
    }
    int is_int;
    long long v;
    return js_number(j, &is_int, &v);
}

/* Skip a value and hand its text to jansson; stored as obj[key]. */
static int js_value_to_jansson(jscan *j, json_t *obj, const char *key) {
    js_ws(j);
    const char *start = j->p;
    if (js_skip(j, 1)) return -1;
    json_error_t e;
    json_t *v = json_loadb(start, (size_t)(j->p - start), JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!v) return js_fail(j, start, "key \"%s\": %s", key, e.text);
    json_object_set_new(obj, key, v);
    return 0;
}

/* ------------------------------------------------------------------ loading */

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

static int load_vocab(loader *L) {
    jscan *j = &L->j;
    zi_tokenizer *t = L->t;
    if (L->has_vocab) return js_fail(j, j->p, "duplicate key \"vocab\" in model");
    L->has_vocab = 1;
    if (js_expect(j, '{', "for model.vocab")) return -1;
    js_ws(j);
    if (j->p < j->e && *j->p == '}') {
        j->p++;
        return 0;
    }
    int more;
    do {
        uint32_t off = (uint32_t)t->strs.n;
        if (js_string(j, &t->strs, "as a vocab token")) return -1;
        uint32_t len = (uint32_t)(t->strs.n - off);
        if (zbuf_putc(&t->strs, 0)) return -1;
        if (js_expect(j, ':', "after a vocab token")) return -1;
        int is_int;
        long long id;
        js_ws(j);
        const char *num = j->p;
        if (js_number(j, &is_int, &id)) return -1;
        if (!is_int || id < 0 || id >= TOK_MAX_ID)
            return js_fail(j, num, "vocab token \"%s\": id must be an integer in [0, %d)", t->strs.p + off,
                           TOK_MAX_ID);
        if (L->n_vocab == L->cap_vocab) {
            size_t cap = L->cap_vocab ? L->cap_vocab * 2 : 4096;
            vocab_item *v = realloc(L->vocab, cap * sizeof *v);
            if (!v) return zi_err("tokenizer: out of memory");
            L->vocab = v;
            L->cap_vocab = cap;
        }
        L->vocab[L->n_vocab++] = (vocab_item){(int32_t)id, off, len};
        more = js_next(j, '}', "in model.vocab");
        if (more < 0) return -1;
    } while (more);
    return 0;
}

static int load_merges(loader *L) {
    jscan *j = &L->j;
    if (L->has_merges) return js_fail(j, j->p, "duplicate key \"merges\" in model");
    L->has_merges = 1;
    if (js_expect(j, '[', "for model.merges")) return -1;
    js_ws(j);
    if (j->p < j->e && *j->p == ']') {
        j->p++;
        return 0;
    }
    int more;
    do {
        merge_item m;
        js_ws(j);
        const char *at = j->p;
        if (j->p < j->e && *j->p == '"') { /* legacy "a b" */
            uint32_t off = (uint32_t)L->mstr.n;
            if (js_string(j, &L->mstr, "in model.merges")) return -1;
            uint32_t len = (uint32_t)(L->mstr.n - off);
            const char *sp = memchr(L->mstr.p + off, ' ', len);
            if (!sp || memchr(sp + 1, ' ', len - (uint32_t)(sp + 1 - (L->mstr.p + off))))
                return js_fail(j, at, "merge %zu: expected two tokens separated by one space", L->n_merges);
            m.a_off = off;
            m.a_len = (uint32_t)(sp - (L->mstr.p + off));
            m.b_off = m.a_off + m.a_len + 1;
            m.b_len = len - m.a_len - 1;
        } else if (j->p < j->e && *j->p == '[') { /* ["a", "b"] */
            j->p++;
            m.a_off = (uint32_t)L->mstr.n;
            if (js_string(j, &L->mstr, "as the first token of a merge")) return -1;
            m.a_len = (uint32_t)(L->mstr.n - m.a_off);
            if (js_expect(j, ',', "between the two tokens of a merge")) return -1;
            m.b_off = (uint32_t)L->mstr.n;
            if (js_string(j, &L->mstr, "as the second token of a merge")) return -1;
            m.b_len = (uint32_t)(L->mstr.n - m.b_off);
            if (js_expect(j, ']', "after the two tokens of a merge")) return -1;
        } else
            return js_fail(j, at, "merge %zu: expected a string \"a b\" or an array [\"a\", \"b\"]", L->n_merges);
        if (L->n_merges == L->cap_merges) {
            size_t cap = L->cap_merges ? L->cap_merges * 2 : 4096;
            merge_item *v = realloc(L->merges, cap * sizeof *v);
            if (!v) return zi_err("tokenizer: out of memory");
            L->merges = v;
            L->cap_merges = cap;
        }
        L->merges[L->n_merges++] = m;
        more = js_next(j, ']', "in model.merges");
        if (more < 0) return -1;
    } while (more);
    return 0;
}

static int load_model(loader *L) {
    jscan *j = &L->j;
    if (L->model) return js_fail(j, j->p, "duplicate key \"model\"");
    L->model = json_object();
    if (js_expect(j, '{', "for \"model\"")) return -1;
    js_ws(j);
    if (j->p < j->e && *j->p == '}') {
        j->p++;
        return 0;
    }
    int more;
    do {
        j->scratch.n = 0;
        if (js_string(j, &j->scratch, "as a key of \"model\"") || zbuf_putc(&j->scratch, 0)) return -1;
        if (js_expect(j, ':', "after a key")) return -1;
        if (!strcmp(j->scratch.p, "vocab")) {
            if (load_vocab(L)) return -1;
        } else if (!strcmp(j->scratch.p, "merges")) {
            if (load_merges(L)) return -1;
        } else {
            char key[64];
            snprintf(key, sizeof key, "%s", j->scratch.p);
            if (js_value_to_jansson(j, L->model, key)) return -1;
        }
        more = js_next(j, '}', "in \"model\"");
        if (more < 0) return -1;
    } while (more);
    return 0;
}

static int load_json(loader *L) {
    jscan *j = &L->j;
    L->top = json_object();
    if (js_expect(j, '{', "at the start of the file")) return -1;
    js_ws(j);
    if (j->p < j->e && *j->p == '}') {
        j->p++;
    } else {
        int more;
        do {
            j->scratch.n = 0;
            if (js_string(j, &j->scratch, "as a top-level key") || zbuf_putc(&j->scratch, 0)) return -1;
            if (js_expect(j, ':', "after a key")) return -1;
            if (!strcmp(j->scratch.p, "model")) {
                if (load_model(L)) return -1;
            } else {
                char key[64];
                snprintf(key, sizeof key, "%s", j->scratch.p);
                if (js_value_to_jansson(j, L->top, key)) return -1;
            }
            more = js_next(j, '}', "in the top-level object");
            if (more < 0) return -1;
        } while (more);
    }
    js_ws(j);
    if (j->p != j->e) return js_fail(j, j->p, "unexpected data after the top-level object");
    return 0;
}

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

/* Append the ranges of a table as the body of a PCRE2 class: \x{41}-\x{5A}... */
static int class_body(zbuf *o, const uint32_t (*r)[2], size_t n) {
    char item[40];
    for (size_t i = 0; i < n; i++) {
        int l = r[i][0] == r[i][1] ? snprintf(item, sizeof item, "\\x{%X}", (unsigned)r[i][0])
                                   : snprintf(item, sizeof item, "\\x{%X}-\\x{%X}", (unsigned)r[i][0],
                                              (unsigned)r[i][1]);
        if (zbuf_put(o, item, (size_t)l)) return -1;
    }
    return 0;
}

/* Oniguruma pattern -> PCRE2 pattern with the same meaning: \p{L}, \p{N}, \s
 * (and \P{L}, \P{N}, \S outside classes) become explicit Unicode 16.0 classes;
 * everything else is copied. */
static int rewrite_pattern(const char *pat, char **out) {
    static const struct {
        const char *esc;
        const uint32_t (*r)[2];
        size_t n;
        int neg;
    } subst[] = {
        {"\\p{L}", uni_letter, N_RANGES(uni_letter), 0}, {"\\p{N}", uni_number, N_RANGES(uni_number), 0},
        {"\\P{L}", uni_letter, N_RANGES(uni_letter), 1}, {"\\P{N}", uni_number, N_RANGES(uni_number), 1},
        {"\\s", uni_space, N_RANGES(uni_space), 0},      {"\\S", uni_space, N_RANGES(uni_space), 1},
    };
    zbuf o = {0};
    int in_class = 0, rc = 0;
    for (const char *p = pat; *p && !rc; p++) {
        if (*p == '\\' && p[1]) {
            size_t k = 0;
            for (; k < N_RANGES(subst); k++)
                if (!strncmp(p, subst[k].esc, strlen(subst[k].esc)) && !(in_class && subst[k].neg)) break;
            if (k == N_RANGES(subst)) { /* any other escape: copy it */
                rc = zbuf_put(&o, p, 2);
                p++;
                continue;
            }
            if (!in_class) rc = zbuf_put(&o, subst[k].neg ? "[^" : "[", subst[k].neg ? 2 : 1);
            if (!rc) rc = class_body(&o, subst[k].r, subst[k].n);
            if (!rc && !in_class) rc = zbuf_putc(&o, ']');
            p += strlen(subst[k].esc) - 1;
        } else if (*p == '[' && !in_class) {
            in_class = 1;
            size_t k = 1;
            if (p[k] == '^') k++;
            if (p[k] == ']') k++; /* a leading ']' is literal */
            rc = zbuf_put(&o, p, k);
            p += k - 1;
        } else {
            if (*p == ']') in_class = 0;
            rc = zbuf_putc(&o, *p);
        }
    }
    if (!rc) rc = zbuf_putc(&o, 0);
    if (rc) {
        free(o.p);
        return -1;
    }
    *out = o.p;
    return 0;
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
    return rewrite_pattern(pat, pattern);
}

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
    /* longest first, so the first match at a position is the longest one */
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
    return 0;
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
            k += utf8_get(s + k, &cp);
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
        size_t l = utf8_put(s, t->b2u[b]);
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

int zi_tokenizer_load(zi_tokenizer **out, const char *path) {
    *out = NULL;
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
    if (load_json(&L)) goto done;
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
        for (size_t i = 0; i < n; i++) c->tmp.n += utf8_put(c->tmp.p + c->tmp.n, t->b2u[w[i]]);
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
            off = ms + utf8_get((const unsigned char *)s + ms, &cp);
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
                    utf8_get(s + p, &cp);
                    before = cp_is_word(cp);
                }
                if (e < n) {
                    utf8_get(s + e, &cp);
                    after = cp_is_word(cp);
                }
                if (before || after) continue;
            }
            if (a->lstrip)
                while (b > from) {
                    size_t p = b - 1;
                    uint32_t cp;
                    while (p > from && (s[p] & 0xC0) == 0x80) p--;
                    utf8_get(s + p, &cp);
                    if (!cp_is_space(cp)) break;
                    b = p;
                }
            if (a->rstrip)
                while (e < n) {
                    uint32_t cp;
                    size_t l = utf8_get(s + e, &cp);
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
        size_t l = utf8_get((const unsigned char *)s + i, &cp);
        if (in_ranges(nfc_barrier, N_RANGES(nfc_barrier), cp)) {
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
    size_t bad = utf8_valid_upto((const unsigned char *)text, len);
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
    size_t bad = utf8_valid_upto((const unsigned char *)prompt, pl);
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
        size_t l = s[i] < 0x80 ? 1 : utf8_seq(s + i, raw.n - i, &bad);
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
