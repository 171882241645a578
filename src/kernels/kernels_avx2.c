/* kernels_avx2.c: the kernels in 8-float AVX2+FMA vectors (compiled with -mavx2 -mfma). */
#define KSUFFIX avx2
#define VL 8
/* 16 ymm registers: 12 accumulators, the tile's 2 weight (or dh) vectors and 1 broadcast, as
 * BLIS's Haswell micro-kernel (6 x 16). */
#define FWD_MR 6 /* samples per forward tile */
#define FWD_NV 2 /* vectors of hidden units per forward tile: 6 x 2 = 12 accumulators */
#define BWD_MR 6 /* input pixels per dW1 tile */
#define BWD_NV 2 /* vectors of hidden units per dW1 tile: 6 x 2 = 12 accumulators */
#define FWD_PACK 1
#define BWD_PACK 1
#include "kernels_body.h"
