/* jpeg.c - JPEG reader (baseline and progressive, gray/YCbCr/RGB -> 8-bit RGB) over
 * libjpeg-turbo's libjpeg API. Used for img2img/inpainting condition images.
 *
 * libjpeg reports fatal errors through error_exit, which we turn into a longjmp
 * back to zi_jpeg_read; everything that must be released is set before setjmp
 * or volatile. Corrupt-data warnings (truncated file, bad Huffman code) are
 * counted and turned into an error too: libjpeg would otherwise hand back gray
 * filler for the missing part. Decoding settings are libjpeg's defaults (islow
 * IDCT, fancy upsampling), the same as PIL's, so pixels match PIL's decode. */
#include "jpeg.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "../common/error.h"
#include "png.h" /* ZI_PNG_MAX_SIDE: one size limit for every image input */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    int n_warnings;
    int max_side; /* larger sides are refused before pixels are allocated */
} jpeg_err;

static void jpeg_cb_exit(j_common_ptr cinfo) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    e->pub.format_message(cinfo, e->msg);
    longjmp(e->jb, 1);
}

static void jpeg_cb_message(j_common_ptr cinfo, int level) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    if (level < 0 && e->n_warnings++ == 0) e->pub.format_message(cinfo, e->msg); /* keep the first warning */
}

int zi_jpeg_is_jpeg(const uint8_t *head, size_t n) { return n >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF; }

int zi_jpeg_read(const char *path, uint8_t **rgb_out, int *w_out, int *h_out) {
    *rgb_out = NULL;
    *w_out = *h_out = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return zi_err("%s: cannot open JPEG: %s", path, strerror(errno));
    return zi_jpeg_read_stream(fp, path, ZI_PNG_MAX_SIDE, rgb_out, w_out, h_out);
}

int zi_jpeg_read_stream(FILE *fp, const char *path, int max_side, uint8_t **rgb_out, int *w_out, int *h_out) {
    *rgb_out = NULL;
    *w_out = *h_out = 0;
    struct jpeg_decompress_struct cinfo;
    jpeg_err *e = zi_calloc(1, sizeof *e); /* on the heap: changed between setjmp and longjmp */
    if (!e) {
        fclose(fp);
        return zi_err_ctx("%s", path);
    }
    e->max_side = max_side < 1 || max_side > ZI_PNG_MAX_SIDE ? ZI_PNG_MAX_SIDE : max_side;
    uint8_t *volatile px = NULL;
    cinfo.err = jpeg_std_error(&e->pub);
    e->pub.error_exit = jpeg_cb_exit;
    e->pub.emit_message = jpeg_cb_message;
    if (setjmp(e->jb)) {
        jpeg_destroy_decompress(&cinfo);
        fclose(fp);
        free(px);
        zi_err("%s: corrupt JPEG: %s", path, e->msg[0] ? e->msg : "unknown libjpeg error");
        free(e);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, fp);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.image_width < 1 || cinfo.image_height < 1 || cinfo.image_width > (JDIMENSION)e->max_side ||
        cinfo.image_height > (JDIMENSION)e->max_side) {
        snprintf(e->msg, sizeof e->msg, "image size %ux%u is out of range (1..%d per side)", cinfo.image_width,
                 cinfo.image_height, e->max_side);
        longjmp(e->jb, 1);
    }
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        snprintf(e->msg, sizeof e->msg, "CMYK JPEGs are not supported (convert the image to RGB)");
        longjmp(e->jb, 1);
    }
    cinfo.out_color_space = JCS_RGB; /* gray is replicated, YCbCr converted */
    jpeg_start_decompress(&cinfo);
    size_t w = cinfo.output_width, h = cinfo.output_height;
    if (cinfo.output_components != 3) {
        snprintf(e->msg, sizeof e->msg, "unexpected %d output components", cinfo.output_components);
        longjmp(e->jb, 1);
    }
    px = malloc(w * h * 3);
    if (!px) {
        snprintf(e->msg, sizeof e->msg, "out of memory for a %zux%zu image", w, h);
        longjmp(e->jb, 1);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = px + (size_t)cinfo.output_scanline * w * 3;
        if (jpeg_read_scanlines(&cinfo, &row, 1) != 1) break;
        if (e->n_warnings) break;
    }
    if (e->n_warnings || cinfo.output_scanline < cinfo.output_height) longjmp(e->jb, 1);
    jpeg_finish_decompress(&cinfo);
    if (e->n_warnings) longjmp(e->jb, 1);
    jpeg_destroy_decompress(&cinfo);
    fclose(fp);
    free(e);
    *rgb_out = px;
    *w_out = (int)w;
    *h_out = (int)h;
    return 0;
}
