/* tok_json.c - the strict, streaming reader of tokenizer.json.
 *
 * Part of the tokenizer (docs/MODEL.md §4.2): tokenizer.json is 11 MB, mostly
 * model.vocab (151,643 entries) and model.merges (151,387 pairs). jansson needs ~0.4 s
 * for it, so this scanner reads the file once: vocab and merges go straight into
 * arrays the loader (tokenizer.c) turns into hash tables; every other value is handed,
 * as its byte span, to jansson. Errors give line and column. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>

#include "tok_internal.h"

static int tok_js_fail(jscan *j, const char *at, const char *fmt, ...) ZI_PRINTF(3, 4);
static int tok_js_fail(jscan *j, const char *at, const char *fmt, ...) {
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

static void tok_js_ws(jscan *j) {
    while (j->p < j->e && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t')) j->p++;
}

/* Skip whitespace and check the next character is c (consumed). */
static int tok_js_expect(jscan *j, char c, const char *ctx) {
    tok_js_ws(j);
    if (j->p >= j->e || *j->p != c) return tok_js_fail(j, j->p, "expected '%c' %s", c, ctx);
    j->p++;
    return 0;
}

/* After a member/element: 1 if another follows (',' consumed), 0 at the closer. */
static int tok_js_next(jscan *j, char closer, const char *ctx) {
    tok_js_ws(j);
    if (j->p < j->e && *j->p == ',') {
        j->p++;
        return 1;
    }
    if (j->p < j->e && *j->p == closer) {
        j->p++;
        return 0;
    }
    return tok_js_fail(j, j->p, "expected ',' or '%c' %s", closer, ctx);
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
        if (q + i >= j->e) return tok_js_fail(j, j->e, "reading a \\u escape");
        int h = hexval(q[i]);
        if (h < 0) return tok_js_fail(j, q + i, "invalid \\u escape");
        *v = *v << 4 | (uint32_t)h;
    }
    return 0;
}

/* Decode the string at the cursor (whitespace skipped) and append its bytes to out. */
static int tok_js_string(jscan *j, zbuf *out, const char *ctx) {
    tok_js_ws(j);
    if (j->p >= j->e || *j->p != '"') return tok_js_fail(j, j->p, "expected a string %s", ctx);
    const char *p = j->p + 1;
    for (;;) {
        const char *q = p;
        int hi = 0;
        while (q < j->e && (unsigned char)*q >= 0x20 && *q != '"' && *q != '\\') hi |= (unsigned char)*q++;
        if (hi & 0x80) {
            size_t ok = zi_utf8_valid_upto((const unsigned char *)p, (size_t)(q - p));
            if (ok != (size_t)(q - p)) return tok_js_fail(j, p + ok, "invalid UTF-8 in string");
        }
        if (zbuf_put(out, p, (size_t)(q - p))) return -1;
        if (q >= j->e) return tok_js_fail(j, j->e, "reading a string %s", ctx);
        if (*q == '"') {
            j->p = q + 1;
            return 0;
        }
        if (*q != '\\') return tok_js_fail(j, q, "control character in string");
        if (q + 1 >= j->e) return tok_js_fail(j, j->e, "reading a string %s", ctx);
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
            if (v >= 0xDC00 && v <= 0xDFFF) return tok_js_fail(j, q, "lone low surrogate in \\u escape");
            if (v >= 0xD800 && v <= 0xDBFF) {
                if (p + 1 >= j->e || p[0] != '\\' || p[1] != 'u')
                    return tok_js_fail(j, q, "high surrogate without a low surrogate in \\u escape");
                if (js_hex4(j, p + 2, &w)) return -1;
                if (w < 0xDC00 || w > 0xDFFF) return tok_js_fail(j, p, "invalid low surrogate in \\u escape");
                v = 0x10000 + ((v - 0xD800) << 10) + (w - 0xDC00);
                p += 6;
            }
            if (zbuf_put(out, buf, zi_utf8_put(buf, v))) return -1;
            continue;
        }
        default: return tok_js_fail(j, q, "invalid escape '\\%c'", c);
        }
        if (zbuf_put(out, buf, 1)) return -1;
    }
}

