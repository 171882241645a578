/* fixed.h: exact fixed-point sums of gradient blocks, the heart of layout-independent training
 * (internal). */
#ifndef BPROP_FIXED_H
#define BPROP_FIXED_H

#include "internal.h"
#include "kernels.h"

/*
 * Why: a float sum depends on the order of its terms, so a batch gradient summed over threads or
 * MPI ranks changes in its last bits with the layout. bprop cuts every batch into blocks of
 * BP_BLOCK samples whose boundaries depend on the batch alone; one kernel call sums a block in
 * float, in a fixed order; each block sum is then rounded once to an integer multiple of 2^-e
 * (e per tensor) and the blocks are added as int64, which is exact and so the same in any order,
 * on any number of threads and ranks. The exponent comes from a bound on every per-sample
 * gradient entry that depends only on the parameters and the data (the same on every rank):
 *
 *   |h_j| <= Hb = max|b1| + max_s ||x_s||_1 max|W1|      (activations)
 *   |dlogit_c| <= 1, sum_c |dlogit_c| <= 2                 (softmax minus one-hot)
 *   dW2: Hb     db2: 1     db1: 2 max|W2|     dW1: 2 max|W2| max|x|
 *
 * A block of at most BP_BLOCK samples then stays below 2^50 after scaling (with a factor 2 for
 * float rounding), and up to BP_FIXED_MAX_BLOCKS blocks below 2^62. Rounding a block sum costs
 * at most 2^-(e+1) per entry, about 2^-51 of the bound: 27 bits below float precision.
 */

/* Most blocks one batch may have (batch <= BP_FIXED_MAX_BLOCKS * BP_BLOCK). */
#define BP_FIXED_MAX_BLOCKS 4096

/* Per-tensor scales of one step: value * scale[t] is the fixed-point integer. */
typedef struct bp_scales {
    double scale[BPROP_TENSORS];
    double unscale[BPROP_TENSORS]; /* 1 / scale, exact (powers of two) */
} bp_scales;

/* Data-side constants of the bound: largest |x| and largest row L1 norm of the (n, D) data. */
void bp_data_bounds(const float *x, size_t n, size_t D, double *xinf, double *x1);

/* Scales for blocks of at most block samples, given the parameters' largest magnitudes per
 * tensor (wmax) and the data bounds; 0 when a bound is not finite (the step has diverged). */
int bp_make_scales(const double wmax[BPROP_TENSORS], double xinf, double x1, size_t block,
                   bp_scales *out);

/* The conversions are vector loops in every kernel set (kernels.h, bp_kernels), with the same
 * bits in each:
 *   fixed_add(acc, g, n, scale, first): acc[i] = round(g[i] * scale) (first) or
 *     acc[i] += round(g[i] * scale), for i < n; returns the largest |g[i] * scale| seen, so the
 *     caller can check it stayed below BP_FIXED_LIMIT.
 *   fixed_to_float(s, n, mul, out): out[i] = (float)(s[i] * mul), mul = unscale / batch size.
 *   fixed_round(g, n, scale, mul, out): for a batch of one block, what fixed_add (first) then
 *     fixed_to_float would give, computed without the int64 array; returns the largest
 *     |g[i] * scale|. */

/* Bound the conversions' magnitude must stay under. */
#define BP_FIXED_LIMIT 2251799813685248.0 /* 2^51 */

/* fixed_add of set k for a (rows, cols) block stored transposed: g is (cols, ldg), acc
 * (rows, cols). */
double bp_fixed_add_t(const bp_kernels *k, int64_t *acc, const float *g, size_t ldg, size_t rows,
                      size_t cols, double scale, int first);

/* Exact, order-free sum of squares for the clipping norm: each u^2 is scaled by 2^e2 and
 * truncated to an integer, kept as a 128-bit integer split in three 42-bit limbs so partial sums
 * can be combined with int64 additions (by threads or by MPI). */
typedef struct bp_sq128 {
    int64_t limb[3];
} bp_sq128;

/* Exponent e2 for n values bounded by |u| <= umax, so the total stays below 2^120. */
int bp_sq_exponent(double umax, size_t n);
void bp_sq_add(bp_sq128 *acc, const float *u, size_t n, int e2);
/* acc in double (then * 2^-e2 gives the sum of squares). */
double bp_sq_value(const bp_sq128 *acc, int e2);
void bp_sq_merge(bp_sq128 *into, const bp_sq128 *from);

#endif /* BPROP_FIXED_H */
