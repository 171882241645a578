/* rows.h: where the kernels' input rows come from: float32 rows used in place, or byte rows
 * converted (and standardised) into a caller's buffer as a block is gathered (internal). */
#ifndef BPROP_ROWS_H
#define BPROP_ROWS_H

#include "internal.h"

#include <stddef.h>
#include <stdint.h>

/* The feature rows of a data set or of a caller's float array. */
typedef struct bp_src {
    const float *x;     /* (n, D) float rows; NULL: the rows are x8 */
    const uint8_t *x8;  /* (n, D) byte rows, each byte the float (float)b / 255.0f */
    const float *mean;  /* (D) standardisation of byte rows, or NULL */
    const float *scale; /* (D) with mean */
    size_t D;
} bp_src;

static inline bp_src bp_src_floats(const float *x, size_t D)
{
    return (bp_src){.x = x, .D = D};
}

static inline bp_src bp_src_dataset(const bprop_dataset *d)
{
    return (bp_src){.x = d->x, .x8 = d->x8, .mean = d->x8_mean, .scale = d->x8_scale, .D = d->dim};
}

/* 1 when d has features of either kind. */
static inline int bp_dataset_has_features(const bprop_dataset *d) { return d->x || d->x8; }

/* Byte row i of s as floats into out (D): (float)b / 255.0f, as IDX pixels always were, then
 * (v - mean) * scale, the very expression bprop_dataset_standardize applies to float rows, so
 * both give the same bits. The widest variant below that the CPU runs (same bits). */
void bp_src_convert(const bp_src *s, size_t i, float *out);

/* The variants bp_src_convert chooses from (for tests): mean and scale NULL or (D). */
void bp_convert_row_generic(const uint8_t *restrict b, const float *restrict mean,
                            const float *restrict scale, float *restrict out, size_t D);
void bp_convert_row_avx2(const uint8_t *restrict b, const float *restrict mean,
                         const float *restrict scale, float *restrict out, size_t D);

/* Row i of s as floats: a pointer into s->x, or buf (D floats) filled by bp_src_convert. */
static inline const float *bp_src_row(const bp_src *s, size_t i, float *buf)
{
    if (s->x)
        return s->x + i * s->D;
    bp_src_convert(s, i, buf);
    return buf;
}

/* Floats between two converted rows of a block buffer: D rounded up to a cache line. */
size_t bp_src_stride(size_t D);

/* bp_data_bounds (fixed.h) of the first n rows of s, the same values for byte rows as for the
 * floats they stand for; buf: D floats of scratch for one converted row. */
void bp_src_bounds(const bp_src *s, size_t n, float *buf, double *xinf, double *x1);

#endif /* BPROP_ROWS_H */
