/* unit_tokenizer.c - tokenizer: crafted bad tokenizer.json files, bad UTF-8,
 * merge forms, NUL bytes, the chat template and truncation.
 * Crafted files go to a mkdtemp() directory that is removed at the end. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/common/error.h"
#include "../../src/text/tokenizer.h"
#include "unit.h"

static char tmpdir[64];

static const char *tmp_write(const char *name, const void *data, size_t n) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
    return path;
}

/* Byte-level string of byte b (GPT-2 alphabet) as UTF-8. */
static void byte_str(int b, char *out) {
    static int map[256], init;
    if (!init) {
        int k = 0;
        for (int i = 0; i < 256; i++)
            map[i] = (i >= 33 && i <= 126) || (i >= 161 && i <= 172) || i >= 174 ? i : 256 + k++;
        init = 1;
    }
    int c = map[b];
    if (c < 0x80) {
        out[0] = (char)c;
        out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        out[2] = 0;
    }
}

/* A small Qwen2-style tokenizer.json: 256 byte symbols, tokens "ab", "Ġab",
 * "abab" and merges a+b, Ġ+ab, ab+ab (string or array form), one added token.
 * skip_byte >= 0 leaves that byte symbol out; bad_merge adds "a zz". */
static char *make_tokenizer(int array_merges, int skip_byte, int bad_merge, int with_vocab) {
    json_t *root = json_object(), *model = json_object(), *vocab = json_object(), *merges = json_array();
    char s[8];
    int id = 0;
    for (int b = 0; b < 256; b++) {
        byte_str(b, s);
        if (b != skip_byte) json_object_set_new(vocab, s, json_integer(id));
        id++;
    }
    json_object_set_new(vocab, "ab", json_integer(id++));
    json_object_set_new(vocab, "\xC4\xA0" "ab", json_integer(id++)); /* "Ġab" */
    json_object_set_new(vocab, "abab", json_integer(id++));
    const char *m[][2] = {{"a", "b"}, {"\xC4\xA0", "ab"}, {"ab", "ab"}, {"a", "zz"}};
    for (int i = 0; i < (bad_merge ? 4 : 3); i++) {
        if (array_merges) {
            json_t *p = json_array();
            json_array_append_new(p, json_string(m[i][0]));
            json_array_append_new(p, json_string(m[i][1]));
            json_array_append_new(merges, p);
        } else {
            char buf[32];
            snprintf(buf, sizeof buf, "%s %s", m[i][0], m[i][1]);
            json_array_append_new(merges, json_string(buf));
        }
    }
    json_object_set_new(model, "type", json_string("BPE"));
    if (with_vocab)
        json_object_set_new(model, "vocab", vocab);
    else
        json_decref(vocab);
    json_object_set_new(model, "merges", merges);
    json_t *added = json_pack("[{s:i, s:s, s:b, s:b, s:b, s:b, s:b}]", "id", 300, "content", "<|im_start|>",
                              "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", 0, "special", 1);
    json_object_set_new(root, "added_tokens", added);
    json_object_set_new(root, "normalizer", json_pack("{s:s}", "type", "NFC"));
    json_object_set_new(
        root, "pre_tokenizer",
        json_pack("{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, {s:s, s:b, s:b, s:b}]}", "type", "Sequence", "pretokenizers",
                  "type", "Split", "pattern", "Regex",
                  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                  "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
                  "behavior", "Isolated", "invert", 0, "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 0,
                  "use_regex", 0));
    json_object_set_new(root, "model", model);
    char *txt = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return txt;
}

/* Load must fail with a message containing `want`. */
static void expect_load_error(const char *path, const char *want, const char *what) {
    zi_tokenizer *t = (zi_tokenizer *)1;
    zi_err_clear();
    int rc = zi_tokenizer_load(&t, path);
    UNIT_CHECK(rc == -1 && t == NULL, "%s: load should fail", what);
    UNIT_CHECK(strstr(zi_last_error(), want) != NULL, "%s: error \"%s\" lacks \"%s\"", what, zi_last_error(), want);
    if (rc == 0) zi_tokenizer_free(t);
}

static int ids_eq(const int32_t *a, int na, const int32_t *b, int nb) {
    return na == nb && (na == 0 || !memcmp(a, b, sizeof *a * (size_t)na));
}

