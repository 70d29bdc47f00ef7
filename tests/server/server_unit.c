/* server_unit.c - unit tests of the server's pure parts: base64 (RFC 4648 vectors, round
 * trips, invalid input) and request parsing (defaults, dialects, field errors). The HTTP
 * behaviour is tested end to end by tests/server_test.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/server/base64.h"
#include "../../src/server/request.h"

static int pass, fail;
#define CHECK(c, ...)                                  \
    do {                                               \
        if (c) {                                       \
            pass++;                                    \
        } else {                                       \
            fail++;                                    \
            printf("  FAIL %s:%d: ", __FILE__, __LINE__); \
            printf(__VA_ARGS__);                       \
            printf("\n");                              \
        }                                              \
    } while (0)

static void test_base64(void) {
    static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char *e = srv_base64_encode((const uint8_t *)plain[i], strlen(plain[i]));
        CHECK(e && !strcmp(e, enc[i]), "encode(%s) = %s, want %s", plain[i], e ? e : "NULL", enc[i]);
        free(e);
        uint8_t *d;
        size_t n;
        CHECK(srv_base64_decode(enc[i], strlen(enc[i]), &d, &n) == 0 && n == strlen(plain[i]) &&
                  !memcmp(d, plain[i], n),
              "decode(%s)", enc[i]);
        free(d);
    }
    uint8_t buf[300];
    unsigned x = 12345;
    for (size_t len = 0; len < sizeof buf; len++) { /* every length, every byte value */
        for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)((x = x * 1103515245u + 12345u) >> 16);
        char *e = srv_base64_encode(buf, len);
        uint8_t *d = NULL;
        size_t n = 0;
        int rc = e ? srv_base64_decode(e, strlen(e), &d, &n) : -1;
        CHECK(e && strlen(e) == (len + 2) / 3 * 4 && rc == 0 && n == len && !memcmp(d, buf, len), "round trip %zu", len);
        free(e);
        free(d);
    }
    static const char *bad[] = {"Z", "Zm9v!", "Zm 9v", "Zm9vY", "Zm=v", "Zm9v\n", "\xff\xff"};
    for (int i = 0; i < 7; i++) {
        uint8_t *d = (uint8_t *)1;
        size_t n;
        CHECK(srv_base64_decode(bad[i], strlen(bad[i]), &d, &n) == -1 && d == NULL, "decode accepted '%s'", bad[i]);
    }
}

static int parse(srv_api api, const char *json, srv_request *r, srv_error *e) {
    return srv_request_parse(api, json, strlen(json), r, e);
}

static void test_request(void) {
    srv_request r;
    srv_error e;
    CHECK(parse(SRV_API_A1111, "{}", &r, &e) == 0 && !strcmp(r.prompt, "") && r.width == 0 && r.steps == 0 &&
              r.guidance < 0 && r.seed == -1 && r.n == 1,
          "A1111 defaults");
    srv_request_free(&r);
    CHECK(parse(SRV_API_A1111,
                "{\"prompt\":\"p\",\"negative_prompt\":\"n\",\"width\":512.0,\"height\":768,\"steps\":9,"
                "\"cfg_scale\":3.5,\"seed\":4294967295,\"batch_size\":2,\"n_iter\":2,\"sampler_name\":5}",
                &r, &e) == 0 &&
              !strcmp(r.prompt, "p") && !strcmp(r.negative_prompt, "n") && r.width == 512 && r.height == 768 &&
              r.steps == 9 && r.guidance == 3.5 && r.seed == 4294967295LL && r.n == 4,
          "A1111 fields: %s", e.message);
    srv_request_free(&r);
    CHECK(parse(SRV_API_OPENAI, "{\"prompt\":\"p\",\"size\":\"1024x768\",\"n\":3,\"guidance_scale\":0}", &r, &e) == 0 &&
              r.width == 1024 && r.height == 768 && r.n == 3 && r.guidance == 0,
          "OpenAI fields: %s", e.message);
    srv_request_free(&r);
    CHECK(parse(SRV_API_OPENAI, "{\"prompt\":\"p\",\"size\":\"auto\"}", &r, &e) == 0 && r.width == 0, "size auto");
    srv_request_free(&r);
    struct {
        srv_api api;
        const char *json, *param;
    } bad[] = {
        {SRV_API_OPENAI, "{}", "prompt"},
        {SRV_API_OPENAI, "{\"prompt\":\"p\",\"size\":\"16x\"}", "size"},
        {SRV_API_OPENAI, "{\"prompt\":\"p\",\"n\":5}", "n"},
        {SRV_API_A1111, "{\"width\":24}", "width"},
        {SRV_API_A1111, "{\"height\":\"64\"}", "height"},
        {SRV_API_A1111, "{\"steps\":1.5}", "steps"},
        {SRV_API_A1111, "{\"seed\":-2}", "seed"},
        {SRV_API_A1111, "{\"batch_size\":4,\"n_iter\":2}", "batch_size"},
        {SRV_API_A1111, "{\"prompt\":\"a\\u0000b\"}", ""},
        {SRV_API_A1111, "[1]", ""},
        {SRV_API_A1111, "{\"cfg_scale\":true}", "cfg_scale"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        memset(&e, 0, sizeof e);
        int rc = parse(bad[i].api, bad[i].json, &r, &e);
        CHECK(rc == -1 && !strcmp(e.param, bad[i].param) && e.message[0] && r.prompt == NULL,
              "%s: rc %d param '%s' message '%s'", bad[i].json, rc, e.param, e.message);
    }
}

int main(void) {
    test_base64();
    test_request();
    printf("server unit: %d passed, %d failed\n", pass, fail);
    return fail != 0;
}
