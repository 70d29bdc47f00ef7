/* fuzz_prompt.c - libFuzzer target: prompts through the real Qwen3 tokenizer
 * (tests/fixtures/tiny-zimage/tokenizer/tokenizer.json, loaded once): encode,
 * encode_prompt with truncation, and decode of the ids. Invalid UTF-8 must be
 * refused with a message; valid text must round-trip through decode. */
#include "../../src/text/tokenizer.h"
#include "fuzz_util.h"

static zi_tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char path[1024];
    snprintf(path, sizeof path, "%s/tiny-zimage/tokenizer/tokenizer.json", fuzz_fixtures());
    if (zi_tokenizer_load(&tok, path) != 0) {
        fprintf(stderr, "fuzz_prompt: %s (set ZIMAGE_FIXTURES)\n", zi_last_error());
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    int32_t *ids = NULL;
    int n = 0;
    zi_err_clear();
    if (zi_tokenizer_encode(tok, (const char *)data, size, &ids, &n) != 0) {
        fuzz_expect_message("zi_tokenizer_encode");
        return 0;
    }
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= zi_tokenizer_vocab_size(tok)) abort();
    size_t len = 0;
    char *back = zi_tokenizer_decode_len(tok, ids, n, &len);
    if (!back) abort(); /* ids from encode always decode */
    free(back);
    free(ids);
    /* the chat-template path (NUL-terminated prompt, truncated to 64 tokens) */
    char *prompt = malloc(size + 1);
    memcpy(prompt, data, size);
    prompt[size] = 0;
    ids = NULL;
    if (zi_tokenizer_encode_prompt(tok, prompt, 64, &ids, &n) == 0) {
        if (n > 64) abort();
        free(ids);
    } else {
        fuzz_expect_message("zi_tokenizer_encode_prompt");
    }
    free(prompt);
    return 0;
}