static void test_crafted(void) {
    /* the two merge forms give the same tokenizer */
    for (int form = 0; form < 2; form++) {
        char *txt = make_tokenizer(form, -1, 0, 1);
        const char *p = tmp_write("small.json", txt, strlen(txt));
        free(txt);
        zi_tokenizer *t = NULL;
        int rc = zi_tokenizer_load(&t, p);
        UNIT_CHECK(rc == 0, "crafted tokenizer (merge form %d) loads: %s", form, zi_last_error());
        if (rc) continue;
        int32_t *ids;
        int n;
        /* "abab ab<|im_start|>a": pieces "abab", " ab", added, "a" */
        const char text[] = "abab ab<|im_start|>a";
        rc = zi_tokenizer_encode(t, text, sizeof text - 1, &ids, &n);
        const int32_t want[] = {258, 257, 300, 'a'};
        UNIT_CHECK(rc == 0 && ids_eq(ids, n, want, 4), "crafted encode (form %d): rc %d n %d", form, rc, n);
        char *dec = rc ? NULL : zi_tokenizer_decode(t, ids, n);
        UNIT_CHECK(dec && !strcmp(dec, text), "crafted decode round trip: \"%s\"", dec ? dec : "(null)");
        free(dec);
        free(ids);
        UNIT_CHECK(zi_tokenizer_vocab_size(t) == 301, "vocab size %d", zi_tokenizer_vocab_size(t));
        UNIT_CHECK(zi_tokenizer_token_id(t, "\xC4\xA0" "ab") == 257 && zi_tokenizer_token_id(t, "<|im_start|>") == 300 &&
                       zi_tokenizer_token_id(t, "zz") == -1,
                   "token_id lookups");
        UNIT_CHECK(zi_tokenizer_token_str(t, 299) == NULL && zi_tokenizer_token_str(t, -1) == NULL &&
                       zi_tokenizer_token_str(t, 301) == NULL,
                   "token_str of unknown ids is NULL");
        int32_t bad_id[] = {97, 299};
        dec = zi_tokenizer_decode(t, bad_id, 2);
        UNIT_CHECK(!dec && strstr(zi_last_error(), "unknown token id 299"), "decode unknown id: %s", zi_last_error());
        zi_tokenizer_free(t);
    }
    /* merges naming a token that is not in the vocab */
    char *txt = make_tokenizer(0, -1, 1, 1);
    const char *p = tmp_write("badmerge.json", txt, strlen(txt));
    free(txt);
    expect_load_error(p, "merge 3 (\"a zz\") uses token \"zz\" that is not in model.vocab", "unknown merge token");
    txt = make_tokenizer(1, -1, 1, 1);
    p = tmp_write("badmerge2.json", txt, strlen(txt));
    free(txt);
    expect_load_error(p, "uses token \"zz\" that is not in model.vocab", "unknown merge token (array form)");
    /* missing model.vocab */
    txt = make_tokenizer(0, -1, 0, 0);
    p = tmp_write("novocab.json", txt, strlen(txt));
    free(txt);
    expect_load_error(p, "model.vocab is missing", "missing vocab");
    /* a byte symbol missing from the vocab */
    txt = make_tokenizer(0, 'q', 0, 1);
    p = tmp_write("nobyte.json", txt, strlen(txt));
    free(txt);
    expect_load_error(p, "no token for byte 0x71", "missing byte symbol");
}

