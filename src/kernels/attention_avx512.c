/* attention_avx512.c - flash attention (attention_impl.h) instantiated for avx512 (vec_avx512.h). */
#if defined(__x86_64__)
#include "vec_avx512.h"
#include "attention_impl.h"
#endif
