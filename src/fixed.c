/* fixed.c: exact fixed-point sums of gradient blocks and the exact clipping norm. */
#include "fixed.h"
#include "kernels.h"

#include <math.h>
#include <string.h>

void bp_data_bounds(const float *x, size_t n, size_t D, double *xinf, double *x1)
{
    double mi = 0.0, m1 = 0.0;
    for (size_t s = 0; s < n; s++) {
        const float *r = x + s * D;
        double l1 = 0.0;
        float ri = 0.0f;
        for (size_t k = 0; k < D; k++) {
            float a = r[k] < 0.0f ? -r[k] : r[k];
            l1 += a;
            ri = a > ri ? a : ri;
        }
        mi = ri > mi ? ri : mi;
        m1 = l1 > m1 ? l1 : m1;
    }
    *xinf = mi;
    *x1 = m1;
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

double bp_fixed_add_t(int64_t *acc, const float *g, size_t ldg, size_t rows, size_t cols,
                      double scale, int first)
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
            double b = bp_fixed_add(acc + r * cols + c0, row, n, scale, first);
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