static void test_bad_files(const char *fixtures) {
    char real[1024];
    snprintf(real, sizeof real, "%s/tiny-zimage/tokenizer/tokenizer.json", fixtures);
    expect_load_error("/nonexistent/zimage/tokenizer.json", "cannot open /nonexistent/zimage/tokenizer.json",
                      "missing file");
    expect_load_error(tmp_write("empty.json", "", 0), "file is empty", "empty file");
    /* the real file cut in the middle of model.vocab and of model.merges */
    FILE *f = fopen(real, "rb");
    UNIT_CHECK(f != NULL, "open %s", real);
    if (f) {
        size_t cap = 12u << 20;
        char *buf = malloc(cap);
        size_t n = fread(buf, 1, cap, f);
        fclose(f);
        expect_load_error(tmp_write("trunc1.json", buf, 4u << 20), "unexpected end of file (truncated?)",
                          "truncated in vocab");
        expect_load_error(tmp_write("trunc2.json", buf, n - 1000), "unexpected end of file (truncated?)",
                          "truncated in merges");
        expect_load_error(tmp_write("trunc3.json", buf, 5), "unexpected end of file", "truncated at start");
        free(buf);
    }
    static const struct {
        const char *text, *want, *what;
    } bad[] = {
        {"{\"model\": {\"vocab\": {\"a\": 1,, }}}", "invalid JSON at line 1 column 29: expected a string as a vocab token",
         "double comma"},
        {"{\"model\": {\"vocab\": {\"a\": 1.5}}}", "id must be an integer", "fractional id"},
        {"{\"model\": {\"vocab\": {\"a\": 1, \"a\": 2}, \"merges\": []}, \"pre_tokenizer\": {\"type\": "
         "\"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true}}",
         "duplicate vocab token \"a\"", "duplicate token"},
        {"{\"model\": {\"vocab\": {}, \"merges\": [\"ab\"]}}", "merge 0: expected two tokens", "merge w/o space"},
        {"{\"model\": {\"vocab\": {}, \"merges\": [3]}}", "merge 0: expected a string", "merge not a string"},
        {"{\"model\": {\"vocab\": {\"a\\q\": 0}}}", "invalid escape", "bad escape"},
        {"{\"model\": {\"vocab\": {\"\\ud800\": 0}}}", "high surrogate without a low surrogate", "lone surrogate"},
        {"{\"model\": {\"vocab\": {\"\xff\": 0}}}", "invalid UTF-8 in string", "bad UTF-8 in file"},
        {"{\"model\": {}} x", "unexpected data after the top-level object", "trailing garbage"},
        {"[1, 2]", "expected '{' at the start of the file", "not an object"},
        {"{\"normalizer\": nul}", "invalid value", "bad literal"},
        {"{\n  \"model\": {\n    \"vocab\": {\"a\": 0}\n    \"merges\": []}}", "line 4 column 5: expected ','",
         "missing comma, line/column"},
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}, \"merges\": []}}", "model type \"WordPiece\" is not BPE",
         "not BPE"},
        {"{\"model\": {\"merges\": []}}", "model.vocab is missing", "no vocab"},
        {"{\"model\": {\"vocab\": {}, \"merges\": []}, \"normalizer\": {\"type\": \"NFKC\"}}",
         "unsupported normalizer type \"NFKC\"", "NFKC"},
        {"{\"model\": {\"vocab\": {}, \"merges\": []}}", "no pre_tokenizer", "no pre_tokenizer"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_load_error(tmp_write("bad.json", bad[i].text, strlen(bad[i].text)), bad[i].want, bad[i].what);
}

