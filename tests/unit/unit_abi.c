/* unit_abi.c - the extendable public parameter structs (include/zimage.h): struct_size
 * set by the _default() functions, refused when too small or absurd, and a caller built
 * against a newer header (a larger struct) still accepted. */
#include <stddef.h>
#include <string.h>

#include "zimage.h"
#include "unit.h"

void unit_abi(const char *fixtures) {
    zimage_load_params lp = zimage_load_params_default();
    zimage_params p = zimage_params_default();
    UNIT_CHECK(lp.struct_size == sizeof lp && p.struct_size == sizeof p, "_default() sets struct_size");

    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tiny-zimage", fixtures);
    zimage_model *m = NULL;
    zimage_load_params zero = {0};
    zero.model_dir = dir;
    UNIT_CHECK(zimage_load(&m, &zero) == -1 && strstr(zimage_last_error(), "struct_size") &&
                   strstr(zimage_last_error(), "zimage_load_params_default"),
               "= {0} load params refused with a hint: %s", zimage_last_error());
    lp.model_dir = dir;
    lp.struct_size = 1u << 20;
    UNIT_CHECK(zimage_load(&m, &lp) == -1 && strstr(zimage_last_error(), "struct_size"),
               "absurd struct_size refused: %s", zimage_last_error());

    /* a caller compiled against a newer header: more fields at the end */
    struct {
        zimage_load_params lp;
        long long future[4];
    } newer;
    memset(&newer, 0, sizeof newer);
    newer.lp = zimage_load_params_default();
    newer.lp.struct_size = sizeof newer;
    newer.lp.model_dir = dir;
    if (zimage_load(&m, &newer.lp) != 0) {
        UNIT_CHECK(0, "larger load params accepted: %s", zimage_last_error());
        return;
    }
    zimage_params q = zimage_params_default();
    q.prompt = "a fox";
    q.width = q.height = 64;
    UNIT_CHECK(zimage_validate(m, &q) == 0, "default params valid: %s", zimage_last_error());
    q.struct_size = offsetof(zimage_params, cancel); /* older than the first release */
    UNIT_CHECK(zimage_validate(m, &q) == -1 && strstr(zimage_last_error(), "struct_size"),
               "truncated params refused: %s", zimage_last_error());
    q.struct_size = 0;
    zimage_image img;
    UNIT_CHECK(zimage_generate(m, &q, &img) == -1 && strstr(zimage_last_error(), "zimage_params_default"),
               "generate refuses struct_size 0: %s", zimage_last_error());
    struct {
        zimage_params p;
        double future[3];
    } newp;
    memset(&newp, 0, sizeof newp);
    newp.p = zimage_params_default();
    newp.p.struct_size = sizeof newp;
    newp.p.prompt = "a fox";
    newp.p.width = newp.p.height = 64;
    UNIT_CHECK(zimage_validate(m, &newp.p) == 0, "larger params accepted: %s", zimage_last_error());
    zimage_free(m);
}
