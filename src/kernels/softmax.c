/* softmax.c: the hidden blocks' logits combined, softmax and cross-entropy (compiled once). */
/* Scalar code whose bits do not depend on the kernel set: no product here can fuse into an FMA,
 * and expf/logf are the C library's, whatever the set. */
#include "kernels.h"

#include <math.h>

void bp_logits_combine(const float *b2, const float *part, size_t nhb, size_t nb, size_t C,
                       float *logits)
{
    for (size_t s = 0; s < nb; s++)
        for (size_t c = 0; c < C; c++) {
            float z = b2 ? b2[c] : 0.0f;
            for (size_t q = 0; q < nhb; q++)
                z += part[(q * nb + s) * C + c];
            logits[s * C + c] = z;
        }
}

/* Softmax of one row in place; returns log(sum(exp(z - max))) + max, the log-partition. Shifting
 * by the max keeps every exponent <= 0, so logits of +-1e4 neither overflow nor give NaN. */
static float softmax_row(float *z, size_t C, int32_t *argmax)
{
    size_t best = 0;
    for (size_t c = 1; c < C; c++)
        if (z[c] > z[best])
            best = c;
    float zmax = z[best], sum = 0.0f;
    for (size_t c = 0; c < C; c++) {
        z[c] = expf(z[c] - zmax);
        sum += z[c];
    }
    float inv = 1.0f / sum;
    for (size_t c = 0; c < C; c++)
        z[c] *= inv;
    *argmax = (int32_t)best;
    return zmax + logf(sum);
}

double bp_softmax_xent(float *logits, const int32_t *y, size_t nb, size_t C, int32_t *pred)
{
    double loss = 0.0;
    for (size_t s = 0; s < nb; s++) {
        float *z = logits + s * C;
        float zy = z[y[s]];
        float lse = softmax_row(z, C, &pred[s]);
        loss += (double)lse - (double)zy;
        z[y[s]] -= 1.0f;
    }
    return loss;
}

void bp_softmax(float *logits, size_t nb, size_t C, int32_t *pred)
{
    int32_t dummy;
    for (size_t s = 0; s < nb; s++)
        softmax_row(logits + s * C, C, pred ? &pred[s] : &dummy);
}
