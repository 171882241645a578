/* rows.c: byte rows turned into the floats the kernels read, and the data bounds over them. */
#include "rows.h"

#include "fixed.h"

/* Built by the compiler with the same float division as a run-time (float)b / 255.0f (IEEE
 * single precision, round to nearest): test_data checks every entry against that. */
#define BYTE1(b) ((float)(b) / 255.0f)
#define BYTE4(b) BYTE1(b), BYTE1((b) + 1), BYTE1((b) + 2), BYTE1((b) + 3)
#define BYTE16(b) BYTE4(b), BYTE4((b) + 4), BYTE4((b) + 8), BYTE4((b) + 12)
#define BYTE64(b) BYTE16(b), BYTE16((b) + 16), BYTE16((b) + 32), BYTE16((b) + 48)
const float bp_byte_value[256] = {BYTE64(0), BYTE64(64), BYTE64(128), BYTE64(192)};

void bp_src_convert(const bp_src *s, size_t i, float *out)
{
    const uint8_t *b = s->x8 + i * s->D; /* (D) */
    const size_t D = s->D;
    if (s->mean) {
        const float *mean = s->mean, *scale = s->scale;
        for (size_t k = 0; k < D; k++)
            out[k] = (bp_byte_value[b[k]] - mean[k]) * scale[k];
    } else {
        for (size_t k = 0; k < D; k++)
            out[k] = bp_byte_value[b[k]];
    }
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
