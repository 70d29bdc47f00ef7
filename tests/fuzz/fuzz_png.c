/* fuzz_png.c - libFuzzer target: PNG input (zi_png_read: every color type, bit
 * depth, interlacing, truncation). A decoded image is read end to end. */
#include "../../src/io/png.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("in.png", data, size);
    uint8_t *rgb = NULL;
    int w = 0, h = 0;
    zi_err_clear();
    if (zi_png_read(path, &rgb, &w, &h) != 0) {
        fuzz_expect_message("zi_png_read");
        return 0;
    }
    if (w <= 0 || h <= 0 || w > ZI_PNG_MAX_SIDE || h > ZI_PNG_MAX_SIDE) abort();
    volatile unsigned sum = 0;
    for (size_t i = 0; i < (size_t)w * h * 3; i++) sum += rgb[i];
    (void)sum;
    free(rgb);
    return 0;
}
