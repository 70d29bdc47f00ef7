/* golden_tokenizer.c - tokenizer goldens: exact token ids.
 *
 * 1. <fixtures>/tokenizer_cases.json: encode(text) must equal the HF ids exactly,
 *    and decode(encode(text)) must give back NFC(text).
 * 2. golden/qwen3_*.json: encode_prompt(params.prompt, 512) must equal the
 *    masked part of the case's input_ids (the padding is 151643), including the
 *    truncated case; the untruncated count must be n_tokens_before_truncation. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "../../src/common/error.h"
#include "../../src/text/tokenizer.h"
#include "golden.h"

/* Index of the first difference of two id lists, -1 if equal. */
static int first_diff(const int32_t *a, int na, const int32_t *b, int nb) {
    int n = na < nb ? na : nb;
    for (int i = 0; i < n; i++)
        if (a[i] != b[i]) return i;
    return na == nb ? -1 : n;
}

static void print_diff(const zi_tokenizer *tok, const int32_t *got, int ng, const int32_t *want, int nw, int at) {
    const char *gs = at < ng ? zi_tokenizer_token_str(tok, got[at]) : NULL;
    const char *ws = at < nw ? zi_tokenizer_token_str(tok, want[at]) : NULL;
    printf("         first difference at position %d: got %d \"%s\", want %d \"%s\" (%d vs %d ids)\n", at,
           at < ng ? got[at] : -1, gs ? gs : "-", at < nw ? want[at] : -1, ws ? ws : "-", ng, nw);
}

/* One tokenizer_cases.json case; 0 pass, 1 fail. */
static int run_case(const zi_tokenizer *tok, json_t *c, size_t idx) {
    const char *cat = json_string_value(json_object_get(c, "category"));
    json_t *jt = json_object_get(c, "text"), *jids = json_object_get(c, "ids");
    if (!json_is_string(jt) || !json_is_array(jids)) {
        printf("  FAIL tokenizer case %2zu: malformed case (needs text and ids)\n", idx);
        return 1;
    }
    const char *text = json_string_value(jt);
    size_t len = json_string_length(jt);
    int nw = (int)json_array_size(jids);
    int32_t *want = malloc(sizeof *want * (size_t)(nw ? nw : 1));
    for (int i = 0; i < nw; i++) {
        json_t *ji = json_array_get(jids, (size_t)i);
        if (!json_is_integer(ji) || json_integer_value(ji) < 0 || json_integer_value(ji) > INT32_MAX) {
            printf("  FAIL tokenizer case %2zu: ids[%d] is not a token id\n", idx, i);
            free(want);
            return 1;
        }
        want[i] = (int32_t)json_integer_value(ji);
    }
    int32_t *got = NULL;
    int ng = 0, fail = 0;
    if (zi_tokenizer_encode(tok, text, len, &got, &ng)) {
        printf("  FAIL tokenizer case %2zu %-14s encode failed: %s\n", idx, cat, zi_last_error());
        free(want);
        return 1;
    }
    int at = first_diff(got, ng, want, nw);
    /* round trip: decode(encode(text)) == NFC(text) */
    size_t dl = 0;
    char *dec = zi_tokenizer_decode_len(tok, got, ng, &dl);
    utf8proc_uint8_t *nfc = NULL;
    utf8proc_ssize_t nl = len ? utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len, &nfc,
                                             UTF8PROC_STABLE | UTF8PROC_COMPOSE)
                              : 0;
    int rt_ok = dec && nl >= 0 && dl == (size_t)nl && (!nl || !memcmp(dec, nfc, dl));
    fail = at >= 0 || !rt_ok;
    printf("  %s tokenizer case %2zu %-14s %3d ids%s%s\n", fail ? "FAIL" : "ok  ", idx, cat ? cat : "?", ng,
           at >= 0 ? ", ids differ" : "", rt_ok ? "" : ", decode(encode(text)) != NFC(text)");
    if (at >= 0) print_diff(tok, got, ng, want, nw, at);
    free(nfc);
    free(dec);
    free(got);
    free(want);
    return fail;
}