static void test_real(const char *fixtures) {
    char real[1024];
    snprintf(real, sizeof real, "%s/tiny-zimage/tokenizer/tokenizer.json", fixtures);
    zi_tokenizer *t;
    if (zi_tokenizer_load(&t, real)) {
        UNIT_CHECK(0, "load %s: %s", real, zi_last_error());
        return;
    }
    UNIT_CHECK(zi_tokenizer_vocab_size(t) == 151669, "vocab size %d", zi_tokenizer_vocab_size(t));
    const char *s = zi_tokenizer_token_str(t, 1879);
    UNIT_CHECK(s && !strcmp(s, "\xC4\xA0world"), "token_str(1879) = %s", s ? s : "(null)");
    s = zi_tokenizer_token_str(t, 151645);
    UNIT_CHECK(s && !strcmp(s, "<|im_end|>"), "token_str(151645) = %s", s ? s : "(null)");

    int32_t *ids;
    int n;
    /* empty prompt: docs/MODEL.md §4.2 example */
    const int32_t want_empty[] = {151644, 872, 198, 151645, 198, 151644, 77091, 198};
    int rc = zi_tokenizer_encode_prompt(t, "", ZI_PROMPT_MAX_TOKENS, &ids, &n);
    UNIT_CHECK(rc == 0 && ids_eq(ids, n, want_empty, 8), "encode_prompt(\"\"): rc %d n %d", rc, n);
    free(ids);
    rc = zi_tokenizer_encode_prompt(t, "a photo of a cat", 3, &ids, &n);
    UNIT_CHECK(rc == 0 && n == 3 && ids[0] == 151644 && ids[2] == 198, "encode_prompt truncation to 3: n %d", n);
    free(ids);
    rc = zi_tokenizer_encode(t, "", 0, &ids, &n);
    UNIT_CHECK(rc == 0 && n == 0 && ids == NULL, "empty text");

    /* invalid UTF-8: clear error with the byte offset, no crash */
    static const struct {
        const char *s;
        size_t off;
    } bad[] = {{"ab\xff", 2}, {"\xC0\x80", 0}, {"x\xED\xA0\x80", 1}, {"abc\xE4\xBD", 3}, {"\xF4\x90\x80\x80", 0},
               {"ok \xE4\xBD\xA0\x80", 6}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[64];
        rc = zi_tokenizer_encode_prompt(t, bad[i].s, 512, &ids, &n);
        snprintf(want, sizeof want, "prompt is not valid UTF-8 at byte %zu", bad[i].off);
        UNIT_CHECK(rc == -1 && ids == NULL && n == 0 && strstr(zi_last_error(), want), "bad prompt %zu: %s", i,
                   zi_last_error());
        rc = zi_tokenizer_encode(t, bad[i].s, strlen(bad[i].s), &ids, &n);
        snprintf(want, sizeof want, "text is not valid UTF-8 at byte %zu", bad[i].off);
        UNIT_CHECK(rc == -1 && strstr(zi_last_error(), want), "bad text %zu: %s", i, zi_last_error());
    }

    /* embedded NUL: explicit length, round trip */
    const char nul[] = "a\0b c\0";
    rc = zi_tokenizer_encode(t, nul, sizeof nul - 1, &ids, &n);
    size_t dl = 0;
    char *dec = rc ? NULL : zi_tokenizer_decode_len(t, ids, n, &dl);
    UNIT_CHECK(rc == 0 && n >= 3 && dec && dl == sizeof nul - 1 && !memcmp(dec, nul, dl), "NUL round trip");
    free(dec);
    free(ids);

    /* U+0085 is whitespace for the pre-tokenizer (Oniguruma's \s): "x\x85\x85y"
     * splits as "x" | "\x85" | "\x85y" (\s+(?!\S) backs off one character) */
    int32_t *a, *b, *c, *d;
    int na, nb, nc, nd;
    zi_tokenizer_encode(t, "x\xC2\x85\xC2\x85y", 6, &a, &na);
    zi_tokenizer_encode(t, "x", 1, &b, &nb);
    zi_tokenizer_encode(t, "\xC2\x85", 2, &c, &nc);
    zi_tokenizer_encode(t, "\xC2\x85y", 3, &d, &nd);
    int32_t cat[64];
    int ncat = 0;
    for (int i = 0; i < nb && ncat < 64; i++) cat[ncat++] = b[i];
    for (int i = 0; i < nc && ncat < 64; i++) cat[ncat++] = c[i];
    for (int i = 0; i < nd && ncat < 64; i++) cat[ncat++] = d[i];
    UNIT_CHECK(ids_eq(a, na, cat, ncat), "U+0085 split like Oniguruma \\s");
    free(a);
    free(b);
    free(c);
    free(d);

    /* Unicode data as HF has it (ids from HF tokenizers 0.23.2):
     * U+13A05 is a letter in Unicode 16 (so "'s" stays a contraction piece);
     * U+07FD has a combining class only since Unicode 11, HF's NFC keeps the order. */
    static const struct {
        const char *s;
        int32_t ids[5];
    } uni[] = {{"u\xF0\x93\xA8\x85's", {84, 124373, 101, 227, 594}},
               {"a\xDF\xBD\xCC\xB4", {64, 155, 121, 136, 112}}};
    for (size_t i = 0; i < 2; i++) {
        rc = zi_tokenizer_encode(t, uni[i].s, strlen(uni[i].s), &ids, &n);
        UNIT_CHECK(rc == 0 && ids_eq(ids, n, uni[i].ids, 5), "Unicode version case %zu: n %d", i, n);
        free(ids);
    }

    /* decode replaces broken UTF-8 with U+FFFD: byte 0xE4 alone (id of byte-level "ä") */
    int32_t lone[2] = {zi_tokenizer_token_id(t, "\xC3\xA4"), zi_tokenizer_token_id(t, "a")};
    dec = zi_tokenizer_decode(t, lone, 2);
    UNIT_CHECK(dec && !strcmp(dec, "\xEF\xBF\xBD" "a"), "lossy decode: %s", dec ? dec : "(null)");
    free(dec);
    zi_tokenizer_free(t);
}

void unit_tokenizer(const char *fixtures) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/zi_unit_tok_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        UNIT_CHECK(0, "mkdtemp failed");
        return;
    }
    test_crafted();
    test_bad_files(fixtures);
    test_real(fixtures);
    static const char *const files[] = {"small.json", "badmerge.json", "badmerge2.json", "novocab.json",
                                        "nobyte.json", "empty.json",   "trunc1.json",    "trunc2.json",
                                        "trunc3.json", "bad.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", tmpdir, files[i]);
        unlink(path);
    }
    rmdir(tmpdir);
}
