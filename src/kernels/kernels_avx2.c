/* kernels_avx2.c: the kernels in 8-float AVX2+FMA vectors (compiled with -mavx2 -mfma). */
#define KSUFFIX avx2
#define VL 8
/* 16 ymm registers: 12 accumulators, the tile's weight (or dh) vectors and 1 broadcast. The
 * forward tile is BLIS's Haswell shape (6 x 16). The dW1 tile is 4 pixels x 24 units: a sample
 * is skipped when all the tile's pixels are zero, which 4 pixels are more often than 6 (62% of
 * sample-tile pairs kept on Fashion-MNIST instead of 69%), and it loads 7 vectors per 12 FMAs
 * instead of 8: measured 11% less backward time than 6 x 16. (The forward panel width must
 * divide BP_HBLOCK, which 24 does not.) */
#define FWD_MR 6 /* samples per forward tile */
#define FWD_NV 2 /* vectors of hidden units per forward tile: 6 x 2 = 12 accumulators */
#define BWD_MR 4 /* input pixels per dW1 tile */
#define BWD_NV 3 /* vectors of hidden units per dW1 tile: 4 x 3 = 12 accumulators */
#define FWD_PACK 1
#define BWD_PACK 1
#define LISTS BP_LISTS_AVX2 /* the list builders for POPCNT and AVX2, which its CPUs have */
#include "kernels_body.h"
