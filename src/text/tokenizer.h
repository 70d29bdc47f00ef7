/* tokenizer.h - Qwen2/Qwen3 byte-level BPE tokenizer (docs/MODEL.md §4.1-4.2).
 *
 * First stage of the text path: prompt -> chat template -> token ids -> Qwen3.
 * Reads a HuggingFace tokenizer.json (model.vocab, model.merges in either the
 * "a b" or the ["a","b"] form, added_tokens, normalizer, pre_tokenizer) and
 * reproduces HF `tokenizers` encode():
 *   1. added tokens (e.g. <|im_start|>) are matched verbatim, leftmost-longest,
 *      on the raw text and cut it into segments;
 *   2. each remaining segment is NFC-normalized (utf8proc, fenced to match HF's
 *      Unicode 9.0 normalization data);
 *   3. split by the pre-tokenizer regex ("isolated": matches and gaps are pieces),
 *      PCRE2 (UTF+UCP, JIT) with \p{L}, \p{N}, \s spelled out as the Unicode 16.0
 *      classes Oniguruma uses in HF;
 *   4. each piece is BPE-merged over its bytes by merge rank (GPT-2 byte->unicode
 *      alphabet for the vocab strings).
 * No BOS/EOS are added. A loaded tokenizer is immutable: encode/decode may run
 * from several threads at once. */
#ifndef ZI_TOKENIZER_H
#define ZI_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct zi_tokenizer zi_tokenizer;

/* Chat template of the Z-Image pipelines (docs/MODEL.md §4.1). */
#define ZI_PROMPT_PREFIX "<|im_start|>user\n"
#define ZI_PROMPT_SUFFIX "<|im_end|>\n<|im_start|>assistant\n"
/* Default max_length of the pipelines. */
#define ZI_PROMPT_MAX_TOKENS 512
/* id of <|endoftext|> in Qwen vocabularies: the padding id. */
#define ZI_QWEN_PAD_ID 151643

/* Load tokenizer.json, or the vocabulary of a GGUF text encoder in llama.cpp's layout
 * (tokenizer.ggml.* keys; the file starts with "GGUF"). 0, or -1 with zi_last_error() naming
 * the file and problem. */
int zi_tokenizer_load(zi_tokenizer **out, const char *tokenizer_json_path);
void zi_tokenizer_free(zi_tokenizer *tok);

/* Token ids of text[0..len) (embedded NULs allowed). *ids is malloc'ed (free());
 * an empty text gives *ids == NULL, *n_ids == 0. -1 on invalid UTF-8
 * ("text is not valid UTF-8 at byte N") or allocation failure. */
int zi_tokenizer_encode(const zi_tokenizer *tok, const char *text, size_t len, int32_t **ids, int *n_ids);

/* Template + encode + right truncation to max_len tokens (max_len <= 0: no limit).
 * Invalid UTF-8 gives "prompt is not valid UTF-8 at byte N" (offset into prompt). */
int zi_tokenizer_encode_prompt(const zi_tokenizer *tok, const char *prompt, int max_len, int32_t **ids,
                               int *n_ids);

/* Text of ids (byte-level decode; added tokens as their content; invalid UTF-8
 * bytes become U+FFFD like HF). NUL-terminated, malloc'ed; NULL on an unknown id.
 * The _len variant also returns the byte length (the text may contain NULs). */
char *zi_tokenizer_decode(const zi_tokenizer *tok, const int32_t *ids, int n);
char *zi_tokenizer_decode_len(const zi_tokenizer *tok, const int32_t *ids, int n, size_t *len);

/* The token's string as stored in tokenizer.json (byte-level form, e.g. "Ġworld";
 * content for added tokens). NULL for an unknown id. */
const char *zi_tokenizer_token_str(const zi_tokenizer *tok, int32_t id);
/* id of an exact token string (byte-level form or added-token content), -1 if none. */
int32_t zi_tokenizer_token_id(const zi_tokenizer *tok, const char *str);
/* 1 + the largest token id (151669 for Qwen3; the embedding table may be larger). */
int32_t zi_tokenizer_vocab_size(const zi_tokenizer *tok);

#endif
