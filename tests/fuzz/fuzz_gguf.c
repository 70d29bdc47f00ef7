/* fuzz_gguf.c - libFuzzer target: GGUF files (header, KVs with nested arrays, tensor
 * infos, alignment, offsets, ComfyUI orig_shape, llama.cpp names) and the GGUF tokenizer.
 *
 * An opened file's tensor views are read end to end (ASan checks every view lies inside
 * the mapping), each tensor is found by name and dequantized through zi_tensor_to_f32
 * (zi_dequantize for the block types), every KV is read (each array element, each
 * string), and the llama.cpp -> HF renaming runs. The same file is then loaded as a
 * tokenizer (tokenizer.ggml.*); a loaded one encodes and decodes a fixed text. */
#include "../../src/io/gguf.h"
#include "../../src/text/tokenizer.h"
#include "fuzz_util.h"

static void read_file(const char *path) {
    zi_st_file f;
    zi_err_clear();
    if (zi_st_open(&f, path) != 0) {
        fuzz_expect_message("zi_st_open (GGUF)");
        return;
    }
    if (!f.gguf) abort(); /* the input starts with "GGUF" */
    volatile uint64_t sum = 0;
    for (int64_t k = 0; k < f.gguf->n_kv; k++) {
        const zi_gguf_kv *kv = &f.gguf->kv[k];
        if (zi_gguf_find(&f, kv->key) == NULL) abort(); /* every key must be found */
        if (kv->type == ZI_GGUF_STRING)
            for (size_t i = 0; i < kv->str_len; i++) sum += (uint8_t)kv->str[i];
        if (kv->type != ZI_GGUF_ARRAY) continue;
        if (kv->arr_type == ZI_GGUF_STRING) {
            for (uint64_t i = 0; i < kv->arr_n; i++)
                for (size_t j = 0; j < kv->arr_strs[i].len; j++) sum += (uint8_t)kv->arr_strs[i].s[j];
        } else {
            for (uint64_t i = 0; i < kv->arr_n; i++) sum += (uint64_t)zi_gguf_arr_int(kv, i);
        }
    }
    for (int t = 0; t < f.n_tensors; t++) {
        const zi_tensor *x = &f.tensors[t];
        for (size_t i = 0; i < x->nbytes; i++) sum += ((const uint8_t *)x->data)[i];
        if (zi_st_find(&f, x->name) == NULL) abort();
        if (x->numel <= (1 << 18)) free(zi_tensor_to_f32(x)); /* dequantizes block types */
    }
    zi_err_clear();
    if (zi_gguf_rename_llama(&f) != 0) fuzz_expect_message("zi_gguf_rename_llama");
    else
        for (int t = 0; t < f.n_tensors; t++)
            if (zi_st_find(&f, f.tensors[t].name) == NULL) abort();
    (void)sum;
    zi_st_close(&f);
}

static void read_tokenizer(const char *path) {
    zi_tokenizer *tok = NULL;
    zi_err_clear();
    if (zi_tokenizer_load(&tok, path) != 0) {
        fuzz_expect_message("zi_tokenizer_load (GGUF)");
        return;
    }
    static const char text[] = "<|im_start|>user\nHello world's 123 \xe6\xb1\x89\xe5\xad\x97 e\xcc\x81<|im_end|>\n  \t!";
    int32_t *ids = NULL;
    int n = 0;
    if (zi_tokenizer_encode(tok, text, sizeof text - 1, &ids, &n) == 0) {
        size_t len = 0;
        free(zi_tokenizer_decode_len(tok, ids, n, &len));
        for (int i = 0; i < n; i++) (void)zi_tokenizer_token_str(tok, ids[i]);
        free(ids);
    } else {
        fuzz_expect_message("zi_tokenizer_encode");
    }
    zi_tokenizer_free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4 || memcmp(data, "GGUF", 4) || size > (1 << 20)) return 0; /* safetensors has its own target */
    const char *path = fuzz_write("in.gguf", data, size);
    read_file(path);
    read_tokenizer(path);
    return 0;
}
