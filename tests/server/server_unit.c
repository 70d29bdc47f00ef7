/* server_unit.c - unit tests of the server's pure parts: base64 (RFC 4648 vectors, round
 * trips, invalid input), request parsing (defaults, dialects, field errors) and image fields
 * (base64 PNGs made here with zimage_png_encode, data URLs, sizes, strength, mask). The HTTP
 * behaviour is tested end to end by tests/server_test.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/server/base64.h"
#include "../../src/server/jobs.h"
#include "../../src/server/request.h"

static int pass, fail;
/* CHECK that also returns the condition, to skip what depends on it. */
#define CHECK_OK(c, ...) ((c) ? (pass++, 1) : (fail++, printf("  FAIL %s:%d: ", __FILE__, __LINE__), printf(__VA_ARGS__), printf("\n"), 0))
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

/* base64 of a w x h PNG (gray level v), made by the library's encoder. */
static char *png_b64(int w, int h, uint8_t v) {
    zimage_image img = {0};
    img.width = w;
    img.height = h;
    img.rgb = malloc((size_t)w * h * 3);
    if (!img.rgb) return NULL;
    memset(img.rgb, v, (size_t)w * h * 3);
    uint8_t *png = NULL;
    size_t len = 0;
    char *b = NULL;
    if (zimage_png_encode(&img, NULL, NULL, &png, &len) == 0) b = srv_base64_encode(png, len);
    free(png);
    free(img.rgb);
    return b;
}

static void test_images(void) {
    char *a = png_b64(40, 24, 200), *m = png_b64(40, 24, 255), *m2 = png_b64(24, 24, 255), *tiny = png_b64(8, 8, 1);
    if (!a || !m || !m2 || !tiny) {
        CHECK(0, "test PNGs");
        goto out;
    }
    char json[4096];
    srv_request r;
    srv_error e;
    snprintf(json, sizeof json, "{\"init_images\":[\"%s\"]}", a);
    CHECK(parse(SRV_API_A1111_IMG, json, &r, &e) == 0 && r.n_init == 1 && r.init[0].width == 40 &&
              r.init[0].height == 24 && r.init[0].rgb[0] == 200 && r.strength < 0 && !r.mask.rgb &&
              srv_request_out_width(&r) == 32 && srv_request_out_height(&r) == 16,
          "img2img init image: %s", e.message);
    srv_request_free(&r);
    CHECK(r.init[0].rgb == NULL && r.n_init == 0, "free clears the images");
    snprintf(json, sizeof json,
             "{\"init_images\":[\"data:image/png;base64,%s\"],\"mask\":\"%s\",\"denoising_strength\":0.25,"
             "\"mask_blur\":3,\"batch_size\":2,\"width\":64,\"height\":32}",
             a, m);
    if (CHECK_OK(parse(SRV_API_JOBS, json, &r, &e) == 0, "jobs with data URL + mask: %s", e.message)) {
        CHECK(r.n_init == 1 && r.mask.rgb && r.mask.rgb[0] == 255 && r.strength == 0.25 && r.mask_blur == 3 && r.n == 2 &&
                  srv_request_out_width(&r) == 64,
              "jobs image fields");
        zimage_params p = srv_request_params(&r, 1);
        CHECK(p.init_image == &r.init[0] && p.mask == &r.mask && p.mask_blur == 3.0f && p.strength == 0.25 &&
                  p.width == 64 && p.height == 32,
              "params of image 1 use the one init image");
        srv_request_free(&r);
    }
    snprintf(json, sizeof json, "{\"init_images\":[\"%s\"],\"mask_blur\":4,\"denoising_strength\":0.5}", a);
    CHECK(parse(SRV_API_A1111_IMG, json, &r, &e) == 0 && r.mask_blur == 0 && r.strength == 0.5,
          "mask_blur without a mask is ignored (A1111 clients always send it)");
    srv_request_free(&r);
    CHECK(parse(SRV_API_A1111, "{\"init_images\":5,\"mask\":7}", &r, &e) == 0 && r.n_init == 0,
          "txt2img ignores image fields");
    srv_request_free(&r);
    CHECK(parse(SRV_API_JOBS, "{\"denoising_strength\":0.3}", &r, &e) == 0 && r.strength < 0,
          "jobs: strength without an image is ignored");
    srv_request_free(&r);
    snprintf(json, sizeof json, "{\"prompt\":\"p\",\"image\":\"%s\",\"strength\":1,\"size\":\"32x32\"}", a);
    CHECK(parse(SRV_API_OPENAI_EDIT, json, &r, &e) == 0 && r.n_init == 1 && r.strength == 1 && r.width == 32,
          "edits: image as a string: %s", e.message);
    srv_request_free(&r);

    struct {
        srv_api api;
        const char *fmt, *param;
    } bad[] = {
        {SRV_API_A1111_IMG, "{}", "init_images"},
        {SRV_API_A1111_IMG, "{\"init_images\":[]}", "init_images"},
        {SRV_API_A1111_IMG, "{\"init_images\":\"%s\"}", "init_images"},
        {SRV_API_A1111_IMG, "{\"init_images\":[\"%s\",\"%s\"]}", "init_images"},
        {SRV_API_A1111_IMG, "{\"init_images\":[\"AAA\"]}", "init_images[0]"},
        {SRV_API_A1111_IMG, "{\"init_images\":[\"data:image/png;base64\"]}", "init_images[0]"},
        {SRV_API_A1111_IMG, "{\"init_images\":[\"data:,%s\"]}", "init_images[0]"},
        {SRV_API_A1111_IMG, "{\"init_images\":[\"%s\"],\"denoising_strength\":0}", "denoising_strength"},
        {SRV_API_A1111_IMG, "{\"init_images\":[\"%s\"],\"denoising_strength\":1.0001}", "denoising_strength"},
        {SRV_API_A1111_IMG, "{\"init_images\":[\"%s\"],\"mask_blur\":100}", "mask_blur"},
        {SRV_API_JOBS, "{\"mask\":\"%s\"}", "mask"},
        {SRV_API_OPENAI_EDIT, "{\"prompt\":\"p\"}", "image"},
        {SRV_API_OPENAI_EDIT, "{\"prompt\":\"p\",\"image\":\"%s\",\"strength\":-1}", "strength"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(json, sizeof json, bad[i].fmt, a, a);
        memset(&e, 0, sizeof e);
        int rc = parse(bad[i].api, json, &r, &e);
        CHECK(rc == -1 && !strcmp(e.param, bad[i].param) && strstr(e.message, bad[i].param) && r.init[0].rgb == NULL,
              "bad %zu: rc %d param '%s' message '%s'", i, rc, e.param, e.message);
    }
    snprintf(json, sizeof json, "{\"init_images\":[\"%s\"],\"mask\":\"%s\"}", a, m2);
    CHECK(parse(SRV_API_A1111_IMG, json, &r, &e) == -1 && !strcmp(e.param, "mask") && strstr(e.message, "24x24"),
          "mask size mismatch: %s", e.message);
    snprintf(json, sizeof json, "{\"init_images\":[\"%s\"]}", tiny);
    CHECK(parse(SRV_API_A1111_IMG, json, &r, &e) == -1 && !strcmp(e.param, "init_images") && strstr(e.message, "small"),
          "8x8 init image: %s", e.message);
out:
    free(a);
    free(m);
    free(m2);
    free(tiny);
}

int main(void) {
    test_base64();
    test_request();
    test_images();
    printf("server unit: %d passed, %d failed\n", pass, fail);
    return fail != 0;
}
