/* kernels_generic.c: the kernels in 4-float vectors (x86-64 baseline SSE2, or any target). */
#define KSUFFIX generic
#define VL 4
#define FWD_MR 4 /* samples per forward tile */
#define FWD_NV 2 /* vectors of hidden units per forward tile: 4 x 2 = 8 accumulators */
#define BWD_MR 4 /* input pixels per dW1 tile */
#define BWD_NV 2 /* vectors of hidden units per dW1 tile */
#define FWD_PACK 1
#define BWD_PACK 1
#include "kernels_body.h"
