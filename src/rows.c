/* rows.c: byte rows turned into the floats the kernels read, and the data bounds over them. */
#include "rows.h"

#include "fixed.h"

/* One row: v = (float)b / 255.0f, then (v - mean[k]) * scale[k] when mean is given. The
 * division is IEEE single precision, correctly rounded at every vector width, so each variant
 * below gives the same bits; it vectorises where a 256-entry table lookup would not (a row
 * costs about a quarter of the table's time with AVX2). DIV255 is the quotient's expression.
 * The standardisation is the expression of bprop_dataset_standardize: a subtraction, then a
 * product (nothing to contract into an FMA). */
#define CONVERT_ROW(b, mean, scale, out, D, DIV255)                                                \
    do {                                                                                           \
        if (mean) {                                                                                \
            for (size_t k = 0; k < (D); k++)                                                       \
                (out)[k] = (DIV255((float)(b)[k]) - (mean)[k]) * (scale)[k];                       \
        } else {                                                                                   \
            for (size_t k = 0; k < (D); k++)                                                       \
                (out)[k] = DIV255((float)(b)[k]);                                                  \
        }                                                                                          \
    } while (0)

#define DIV255_DIVIDE(x) ((x) / 255.0f)

/* The same quotient without a division, which bounds the AVX2 conversion (a vector divide
 * issues every few cycles, an FMA twice a cycle): q = x R with R = 1/255 rounded is within an
 * ulp of x / 255; the residual x - 255 q is exact in one FMA, and q + residual R then rounds to
 * the correctly rounded quotient, for each of the 256 byte values (tests/test_bytes.c checks
 * them all against the division). */
#define RECIP255 0x1.010102p-8f
#define DIV255_FMA(x)                                                                              \
    __builtin_fmaf(__builtin_fmaf(-((x) * RECIP255), 255.0f, (x)), RECIP255, (x) * RECIP255)

void bp_convert_row_generic(const uint8_t *restrict b, const float *restrict mean,
                            const float *restrict scale, float *restrict out, size_t D)
{
    CONVERT_ROW(b, mean, scale, out, D, DIV255_DIVIDE);
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2,fma"))) void bp_convert_row_avx2(const uint8_t *restrict b,
                                                         const float *restrict mean,
                                                         const float *restrict scale,
                                                         float *restrict out, size_t D)
{
    CONVERT_ROW(b, mean, scale, out, D, DIV255_FMA);
}
#endif

void bp_src_convert(const bp_src *s, size_t i, float *out)
{
    const uint8_t *b = s->x8 + i * s->D; /* (D) */
#if defined(__x86_64__) || defined(__i386__)
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        bp_convert_row_avx2(b, s->mean, s->scale, out, s->D);
        return;
    }
#endif
    bp_convert_row_generic(b, s->mean, s->scale, out, s->D);
}

size_t bp_src_stride(size_t D)
{
    const size_t line = BP_ALIGN / sizeof(float);
    return (D + line - 1) / line * line;
}

/* Row by row: the bounds are maxima over rows of per-row figures, and bp_data_bounds' final
 * scaling of the L1 maximum by a constant > 1 is monotonic, so the maximum of per-row results
 * is the whole-set result bit for bit. */
void bp_src_bounds(const bp_src *s, size_t n, float *buf, double *xinf, double *x1)
{
    if (s->x) {
        bp_data_bounds(s->x, n, s->D, xinf, x1);
        return;
    }
    double mi = 0.0, m1 = 0.0;
    for (size_t i = 0; i < n; i++) {
        double ri, r1;
        bp_src_convert(s, i, buf);
        bp_data_bounds(buf, 1, s->D, &ri, &r1);
        mi = ri > mi ? ri : mi;
        m1 = r1 > m1 ? r1 : m1;
    }
    *xinf = mi;
    *x1 = m1;
}
