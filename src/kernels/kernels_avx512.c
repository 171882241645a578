/* kernels_avx512.c: the kernels in 16-float AVX-512F vectors (compiled with -mavx512f -mfma). */
#define KSUFFIX avx512
#define VL 16
/* 32 zmm registers: 24 accumulators, 4 weight (or dh) vectors and 1 broadcast. */
#define FWD_MR 6 /* samples per forward tile */
#define FWD_NV 4 /* vectors of hidden units per forward tile: 6 x 4 = 24 accumulators */
#define BWD_MR 6 /* input pixels per dW1 tile */
#define BWD_NV 4 /* vectors of hidden units per dW1 tile: 6 x 4 = 24 accumulators */
#define FWD_PACK 0
#define BWD_PACK 0
#define LISTS BP_LISTS_AVX2 /* the list builders for POPCNT and AVX2, which its CPUs have */
#include "kernels_body.h"
