/* api_text.c - public debugging aids around the text side (zimage tokenize / encode). */
#include <stdlib.h>
#include <string.h>

#include "../common/error.h"
#include "../kernels/kernels.h"
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

int zimage_encode_prompt(const zimage_load_params *user_lp, const char *prompt, int max_len, float **feats,
                         int *n_tokens, int *dim) {
    zimage_load_params lpn;
    if (zi_pipeline_load_params(&lpn, user_lp)) return -1;
    const zimage_load_params *lp = &lpn;
    char *te = zi_pipeline_component_path(lp->text_encoder, lp->model_dir, "text_encoder");
    char *tk = zi_pipeline_tokenizer_path(lp->tokenizer, lp->model_dir, te);
    zi_tokenizer *tok = NULL;
    int rc = -1;
    if (!te || !tk) {
        if (te || tk || lp->model_dir) goto done;
        zi_err("no model given: set model_dir or text_encoder and tokenizer");
        goto done;
    }
    if (zi_tokenizer_load(&tok, tk)) goto done;
    kn_isa isa;
    if (kn_isa_default(&isa)) goto done;
    kn_set_threads(lp->n_threads);
    kn_set_isa(isa);
    kn_set_precision(zi_precision_resolve(lp->precision, isa));
    int n_loras = lp->loras && lp->n_loras > 0 ? lp->n_loras : 0; /* text-encoder modules of adapters */
    if (zi_pipeline_encode_prompt(tok, te, lp->loras, n_loras, prompt, max_len, feats, n_tokens, dim, NULL, 0))
        goto done;
    if (*n_tokens > max_len) *n_tokens = max_len;
    rc = 0;
done:
    zi_tokenizer_free(tok);
    free(te);
    free(tk);
    return rc;
}
