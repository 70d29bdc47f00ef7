/* attention_generic.c - flash attention (attention_impl.h) instantiated for generic (vec_generic.h). */
#include "vec_generic.h"
#include "attention_impl.h"
