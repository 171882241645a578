/* dataset.c: dataset allocation, subsets, the seeded train/validation split, standardisation. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Features whose standard deviation is below this are treated as constant (scale 1). */
#define BP_CONSTANT_STD 1e-12

bprop_status bprop_dataset_alloc(size_t n, size_t dim, size_t classes, int labelled,
                                 bprop_dataset **out, bprop_error *err)
{
    if (!out)
        return bp_fail(err, BPROP_E_ARG, "bprop_dataset_alloc: out is NULL");
    *out = NULL;
    if (n == 0 || dim == 0)
        return bp_fail(err, BPROP_E_SIZE, "dataset of %zu samples x %zu features is empty", n, dim);
    size_t cells, bytes;
    if (bp_mul_overflows(n, dim, &cells) || bp_mul_overflows(cells, sizeof(float), &bytes))
        return bp_fail(err, BPROP_E_SIZE, "dataset of %zu samples x %zu features is too large", n,
                       dim);
    bprop_dataset *d = calloc(1, sizeof *d);
    if (!d)
        return bp_fail(err, BPROP_E_NOMEM, "out of memory for a dataset");
    d->n = n;
    d->dim = dim;
    d->classes = classes;
    d->x = bp_alloc(cells, sizeof(float));
    d->y = labelled ? bp_alloc(n, sizeof(int32_t)) : NULL;
    if (!d->x || (labelled && !d->y)) {
        bprop_dataset_free(d);
        return bp_fail(err, BPROP_E_NOMEM,
                       "out of memory for %zu samples x %zu features (%zu bytes)", n, dim, bytes);
    }
    *out = d;
    return BPROP_OK;
}

void bprop_dataset_free(bprop_dataset *d)
{
    if (!d)
        return;
    bp_free(d->x);
    bp_free(d->y);
    free(d);
}

/* A new dataset holding the samples idx[0..count) of d, in that order. */
static bprop_status gather(const bprop_dataset *d, const size_t *idx, size_t count,
                           bprop_dataset **out, bprop_error *err)
{
    bprop_status s = bprop_dataset_alloc(count, d->dim, d->classes, d->y != NULL, out, err);
    if (s != BPROP_OK)
        return s;
    bprop_dataset *o = *out;
    for (size_t i = 0; i < count; i++) {
        memcpy(o->x + i * d->dim, d->x + idx[i] * d->dim, d->dim * sizeof(float));
        if (d->y)
            o->y[i] = d->y[idx[i]];
    }
    return BPROP_OK;
}

bprop_status bprop_dataset_subset(const bprop_dataset *d, size_t first, size_t count,
                                  bprop_dataset **out, bprop_error *err)
{
    if (!out)
        return bp_fail(err, BPROP_E_ARG, "bprop_dataset_subset: out is NULL");
    *out = NULL;
    if (!d || !d->x)
        return bp_fail(err, BPROP_E_ARG, "bprop_dataset_subset: no dataset");
    if (count == 0)
        return bp_fail(err, BPROP_E_SIZE, "subset of 0 samples requested");
    if (first >= d->n || count > d->n - first)
        return bp_fail(err, BPROP_E_ARG,
                       "subset of samples [%zu, %zu + %zu) lies outside the %zu samples", first,
                       first, count, d->n);
    bprop_status s = bprop_dataset_alloc(count, d->dim, d->classes, d->y != NULL, out, err);
    if (s != BPROP_OK)
        return s;
    memcpy((*out)->x, d->x + first * d->dim, count * d->dim * sizeof(float));
    if (d->y)
        memcpy((*out)->y, d->y + first, count * sizeof(int32_t));
    return BPROP_OK;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

bprop_status bprop_dataset_split(const bprop_dataset *d, double fraction, uint64_t seed,
                                 bprop_dataset **train, bprop_dataset **val, bprop_error *err)
{
    if (!train || !val)
        return bp_fail(err, BPROP_E_ARG, "bprop_dataset_split: train or val is NULL");
    *train = *val = NULL;
    if (!d || !d->x)
        return bp_fail(err, BPROP_E_ARG, "bprop_dataset_split: no dataset");
    if (!(fraction >= 0.0 && fraction < 1.0))
        return bp_fail(err, BPROP_E_ARG, "validation fraction %g is outside [0, 1)", fraction);
    if (fraction == 0.0)
        return bprop_dataset_subset(d, 0, d->n, train, err);
    size_t n_val = (size_t)floor(fraction * (double)d->n + 0.5);
    if (n_val == 0)
        n_val = 1;
    if (n_val >= d->n)
        return bp_fail(err, BPROP_E_SIZE,
                       "validation fraction %g of %zu samples leaves no training samples", fraction,
                       d->n);
    size_t n_train = d->n - n_val;
    size_t *perm = malloc(d->n * sizeof *perm); /* (n) */
    if (!perm)
        return bp_fail(err, BPROP_E_NOMEM, "out of memory for a permutation of %zu samples", d->n);
    for (size_t i = 0; i < d->n; i++)
        perm[i] = i;
    bp_rng rng;
    bp_rng_seed(&rng, seed);
    bp_shuffle(perm, d->n, &rng);
    /* The shuffle only chooses who goes where; each part keeps the original order. */
    qsort(perm, n_train, sizeof *perm, cmp_size);
    qsort(perm + n_train, n_val, sizeof *perm, cmp_size);
    bprop_status s = gather(d, perm, n_train, train, err);
    if (s == BPROP_OK)
        s = gather(d, perm + n_train, n_val, val, err);
    free(perm);
    if (s != BPROP_OK) {
        bprop_dataset_free(*train);
        *train = NULL;
    }
    return s;
}

/* Two passes in double (mean, then squared deviations) so large, offset features keep their
 * precision; rows are walked in memory order with per-feature accumulators. */
bprop_status bprop_dataset_feature_stats(const bprop_dataset *d, float *mean, float *scale)
{
    if (!d || !d->x || !mean || !scale)
        return BPROP_E_ARG;
    if (d->n == 0 || d->dim == 0)
        return BPROP_E_SIZE;
    size_t dim = d->dim;
    double *acc = calloc(2 * dim, sizeof *acc); /* (2, dim): sums, then squared deviations */
    if (!acc)
        return BPROP_E_NOMEM;
    double *sum = acc, *sq = acc + dim;
    for (size_t i = 0; i < d->n; i++) {
        const float *row = d->x + i * dim;
        for (size_t k = 0; k < dim; k++)
            sum[k] += row[k];
    }
    for (size_t k = 0; k < dim; k++)
        sum[k] /= (double)d->n;
    for (size_t i = 0; i < d->n; i++) {
        const float *row = d->x + i * dim;
        for (size_t k = 0; k < dim; k++) {
            double dev = row[k] - sum[k];
            sq[k] += dev * dev;
        }
    }
    bprop_status s = BPROP_OK;
    for (size_t k = 0; k < dim; k++) {
        double sd = sqrt(sq[k] / (double)d->n);
        mean[k] = (float)sum[k];
        scale[k] = sd < BP_CONSTANT_STD ? 1.0f : (float)(1.0 / sd);
        if (!isfinite(mean[k]) || !isfinite(scale[k]))
            s = BPROP_E_NONFINITE;
    }
    free(acc);
    return s;
}

void bprop_dataset_standardize(bprop_dataset *d, const float *mean, const float *scale)
{
    if (!d || !d->x || !mean || !scale)
        return;
    for (size_t i = 0; i < d->n; i++) {
        float *row = d->x + i * d->dim;
        for (size_t k = 0; k < d->dim; k++)
            row[k] = (row[k] - mean[k]) * scale[k];
    }
}
