/* fuzz_jpeg.c - libFuzzer target: condition images (--init-img / --mask, img2img and
 * inpainting) through zi_image_read: JPEG (baseline, progressive, gray, subsampled,
 * restart markers, truncation; CMYK refused) and PNG, picked by the magic bytes.
 *
 * A decoded image is read end to end and, when small enough to keep iterations fast,
 * goes the way the pipeline takes it: zi_imgcond_fit to its default size (sides rounded
 * down to multiples of 16, a center crop) and to a fixed 48x32 (a resize), then
 * normalization and mask binarization. */
#include "../../src/io/image.h"
#include "../../src/io/png.h"
#include "../../src/pipeline/imgcond.h"
#include "fuzz_util.h"

static void fit(const uint8_t *rgb, int w, int h, int W, int H) {
    uint8_t *out = NULL;
    zi_err_clear();
    if (zi_imgcond_fit(rgb, w, h, 3, W, H, &out) != 0) {
        fuzz_expect_message("zi_imgcond_fit");
        return;
    }
    float *f = malloc(sizeof(float) * 3 * (size_t)W * H);
    uint8_t *bin = malloc((size_t)W * H);
    if (!f || !bin) abort();
    zi_imgcond_to_float(out, W, H, f);
    for (size_t i = 0; i < 3 * (size_t)W * H; i++)
        if (!(f[i] >= -1 && f[i] <= 1)) abort(); /* x/255*2-1 of a byte */
    zi_imgcond_mask_binarize(out, W, H, bin);
    free(f);
    free(bin);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("in.img", data, size);
    uint8_t *rgb = NULL;
    int w = 0, h = 0;
    zi_err_clear();
    if (zi_image_read(path, &rgb, &w, &h) != 0) {
        fuzz_expect_message("zi_image_read");
        if (rgb) abort();
        return 0;
    }
    if (w <= 0 || h <= 0 || w > ZI_PNG_MAX_SIDE || h > ZI_PNG_MAX_SIDE) abort();
    volatile unsigned sum = 0;
    for (size_t i = 0; i < (size_t)w * h * 3; i++) sum += rgb[i];
    (void)sum;
    if ((size_t)w * h <= 512 * 512) {
        if (w >= 16 && h >= 16) fit(rgb, w, h, w / 16 * 16, h / 16 * 16);
        fit(rgb, w, h, 48, 32);
    }
    free(rgb);
    return 0;
}
