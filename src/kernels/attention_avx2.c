/* attention_avx2.c - flash attention (attention_impl.h) instantiated for avx2 (vec_avx2.h). */
#if defined(__x86_64__)
#include "vec_avx2.h"
#include "attention_impl.h"
#endif