/* Number at the cursor; *is_int / *iv for plain integers (iv saturates). */
static int tok_js_number(jscan *j, int *is_int, long long *iv) {
    tok_js_ws(j);
    const char *p = j->p, *e = j->e;
    int neg = 0;
    long long v = 0;
    *is_int = 1;
    if (p < e && *p == '-') neg = 1, p++;
    if (p >= e) return tok_js_fail(j, p, "reading a number");
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9') {
        while (p < e && *p >= '0' && *p <= '9') {
            v = v < LLONG_MAX / 10 - 10 ? v * 10 + (*p - '0') : LLONG_MAX / 10;
            p++;
        }
    } else
        return tok_js_fail(j, p, "invalid value");
    if (p < e && *p == '.') {
        p++;
        if (p >= e || *p < '0' || *p > '9') return tok_js_fail(j, p, "invalid number");
        while (p < e && *p >= '0' && *p <= '9') p++;
        *is_int = 0;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (p >= e || *p < '0' || *p > '9') return tok_js_fail(j, p, "invalid number");
        while (p < e && *p >= '0' && *p <= '9') p++;
        *is_int = 0;
    }
    *iv = neg ? -v : v;
    j->p = p;
    return 0;
}

/* Validate and skip any value. */
static int tok_js_skip(jscan *j, int depth) {
    tok_js_ws(j);
    if (j->p >= j->e) return tok_js_fail(j, j->e, "reading a value");
    if (depth > JSON_MAX_DEPTH) return tok_js_fail(j, j->p, "nesting deeper than %d", JSON_MAX_DEPTH);
    char c = *j->p;
    if (c == '"') {
        j->scratch.n = 0;
        return tok_js_string(j, &j->scratch, "");
    }
    if (c == '{' || c == '[') {
        char closer = c == '{' ? '}' : ']';
        j->p++;
        tok_js_ws(j);
        if (j->p < j->e && *j->p == closer) {
            j->p++;
            return 0;
        }
        int more;
        do {
            if (c == '{') {
                j->scratch.n = 0;
                if (tok_js_string(j, &j->scratch, "as object key") || tok_js_expect(j, ':', "after an object key"))
                    return -1;
            }
            if (tok_js_skip(j, depth + 1)) return -1;
            more = tok_js_next(j, closer, c == '{' ? "in an object" : "in an array");
            if (more < 0) return -1;
        } while (more);
        return 0;
    }
    static const char *const words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t l = strlen(words[i]);
        if (c == words[i][0]) {
            if ((size_t)(j->e - j->p) < l || memcmp(j->p, words[i], l)) return tok_js_fail(j, j->p, "invalid value");
            j->p += l;
            return 0;
        }
    }
    int is_int;
    long long v;
    return tok_js_number(j, &is_int, &v);
}

/* Skip a value and hand its text to jansson; stored as obj[key]. */
static int tok_js_value_to_jansson(jscan *j, json_t *obj, const char *key) {
    tok_js_ws(j);
    const char *start = j->p;
    if (tok_js_skip(j, 1)) return -1;
    json_error_t e;
    json_t *v = json_loadb(start, (size_t)(j->p - start), JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!v) return tok_js_fail(j, start, "key \"%s\": %s", key, e.text);
    json_object_set_new(obj, key, v);
    return 0;
}

static int load_vocab(loader *L) {
    jscan *j = &L->j;
    zi_tokenizer *t = L->t;
    if (L->has_vocab) return tok_js_fail(j, j->p, "duplicate key \"vocab\" in model");
    L->has_vocab = 1;
    if (tok_js_expect(j, '{', "for model.vocab")) return -1;
    tok_js_ws(j);
    if (j->p < j->e && *j->p == '}') {
        j->p++;
        return 0;
    }
    int more;
    do {
        uint32_t off = (uint32_t)t->strs.n;
        if (tok_js_string(j, &t->strs, "as a vocab token")) return -1;
        uint32_t len = (uint32_t)(t->strs.n - off);
        if (zbuf_putc(&t->strs, 0)) return -1;
        if (tok_js_expect(j, ':', "after a vocab token")) return -1;
        int is_int;
        long long id;
        tok_js_ws(j);
        const char *num = j->p;
        if (tok_js_number(j, &is_int, &id)) return -1;
        if (!is_int || id < 0 || id >= TOK_MAX_ID)
            return tok_js_fail(j, num, "vocab token \"%s\": id must be an integer in [0, %d)", t->strs.p + off,
                           TOK_MAX_ID);
        if (L->n_vocab == L->cap_vocab) {
            size_t cap = L->cap_vocab ? L->cap_vocab * 2 : 4096;
            vocab_item *v = realloc(L->vocab, cap * sizeof *v);
            if (!v) return zi_err("tokenizer: out of memory");
            L->vocab = v;
            L->cap_vocab = cap;
        }
        L->vocab[L->n_vocab++] = (vocab_item){(int32_t)id, off, len};
        more = tok_js_next(j, '}', "in model.vocab");
        if (more < 0) return -1;
    } while (more);
    return 0;
}

