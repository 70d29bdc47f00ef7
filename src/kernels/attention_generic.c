/* attention_generic.c - flash attention (attention_impl.h) instantiated for generic (vec_generic.h),
 * and the bf16-mode attention (attention_bf16_impl.h) on the exact emulation of vdpbf16ps. */
#include "vec_generic.h"
#include "attention_impl.h"
#include "attention_bf16_impl.h"
