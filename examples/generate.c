/* generate.c - the README's C API example (built and run by `make test`). */
#include <stdio.h>
#include "zimage.h"

int main(int argc, char **argv) {
    zimage_load_params lp = zimage_load_params_default();
    lp.model_dir = argc > 1 ? argv[1] : "tests/fixtures/tiny-zimage";
    zimage_model *m;
    if (zimage_load(&m, &lp)) { fprintf(stderr, "%s\n", zimage_last_error()); return 1; }
    zimage_params p = zimage_params_default();
    p.prompt = "a red fox in the snow, watercolor";
    p.width = p.height = 64;
    p.seed = 42;
    zimage_image img;
    if (zimage_generate(m, &p, &img)) { fprintf(stderr, "%s\n", zimage_last_error()); return 1; }
    zimage_save_png(&img, "fox.png", &p, "tiny-zimage");
    zimage_image_free(&img);
    zimage_free(m);
    return 0;
}
