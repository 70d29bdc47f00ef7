/* unit.h - tiny assertion helpers for zimage-unit. */
#ifndef ZI_UNIT_H
#define ZI_UNIT_H
#include <stdio.h>
extern int unit_failures, unit_passes;
#define UNIT_CHECK(cond, ...)                                   \
    do {                                                        \
        if (cond) {                                             \
            unit_passes++;                                      \
        } else {                                                \
            unit_failures++;                                    \
            printf("  FAIL %s:%d: ", __FILE__, __LINE__);       \
            printf(__VA_ARGS__);                                \
            printf("\n");                                       \
        }                                                       \
    } while (0)
void unit_safetensors(const char *fixtures);
void unit_kernels(void);
void unit_q8(void);
void unit_png(void);
void unit_vae(const char *fixtures);
void unit_tokenizer(const char *fixtures);
void unit_comfy(const char *fixtures);
void unit_fuzz(const char *fixtures);
void unit_abi(const char *fixtures);
void unit_json(void);
void unit_imgcond(const char *fixtures);
void unit_lora(const char *fixtures);
void unit_gguf(const char *fixtures);
void unit_oom(const char *fixtures);
#endif
