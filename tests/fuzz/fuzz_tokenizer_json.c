/* fuzz_tokenizer_json.c - libFuzzer target: tokenizer.json (vocab, merges in both
 * forms, added_tokens, normalizer, pre_tokenizer regex, decoder). A loaded tokenizer
 * encodes and decodes a fixed mixed-script text. */
#include "../../src/text/tokenizer.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (1 << 20)) return 0; /* a real tokenizer.json is 11 MB; keep iterations short */
    const char *path = fuzz_write("tokenizer.json", data, size);
    zi_tokenizer *tok = NULL;
    zi_err_clear();
    if (zi_tokenizer_load(&tok, path) != 0) {
        fuzz_expect_message("zi_tokenizer_load");
        return 0;
    }
    static const char text[] = "<|im_start|>user\nHello world's 123 汉字 \xcc\x81 e\xcc\x81<|im_end|>\n  \t!";
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
    return 0;
}