static int load_merges(loader *L) {
    jscan *j = &L->j;
    if (L->has_merges) return tok_js_fail(j, j->p, "duplicate key \"merges\" in model");
    L->has_merges = 1;
    if (tok_js_expect(j, '[', "for model.merges")) return -1;
    tok_js_ws(j);
    if (j->p < j->e && *j->p == ']') {
        j->p++;
        return 0;
    }
    int more;
    do {
        merge_item m;
        tok_js_ws(j);
        const char *at = j->p;
        if (j->p < j->e && *j->p == '"') { /* legacy "a b" */
            uint32_t off = (uint32_t)L->mstr.n;
            if (tok_js_string(j, &L->mstr, "in model.merges")) return -1;
            uint32_t len = (uint32_t)(L->mstr.n - off);
            const char *sp = memchr(L->mstr.p + off, ' ', len);
            if (!sp || memchr(sp + 1, ' ', len - (uint32_t)(sp + 1 - (L->mstr.p + off))))
                return tok_js_fail(j, at, "merge %zu: expected two tokens separated by one space", L->n_merges);
            m.a_off = off;
            m.a_len = (uint32_t)(sp - (L->mstr.p + off));
            m.b_off = m.a_off + m.a_len + 1;
            m.b_len = len - m.a_len - 1;
        } else if (j->p < j->e && *j->p == '[') { /* ["a", "b"] */
            j->p++;
            m.a_off = (uint32_t)L->mstr.n;
            if (tok_js_string(j, &L->mstr, "as the first token of a merge")) return -1;
            m.a_len = (uint32_t)(L->mstr.n - m.a_off);
            if (tok_js_expect(j, ',', "between the two tokens of a merge")) return -1;
            m.b_off = (uint32_t)L->mstr.n;
            if (tok_js_string(j, &L->mstr, "as the second token of a merge")) return -1;
            m.b_len = (uint32_t)(L->mstr.n - m.b_off);
            if (tok_js_expect(j, ']', "after the two tokens of a merge")) return -1;
        } else
            return tok_js_fail(j, at, "merge %zu: expected a string \"a b\" or an array [\"a\", \"b\"]", L->n_merges);
        if (L->n_merges == L->cap_merges) {
            size_t cap = L->cap_merges ? L->cap_merges * 2 : 4096;
            merge_item *v = realloc(L->merges, cap * sizeof *v);
            if (!v) return zi_err("tokenizer: out of memory");
            L->merges = v;
            L->cap_merges = cap;
        }
        L->merges[L->n_merges++] = m;
        more = tok_js_next(j, ']', "in model.merges");
        if (more < 0) return -1;
    } while (more);
    return 0;
}

static int load_model(loader *L) {
    jscan *j = &L->j;
    if (L->model) return tok_js_fail(j, j->p, "duplicate key \"model\"");
    L->model = json_object();
    if (tok_js_expect(j, '{', "for \"model\"")) return -1;
    tok_js_ws(j);
    if (j->p < j->e && *j->p == '}') {
        j->p++;
        return 0;
    }
    int more;
    do {
        j->scratch.n = 0;
        if (tok_js_string(j, &j->scratch, "as a key of \"model\"") || zbuf_putc(&j->scratch, 0)) return -1;
        if (tok_js_expect(j, ':', "after a key")) return -1;
        if (!strcmp(j->scratch.p, "vocab")) {
            if (load_vocab(L)) return -1;
        } else if (!strcmp(j->scratch.p, "merges")) {
            if (load_merges(L)) return -1;
        } else {
            char key[64];
            snprintf(key, sizeof key, "%s", j->scratch.p);
            if (tok_js_value_to_jansson(j, L->model, key)) return -1;
        }
        more = tok_js_next(j, '}', "in \"model\"");
        if (more < 0) return -1;
    } while (more);
    return 0;
}

int tok_json_read(loader *L) {
    jscan *j = &L->j;
    L->top = json_object();
    if (tok_js_expect(j, '{', "at the start of the file")) return -1;
    tok_js_ws(j);
    if (j->p < j->e && *j->p == '}') {
        j->p++;
    } else {
        int more;
        do {
            j->scratch.n = 0;
            if (tok_js_string(j, &j->scratch, "as a top-level key") || zbuf_putc(&j->scratch, 0)) return -1;
            if (tok_js_expect(j, ':', "after a key")) return -1;
            if (!strcmp(j->scratch.p, "model")) {
                if (load_model(L)) return -1;
            } else {
                char key[64];
                snprintf(key, sizeof key, "%s", j->scratch.p);
                if (tok_js_value_to_jansson(j, L->top, key)) return -1;
            }
            more = tok_js_next(j, '}', "in the top-level object");
            if (more < 0) return -1;
        } while (more);
    }
    tok_js_ws(j);
    if (j->p != j->e) return tok_js_fail(j, j->p, "unexpected data after the top-level object");
    return 0;
}
