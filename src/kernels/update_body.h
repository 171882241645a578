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

/* The fixed-point round trip of a batch that is a single block: out[i] = (float)(q * mul) with
 * q = round(g[i] * scale), the value bp_fixed_add then bp_fixed_to_float give, without the
 * int64 array in between. Returns the largest |g[i] * scale|. */
static double KFN(bp_fixed_round)(const float *g, size_t n, double scale, double mul, float *out)
{
    const double magic = 6755399441055744.0; /* 1.5 * 2^52 */
    double big = 0.0;
#pragma omp simd reduction(max : big)
    for (size_t i = 0; i < n; i++) {
        double d = (double)g[i] * scale, a = fabs(d);
        big = a > big ? a : big;
        double q = (d + magic) - magic; /* the nearest integer, as round_fixed reads it */
        out[i] = (float)(q * mul);
    }
    return big;
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

/* The update of a run whose gradient sums are in fixed point, in one pass: each chunk's mean
 * gradient g = (float)(q * mul), q from the int64 sums sq or (sq NULL) rounded from the float
 * sums f * scale, lands in a buffer in L1, adds its squares to *norm2 and its largest |f * scale|
 * to *big, and updates its parameters as bp_sgd does. Each g and each update has the bits that
 * bp_fixed_to_float or bp_fixed_round, then bp_sgd give (the conversion to float ends every
 * expression that could fuse); one call replaces their three passes over memory. */
#define SGD_FIXED_CHUNK 256
static float KFN(bp_sgd_fixed)(float *w, float *v, const int64_t *sq, const float *f, size_t n,
                               double scale, double mul, const bp_sgd_params *p, double *big,
                               double *norm2)
{
    float g[SGD_FIXED_CHUNK], wmax = 0.0f;
    double b = *big, ss = 0.0;
    for (size_t i0 = 0; i0 < n; i0 += SGD_FIXED_CHUNK) {
        const size_t m = n - i0 < SGD_FIXED_CHUNK ? n - i0 : SGD_FIXED_CHUNK;
        if (sq)
            KFN(bp_fixed_to_float)(sq + i0, m, mul, g);
        else
            b = fmax(b, KFN(bp_fixed_round)(f + i0, m, scale, mul, g));
        double a = 0.0;
#pragma omp simd reduction(+ : a)
        for (size_t i = 0; i < m; i++)
            a += (double)g[i] * g[i];
        ss += a;
        float wm = KFN(bp_sgd)(w + i0, v + i0, g, m, p);
        wmax = wm > wmax ? wm : wmax;
    }
    *big = b;
    *norm2 += ss;
    return wmax;
}

/* Units [j, j + n) of row k of W1, from src, into the packed w1p of a view of H units: the
 * same places bp_pack_w1 puts them (its padding is left as it packed it). */
static void w1p_store(float *w1p, size_t H, size_t D, size_t k, size_t j, size_t n, const float *src)
{
    const size_t wide = H / (FWD_NV * VL) * (FWD_NV * VL); /* units in whole panels */
    while (n > 0) {
        const size_t pw = j < wide ? FWD_NV * VL : VL, pj = j < wide ? j - j % pw : j - (j - wide) % VL;
        const size_t run = pj + pw - j < n ? pj + pw - j : n;
        copy_row(w1p + pj * D + k * pw + (j - pj), src, run, run); /* no libc call per run */
        j += run;
        src += run;
        n -= run;
    }
}

/* W1's update from one panel of a single block's dW1 sums, gp (D, pw), columns [j, j + n) of
 * the view (padding columns zero): the mean gradient (rounded through fixed point, or times
 * inv_nb) replaces the sums in place, then bp_sgd updates each row's n parameters. Each element
 * goes through the operations of the separate passes (mean_grad, then bp_sgd), so the bits are
 * theirs. With u->w1p the updated rows also go to the packed copy. */
static void w1_panel_update(bp_w1_update *u, float *gp, size_t pw, size_t j, size_t n, size_t D)
{
    const size_t m = D * pw;
    if (u->fixed) {
        double b = KFN(bp_fixed_round)(gp, m, u->scale, u->mul, gp);
        u->big = b > u->big ? b : u->big;
    } else {
        const float inv = u->inv_nb;
        for (size_t i = 0; i < m; i++)
            gp[i] = gp[i] * inv;
    }
    double a = 0.0;
#pragma omp simd reduction(+ : a)
    for (size_t i = 0; i < m; i++)
        a += (double)gp[i] * gp[i];
    u->norm2 += a;
    float wmax = u->wmax;
    for (size_t k = 0; k < D; k++) {
        if (k + ROW_PREFETCH < D) { /* see ROW_PREFETCH */
            const size_t ahead = (k + ROW_PREFETCH) * u->ld + j;
            for (size_t i = 0; i < n; i += 64 / sizeof(float)) {
                __builtin_prefetch(u->w + ahead + i, 1, 3);
                __builtin_prefetch(u->v + ahead + i, 1, 3);
            }
            __builtin_prefetch(u->w + ahead + n - 1, 1, 3);
            __builtin_prefetch(u->v + ahead + n - 1, 1, 3);
        }
        float wm = KFN(bp_sgd)(u->w + k * u->ld + j, u->v + k * u->ld + j, gp + k * pw, n, &u->p);
        wmax = wm > wmax ? wm : wmax;
        if (u->w1p)
            w1p_store(u->w1p, u->H, D, k, j, n, u->w + k * u->ld + j);
    }
    u->wmax = wmax;
}
