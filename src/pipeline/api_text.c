/* api_text.c - public debugging aids around the text side (zimage tokenize / encode). */
#include <stdlib.h>
#include <string.h>

#include "../common/error.h"
#include "pipeline.h"

int zimage_tokenize(const char *tokenizer_json, const char *text, int templated, int max_len, int32_t **ids,
                    char ***pieces, int *n) {
    *ids = NULL;
    *pieces = NULL;
    *n = 0;
    zi_tokenizer *tok;
    if (zi_tokenizer_load(&tok, tokenizer_json)) return -1;
    int rc = templated ? zi_tokenizer_encode_prompt(tok, text, max_len, ids, n)
                       : zi_tokenizer_encode(tok, text, strlen(text), ids, n);
    if (rc == 0) {
        *pieces = zi_calloc((size_t)(*n ? *n : 1), sizeof(char *));
        if (!*pieces) rc = -1;
        for (int i = 0; rc == 0 && i < *n; i++) {
            const char *s = zi_tokenizer_token_str(tok, (*ids)[i]);
            (*pieces)[i] = zi_strdup(s ? s : "?");
            if (!(*pieces)[i]) rc = -1;
        }
    }
    zi_tokenizer_free(tok);
    if (rc) {
        zimage_tokens_free(*ids, *pieces, *n);
        *ids = NULL;
        *pieces = NULL;
        *n = 0;
    }
    return rc;
}

void zimage_tokens_free(int32_t *ids, char **pieces, int n) {
    if (pieces)
        for (int i = 0; i < n; i++) free(pieces[i]);
    free(pieces);
    free(ids);
}

int zimage_encode_prompt(zimage_model *m, const char *prompt, int max_len, float **feats, int *n_tokens, int *dim) {
    if (zi_pipeline_encode_prompt(m->tok, m->text_encoder_path, prompt, max_len, feats, n_tokens, dim, NULL, 0))
        return -1;
    if (*n_tokens > max_len) *n_tokens = max_len;
    return 0;
}