/* One qwen3_* manifest; 0 pass, 1 fail. */
static int run_qwen3_manifest(const zi_tokenizer *tok, const char *fixtures, const char *file) {
    char path[4096];
    snprintf(path, sizeof path, "%s/golden/%s", fixtures, file);
    json_error_t e;
    json_t *m = json_load_file(path, 0, &e);
    json_t *params = json_object_get(m, "params");
    const char *prompt = json_string_value(json_object_get(params, "prompt"));
    const char *formatted = json_string_value(json_object_get(params, "formatted"));
    const char *st_file = json_string_value(json_object_get(m, "file"));
    long long before = json_integer_value(json_object_get(params, "n_tokens_before_truncation"));
    int fail = 1;
    zi_st_file st = {0};
    int32_t *got = NULL;
    int ng = 0, nall = 0;
    if (!prompt || !st_file) {
        printf("  FAIL tokenizer %-24s manifest has no params.prompt or file\n", file);
        goto done;
    }
    char fmt[1 << 16];
    snprintf(fmt, sizeof fmt, "%s%s%s", ZI_PROMPT_PREFIX, prompt, ZI_PROMPT_SUFFIX);
    if (formatted && strcmp(fmt, formatted)) {
        printf("  FAIL tokenizer %-24s params.formatted is not the chat template of params.prompt\n", file);
        goto done;
    }
    snprintf(path, sizeof path, "%s/golden/%s", fixtures, st_file);
    if (zi_st_open(&st, path)) {
        printf("  FAIL tokenizer %-24s %s\n", file, zi_last_error());
        goto done;
    }
    const zi_tensor *ids = zi_st_find(&st, "input_ids"), *mask = zi_st_find(&st, "attention_mask");
    if (!ids || !mask || ids->dtype != ZI_I32 || mask->dtype != ZI_U8 || ids->numel != mask->numel) {
        printf("  FAIL tokenizer %-24s input_ids (I32) / attention_mask (U8) missing\n", file);
        goto done;
    }
    if (zi_tokenizer_encode_prompt(tok, prompt, 0, &got, &nall)) {
        printf("  FAIL tokenizer %-24s %s\n", file, zi_last_error());
        goto done;
    }
    free(got);
    if (zi_tokenizer_encode_prompt(tok, prompt, (int)ids->numel, &got, &ng)) {
        printf("  FAIL tokenizer %-24s %s\n", file, zi_last_error());
        goto done;
    }
    const int32_t *want = ids->data;
    const uint8_t *mk = mask->data;
    int nw = 0;
    while (nw < ids->numel && mk[nw]) nw++;
    int pad_ok = 1;
    for (int64_t i = nw; i < ids->numel; i++) pad_ok &= !mk[i] && want[i] == ZI_QWEN_PAD_ID;
    int at = first_diff(got, ng, want, nw);
    fail = at >= 0 || !pad_ok || (before && nall != before);
    printf("  %s tokenizer %-24s encode_prompt: %d ids (%d before truncation)%s%s\n", fail ? "FAIL" : "ok  ", file,
           ng, nall, pad_ok ? "" : ", padding/mask not as expected",
           before && nall != before ? ", untruncated count differs from n_tokens_before_truncation" : "");
    if (at >= 0) print_diff(tok, got, ng, want, nw, at);
done:
    free(got);
    zi_st_close(&st);
    json_decref(m);
    return fail;
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int golden_run_tokenizer(const char *fixtures, int *n_pass, int *n_fail) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer_cases.json", fixtures);
    json_error_t e;
    json_t *cases_doc = json_load_file(path, JSON_ALLOW_NUL, &e);
    json_t *cases = json_object_get(cases_doc, "cases");
    if (!json_is_array(cases) || json_array_size(cases) == 0) {
        printf("FAIL tokenizer_cases: %s: %s\n", path, cases_doc ? "no non-empty \"cases\" array" : e.text);
        (*n_fail)++;
        json_decref(cases_doc);
        return GOLDEN_FAIL;
    }
    snprintf(path, sizeof path, "%s/tiny-zimage/tokenizer/tokenizer.json", fixtures);
    zi_tokenizer *tok;
    if (zi_tokenizer_load(&tok, path)) {
        printf("FAIL tokenizer_cases: %s\n", zi_last_error());
        (*n_fail)++;
        json_decref(cases_doc);
        return GOLDEN_FAIL;
    }
    int fails = 0, total = 0;
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        int r = run_case(tok, c, i);
        fails += r;
        total++;
        if (r)
            (*n_fail)++;
        else
            (*n_pass)++;
    }
    json_decref(cases_doc);

    /* the qwen3 goldens' input_ids */
    snprintf(path, sizeof path, "%s/golden", fixtures);
    DIR *d = opendir(path);
    char *names[256];
    int nn = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) && nn < 256) {
        size_t l = strlen(de->d_name);
        if (!strncmp(de->d_name, "qwen3_", 6) && l > 5 && !strcmp(de->d_name + l - 5, ".json"))
            names[nn++] = strdup(de->d_name);
    }
    if (d) closedir(d);
    qsort(names, (size_t)nn, sizeof *names, cmp_name);
    for (int k = 0; k < nn; k++) {
        int r = run_qwen3_manifest(tok, fixtures, names[k]);
        fails += r;
        total++;
        if (r)
            (*n_fail)++;
        else
            (*n_pass)++;
        free(names[k]);
    }
    zi_tokenizer_free(tok);
    printf("%s tokenizer: %d of %d cases\n", fails ? "FAIL" : "PASS", total - fails, total);
    return fails ? GOLDEN_FAIL : GOLDEN_PASS;
}
