/* fuzz_request.c - libFuzzer target: the server's request bodies (src/server/request.c)
 * and base64 (src/server/base64.c); no sockets, no model.
 *
 * The first input byte picks what the rest is:
 *   0 JSON body of POST /v1/images/generations  (srv_request_parse, SRV_API_OPENAI)
 *   1 JSON body of POST /sdapi/v1/txt2img and /v1/jobs (SRV_API_A1111)
 *   2 base64 text (srv_base64_decode; img2img uploads)
 * A body must either parse into a request within the server's limits or be refused
 * with a message (the 400 answer). Base64: what decodes re-encodes and decodes to the
 * same bytes, and the input bytes themselves round-trip through encode + decode. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/server/base64.h"
#include "../../src/server/request.h"

static void check_request(srv_api api, const char *body, size_t len) {
    srv_request r;
    srv_error e;
    if (srv_request_parse(api, body, len, &r, &e) != 0) {
        if (!e.message[0] || r.prompt || r.negative_prompt) {
            fprintf(stderr, "fuzz_request: refused without a message or leaked fields\n");
            abort();
        }
        if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "fuzz: request refused: %s [%s]\n", e.message, e.param);
        return;
    }
    int ok = r.prompt && r.negative_prompt && strlen(r.prompt) <= SRV_MAX_PROMPT_BYTES &&
             strlen(r.negative_prompt) <= SRV_MAX_PROMPT_BYTES && r.width >= 0 && r.width <= SRV_MAX_SIDE &&
             r.width % 16 == 0 && r.height >= 0 && r.height <= SRV_MAX_SIDE && r.height % 16 == 0 &&
             (api == SRV_API_A1111 || (r.width == 0) == (r.height == 0)) && r.steps >= 0 && r.steps <= SRV_MAX_STEPS &&
             (r.guidance == -1 || (r.guidance >= 0 && r.guidance <= 100)) && r.seed >= -1 && r.seed <= SRV_SEED_MAX &&
             r.n >= 1 && r.n <= SRV_MAX_IMAGES;
    if (!ok) {
        fprintf(stderr, "fuzz_request: accepted out of range: %dx%d steps %d guidance %g seed %lld n %d\n", r.width,
                r.height, r.steps, r.guidance, (long long)r.seed, r.n);
        abort();
    }
    srv_request_free(&r);
}

static void check_base64(const uint8_t *data, size_t size) {
    uint8_t *dec = NULL, *dec2 = NULL;
    size_t n = 0, n2 = 0;
    if (srv_base64_decode((const char *)data, size, &dec, &n) == 0) {
        char *enc = srv_base64_encode(dec, n);
        if (!enc || srv_base64_decode(enc, strlen(enc), &dec2, &n2) != 0 || n2 != n || (n && memcmp(dec, dec2, n))) abort();
        free(enc);
        free(dec2);
        free(dec);
    } else if (dec || n) {
        abort(); /* a refusal leaves nothing behind */
    }
    char *enc = srv_base64_encode(data, size);
    if (!enc || strlen(enc) != (size + 2) / 3 * 4) abort();
    if (srv_base64_decode(enc, strlen(enc), &dec, &n) != 0 || n != size || (size && memcmp(dec, data, size))) abort();
    free(dec);
    free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > (1 << 20)) return 0;
    int which = data[0] % 3;
    const char *body = (const char *)data + 1;
    if (which == 2) check_base64(data + 1, size - 1);
    else check_request(which == 0 ? SRV_API_OPENAI : SRV_API_A1111, body, size - 1);
    return 0;
}
