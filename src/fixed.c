/* fixed.c: exact fixed-point sums of gradient blocks and the exact clipping norm. */
#include "fixed.h"

#include <math.h>
#include <string.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

/* Four lanes in GCC/Clang vector extensions: SSE2 on every x86-64, and no flags needed. */
typedef float bound_vf __attribute__((vector_size(16)));
typedef int32_t bound_vi __attribute__((vector_size(16)));

/* Lane-wise max of a >= 0 and m: m where a is not greater, as a > m ? a : m. */
static inline bound_vf bound_max(bound_vf a, bound_vf m)
{
#if defined(__SSE__)
    return _mm_max_ps(a, m); /* the same: maxps returns its second operand unless a > m */
#else
    const bound_vi gt = a > m;
    return (bound_vf)(((bound_vi)a & gt) | ((bound_vi)m & ~gt));
#endif
}

void bp_data_bounds(const float *x, size_t n, size_t D, double *xinf, double *x1)
{
    /* Float sums in 4 x 4 lanes written out in the source, lane i of vector v taking the
     * entries k = 4 v + i mod 16: independent chains (one would wait on the add's latency at
     * every step) in one order on every rank and build. The bound carries a factor 2 of margin
     * for their rounding. */
    const bound_vi absmask = {0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff};
    float mi = 0.0f, m1 = 0.0f;
    for (size_t s = 0; s < n; s++) {
        const float *r = x + s * D;
        bound_vf l1[4] = {{0}}, ri[4] = {{0}};
        size_t k = 0;
        for (; k + 16 <= D; k += 16)
            for (int v = 0; v < 4; v++) {
                bound_vf a;
                memcpy(&a, r + k + 4 * v, sizeof a);
                a = (bound_vf)((bound_vi)a & absmask);
                l1[v] += a;
                ri[v] = bound_max(a, ri[v]);
            }
        float sum = 0.0f, top = 0.0f;
        for (int v = 0; v < 4; v++)
            for (int i = 0; i < 4; i++) {
                sum += l1[v][i];
                top = ri[v][i] > top ? ri[v][i] : top;
            }
        for (; k < D; k++) {
            const float a = fabsf(r[k]);
            sum += a;
            top = a > top ? a : top;
        }
        mi = top > mi ? top : mi;
        m1 = sum > m1 ? sum : m1;
    }
    *xinf = mi;
    *x1 = (double)m1 * (1.0 + (double)D * 0x1p-23); /* D float roundings at most */
}

/* 2^(50 - ceil(log2(2 * block * bound))): block sums of entries bounded by bound stay < 2^50. */
static double scale_for(double bound, size_t block)
{
    double b = 2.0 * (double)block * bound;
    if (!(b > 0.0))
        b = 1e-30; /* an all-zero gradient: any scale works, keep it finite */
    int ex;
    frexp(b, &ex); /* b < 2^ex */
    if (ex < -900)
        ex = -900;
    return ldexp(1.0, 50 - ex);
}

int bp_make_scales(const double wmax[BPROP_TENSORS], double xinf, double x1, size_t block,
                   bp_scales *out)
{
    const double hb = wmax[BPROP_B1] + x1 * wmax[BPROP_W1];
    const double bound[BPROP_TENSORS] = {
        [BPROP_W1] = 2.0 * wmax[BPROP_W2] * xinf,
        [BPROP_B1] = 2.0 * wmax[BPROP_W2],
        [BPROP_W2] = hb,
        [BPROP_B2] = 1.0,
    };
    for (int t = 0; t < BPROP_TENSORS; t++) {
        if (!isfinite(bound[t]) || bound[t] > 1e30)
            return 0;
        out->scale[t] = scale_for(bound[t], block);
        out->unscale[t] = 1.0 / out->scale[t];
    }
    return 1;
}

double bp_fixed_add_t(const bp_kernels *k, int64_t *acc, const float *g, size_t ldg, size_t rows,
                      size_t cols, double scale, int first)
{
    /* Small (hidden slice x classes): gather each row, then the vector loop. */
    enum { CHUNK = 64 };
    float row[CHUNK];
    double big = 0.0;
    for (size_t r = 0; r < rows; r++)
        for (size_t c0 = 0; c0 < cols; c0 += CHUNK) {
            size_t n = cols - c0 < CHUNK ? cols - c0 : CHUNK;
            for (size_t c = 0; c < n; c++)
                row[c] = g[(c0 + c) * ldg + r];
            double b = k->fixed_add(acc + r * cols + c0, row, n, scale, first);
            big = b > big ? b : big;
        }
    return big;
}

/* ---- the clipping norm ----------------------------------------------------------------------- */

#define LIMB_BITS 42
#define LIMB_MASK ((INT64_C(1) << LIMB_BITS) - 1)

int bp_sq_exponent(double umax, size_t n)
{
    double b = umax * umax * (double)(n ? n : 1);
    if (!(b > 0.0))
        return 0;
    int ex;
    frexp(b, &ex);
    return 120 - ex;
}

/* Add the non-negative integer value of d < 2^121 (truncated) into the limbs. */
static void limbs_add(int64_t limb[3], double d)
{
    if (!(d < 0x1p126))
        d = 0x1p126; /* unreachable under the bound; keeps the conversions defined */
    /* d = a * 2^84 + b * 2^42 + c, each part taken exactly from the double. */
    double a = floor(ldexp(d, -84));
    d -= ldexp(a, 84);
    double b = floor(ldexp(d, -42));
    d -= ldexp(b, 42);
    limb[2] += (int64_t)a;
    limb[1] += (int64_t)b;
    limb[0] += (int64_t)d;
}

/* Carry into canonical form (limbs 0 and 1 in [0, 2^42)): the same value, the same limbs. */
static void limbs_carry(int64_t limb[3])
{
    for (int k = 0; k < 2; k++) {
        int64_t carry = limb[k] >> LIMB_BITS;
        limb[k] &= LIMB_MASK;
        limb[k + 1] += carry;
    }
}

void bp_sq_add(bp_sq128 *acc, const float *u, size_t n, int e2)
{
    const double s = ldexp(1.0, e2);
    for (size_t i = 0; i < n; i++) {
        double d = (double)u[i] * (double)u[i] * s; /* exact square, exact power-of-two scale */
        limbs_add(acc->limb, d);
    }
    limbs_carry(acc->limb); /* so that merging many chunks never overflows */
}

void bp_sq_merge(bp_sq128 *into, const bp_sq128 *from)
{
    for (int k = 0; k < 3; k++)
        into->limb[k] += from->limb[k];
}

double bp_sq_value(const bp_sq128 *acc, int e2)
{
    /* Partitions merge into different limbs of one value; the canonical form converts alike. */
    bp_sq128 c = *acc;
    limbs_carry(c.limb);
    acc = &c;
    double v = ldexp((double)acc->limb[2], 2 * LIMB_BITS) + ldexp((double)acc->limb[1], LIMB_BITS) +
               (double)acc->limb[0];
    return ldexp(v, -e2);
}
