/* fuzz_safetensors.c - libFuzzer target: safetensors files (header JSON, offsets,
 * dtypes, shapes). An opened file's tensor views are read end to end so ASan checks
 * that every view lies inside the mapping; each tensor is also converted to f32. */
#include "../../src/io/safetensors.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("in.safetensors", data, size);
    zi_st_file f;
    zi_err_clear();
    if (zi_st_open(&f, path) != 0) {
        fuzz_expect_message("zi_st_open");
        return 0;
    }
    volatile uint64_t sum = 0;
    for (int t = 0; t < f.n_tensors; t++) {
        const zi_tensor *x = &f.tensors[t];
        for (size_t i = 0; i < x->nbytes; i++) sum += ((const uint8_t *)x->data)[i];
        if (zi_st_find(&f, x->name) == NULL) abort(); /* every name must be found */
        if (x->numel <= (1 << 16)) free(zi_tensor_to_f32(x));
    }
    (void)sum;
    zi_st_close(&f);
    return 0;
}
