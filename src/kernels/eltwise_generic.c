/* eltwise_generic.c - SiLU/SwiGLU, conv input transform, sum of squares (eltwise_impl.h) instantiated for generic (vec_generic.h). */
#include "vec_generic.h"
#include "eltwise_impl.h"
