/* kernels_avx512.c: the kernels in 16-float AVX-512F vectors (compiled with -mavx512f -mfma). */
#define KSUFFIX avx512
#define VL 16
/* 32 zmm registers. The forward tile: 24 accumulators, 4 weight vectors and 1 broadcast. The
 * dW1 tile is 4 pixels x 64 units (16 accumulators): a sample is skipped when all the tile's
 * pixels are zero, so 4 pixels keep 62% of the sample-tile pairs on Fashion-MNIST instead of
 * 68% for 6, and on a CPU that runs one zmm FMA and about one zmm load a cycle (Zen 4) its 8
 * loads per 16 FMAs still leave the FMAs the bottleneck. Its dh panel is packed: read in place,
 * the 64 rows H floats apart fall into a quarter of the L1 sets (docs/kernels.md, "Tile
 * shapes", has the measurements). */
#define FWD_MR 6 /* samples per forward tile */
#define FWD_NV 4 /* vectors of hidden units per forward tile: 6 x 4 = 24 accumulators */
#define BWD_MR 4 /* input pixels per dW1 tile */
#define BWD_NV 4 /* vectors of hidden units per dW1 tile: 4 x 4 = 16 accumulators */
#define FWD_PACK 0
#define BWD_PACK 1
#define LISTS BP_LISTS_AVX2 /* the list builders for POPCNT and AVX2, which its CPUs have */
#include "kernels_body.h"
