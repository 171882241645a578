/* update_body.h: the step's memory-bound loops (fixed-point conversion, integer sums, SGD),
 * compiled once per instruction set beside the kernels (internal). */
/* Included by kernels_body.h, after KFN and the set's flags are in place. Each loop's result is
 * the same in every set except the SGD update, whose a*b+c fuse into FMAs where the set has
 * them: like the kernels, a set gives identical results only with itself. */

/* Round-to-nearest of |d| < 2^51 through the double's mantissa: adding 1.5 * 2^52 leaves the
 * integer in the low bits, where it can be read without a (scalar on AVX2) conversion. */
INLINE int64_t round_fixed(double d)
{
    const double magic = 6755399441055744.0; /* 1.5 * 2^52 */
    double t = d + magic;
    uint64_t bits, mbits;
    memcpy(&bits, &t, sizeof bits);
    memcpy(&mbits, &magic, sizeof mbits);
    return (int64_t)(bits - mbits);
}

static double KFN(bp_fixed_add)(int64_t *acc, const float *g, size_t n, double scale, int first)
{
    double big = 0.0;
    if (first) {
#pragma omp simd reduction(max : big)
        for (size_t i = 0; i < n; i++) {
            double d = (double)g[i] * scale;
            double a = fabs(d);
            big = a > big ? a : big;
            acc[i] = round_fixed(d);
        }
    } else {
        /* Unsigned: garbage from a diverging step wraps instead of overflowing (it is caught
         * by the magnitude check, not used). */
#pragma omp simd reduction(max : big)
        for (size_t i = 0; i < n; i++) {
            double d = (double)g[i] * scale;
            double a = fabs(d);
            big = a > big ? a : big;
            acc[i] = (int64_t)((uint64_t)acc[i] + (uint64_t)round_fixed(d));
        }
    }
    return big;
}

/* (double)s[i] as hi * 2^32 + lo: both parts convert exactly from 32-bit integers (which
 * vectorise, unlike int64 before AVX-512DQ), and their sum rounds once, exactly as (double)s[i]
 * would. */
static void KFN(bp_fixed_to_float)(const int64_t *s, size_t n, double mul, float *out)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        int32_t hi = (int32_t)(s[i] >> 32);
        int32_t lo = (int32_t)((uint32_t)s[i] ^ 0x80000000u); /* low word, offset by 2^31 */
        double d = (double)hi * 4294967296.0 + ((double)lo + 2147483648.0);
        out[i] = (float)(d * mul);
    }
}

static void KFN(bp_add_i64)(int64_t *dst, const int64_t *src, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        dst[i] = (int64_t)((uint64_t)dst[i] + (uint64_t)src[i]);
}

/* Two loops, not a select inside one: the x86-64 baseline vectorises neither a select nor a
 * compare-and-negate absolute value. */
static float KFN(bp_sgd)(float *w, float *v, const float *g, size_t n, const bp_sgd_params *p)
{
    const float lr = p->lr, mu = p->momentum, wd = p->decay, clip = p->clip;
    float wmax = 0.0f;
    if (p->nesterov) {
#pragma omp simd reduction(max : wmax)
        for (size_t i = 0; i < n; i++) {
            float u = (g[i] + wd * w[i]) * clip;
            float vn = mu * v[i] + u;
            v[i] = vn;
            float wi = w[i] - lr * (u + mu * vn);
            w[i] = wi;
            float a = fabsf(wi);
            wmax = a > wmax ? a : wmax; /* maxps; fmaxf would be a libm call */
        }
    } else {
#pragma omp simd reduction(max : wmax)
        for (size_t i = 0; i < n; i++) {
            float u = (g[i] + wd * w[i]) * clip;
            float vn = mu * v[i] + u;
            v[i] = vn;
            float wi = w[i] - lr * vn;
            w[i] = wi;
            float a = fabsf(wi);
            wmax = a > wmax ? a : wmax; /* maxps; fmaxf would be a libm call */
        }
    }
    return wmax;
}
