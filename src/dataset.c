/* dataset.c: dataset allocation, subsets, the seeded train/validation split, standardisation. */
#include "internal.h"
#include "rows.h"
#include "storage.h"

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
    if (d->storage)
        bp_storage_free(d->storage); /* holds x8, or x of a mapped .npy file */
    else
        bp_free(d->x);
    bp_free(d->y);
    bp_free(d->x8_mean);
    bp_free(d->x8_scale);
    free(d);
}

bprop_status bp_dataset_wrap(size_t n, size_t dim, int labelled, bp_storage *st, float *x,
                             const uint8_t *x8, const char *path, bprop_dataset **out,
                             bprop_error *err)
{
    *out = NULL;
    bprop_dataset *d = calloc(1, sizeof *d);
    if (!d) {
        bp_storage_free(st);
        return bp_fail(err, BPROP_E_NOMEM, "%s: out of memory for a dataset", path);
    }
    *d = (bprop_dataset){.n = n, .dim = dim, .x = x, .x8 = x8, .storage = st};
    if (labelled && !(d->y = bp_alloc(n, sizeof(int32_t)))) {
        bprop_dataset_free(d);
        return bp_fail(err, BPROP_E_NOMEM, "%s: out of memory for %zu labels", path, n);
    }
    *out = d;
    return BPROP_OK;
}

bprop_status bp_dataset_hand_over(bprop_status s, bprop_dataset *d, bprop_dataset **out)
{
    if (s != BPROP_OK) {
        bprop_dataset_free(d);
        return s;
    }
    *out = d;
    return BPROP_OK;
}

/* A dataset of n samples like d (sizes, labels allocated when d has them) whose byte features
 * are a fresh n x dim buffer (*bytes) carrying d's standardisation. */
static bprop_status alloc_bytes_like(const bprop_dataset *d, size_t n, bprop_dataset **out,
                                     uint8_t **bytes, bprop_error *err)
{
    *out = NULL;
    uint8_t *buf = malloc(n * d->dim); /* n * dim <= d->n * d->dim: no overflow */
    bp_storage *st = buf ? bp_storage_heap(buf, n * d->dim) : NULL; /* frees buf on failure */
    bprop_dataset *o = st ? calloc(1, sizeof *o) : NULL;
    if (!o) {
        bp_storage_free(st);
        return bp_fail(err, BPROP_E_NOMEM, "out of memory for %zu samples x %zu byte features", n,
                       d->dim);
    }
    *o = (bprop_dataset){.n = n, .dim = d->dim, .classes = d->classes, .x8 = buf, .storage = st};
    int ok = 1;
    if (d->y)
        ok = (o->y = bp_alloc(n, sizeof(int32_t))) != NULL;
    if (ok && d->x8_mean) {
        o->x8_mean = bp_alloc(d->dim, sizeof(float));
        o->x8_scale = bp_alloc(d->dim, sizeof(float));
        ok = o->x8_mean && o->x8_scale;
        if (ok) {
            memcpy(o->x8_mean, d->x8_mean, d->dim * sizeof(float));
            memcpy(o->x8_scale, d->x8_scale, d->dim * sizeof(float));
        }
    }
    if (!ok) {
        bprop_dataset_free(o);
        return bp_fail(err, BPROP_E_NOMEM, "out of memory for %zu labels", n);
    }
    *out = o;
    *bytes = buf;
    return BPROP_OK;
}

/* A new dataset holding the samples idx[0..count) of d, in that order. */
static bprop_status gather(const bprop_dataset *d, const size_t *idx, size_t count,
                           bprop_dataset **out, bprop_error *err)
{
    uint8_t *bytes = NULL;
    bprop_status s = d->x ? bprop_dataset_alloc(count, d->dim, d->classes, d->y != NULL, out, err)
                          : alloc_bytes_like(d, count, out, &bytes, err);
    if (s != BPROP_OK)
        return s;
    bprop_dataset *o = *out;
    for (size_t i = 0; i < count; i++) {
        if (d->x)
            memcpy(o->x + i * d->dim, d->x + idx[i] * d->dim, d->dim * sizeof(float));
        else
            memcpy(bytes + i * d->dim, d->x8 + idx[i] * d->dim, d->dim);
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
    if (!d || !bp_dataset_has_features(d))
        return bp_fail(err, BPROP_E_ARG, "bprop_dataset_subset: no dataset");
    if (count == 0)
        return bp_fail(err, BPROP_E_SIZE, "subset of 0 samples requested");
    if (first >= d->n || count > d->n - first)
        return bp_fail(err, BPROP_E_ARG,
                       "subset of samples [%zu, %zu + %zu) lies outside the %zu samples", first,
                       first, count, d->n);
    uint8_t *bytes = NULL;
    bprop_status s = d->x ? bprop_dataset_alloc(count, d->dim, d->classes, d->y != NULL, out, err)
                          : alloc_bytes_like(d, count, out, &bytes, err);
    if (s != BPROP_OK)
        return s;
    if (d->x)
        memcpy((*out)->x, d->x + first * d->dim, count * d->dim * sizeof(float));
    else
        memcpy(bytes, d->x8 + first * d->dim, count * d->dim);
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
    if (!d || !bp_dataset_has_features(d))
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
    if (!d || !bp_dataset_has_features(d) || !mean || !scale)
        return BPROP_E_ARG;
    if (d->n == 0 || d->dim == 0)
        return BPROP_E_SIZE;
    size_t dim = d->dim;
    /* (2, dim): sums, then squared deviations; then (dim) floats for a converted byte row */
    double *acc = calloc(2 * dim + (dim + 1) / 2, sizeof *acc);
    if (!acc)
        return BPROP_E_NOMEM;
    double *sum = acc, *sq = acc + dim;
    float *buf = (float *)(acc + 2 * dim);
    const bp_src src = bp_src_dataset(d);
    for (size_t i = 0; i < d->n; i++) {
        const float *row = bp_src_row(&src, i, buf);
        for (size_t k = 0; k < dim; k++)
            sum[k] += row[k];
    }
    for (size_t k = 0; k < dim; k++)
        sum[k] /= (double)d->n;
    for (size_t i = 0; i < d->n; i++) {
        const float *row = bp_src_row(&src, i, buf);
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

/* Byte features keep one standardisation, applied as rows are read; a second one would need
 * two in a row, so the set becomes float32 first (rare: a caller standardising twice). */
static bprop_status standardize_bytes(bprop_dataset *d, const float *mean, const float *scale)
{
    if (d->x8_mean) {
        bprop_status s = bprop_dataset_to_float(d, NULL);
        return s != BPROP_OK ? s : bprop_dataset_standardize(d, mean, scale);
    }
    d->x8_mean = bp_alloc(d->dim, sizeof(float));
    d->x8_scale = bp_alloc(d->dim, sizeof(float));
    if (!d->x8_mean || !d->x8_scale) {
        bp_free(d->x8_mean);
        bp_free(d->x8_scale);
        d->x8_mean = d->x8_scale = NULL;
        return BPROP_E_NOMEM;
    }
    memcpy(d->x8_mean, mean, d->dim * sizeof(float));
    memcpy(d->x8_scale, scale, d->dim * sizeof(float));
    return BPROP_OK;
}

bprop_status bprop_dataset_standardize(bprop_dataset *d, const float *mean, const float *scale)
{
    if (!d || !bp_dataset_has_features(d) || !mean || !scale)
        return BPROP_E_ARG;
    if (!d->x)
        return standardize_bytes(d, mean, scale);
    for (size_t i = 0; i < d->n; i++) {
        float *row = d->x + i * d->dim;
        for (size_t k = 0; k < d->dim; k++)
            row[k] = (row[k] - mean[k]) * scale[k];
    }
    return BPROP_OK;
}

const float *bprop_dataset_row(const bprop_dataset *d, size_t i, float *buf)
{
    if (!d || !bp_dataset_has_features(d) || i >= d->n || (!d->x && !buf))
        return NULL;
    const bp_src src = bp_src_dataset(d);
    return bp_src_row(&src, i, buf);
}

bprop_status bprop_dataset_to_float(bprop_dataset *d, bprop_error *err)
{
    if (!d || !bp_dataset_has_features(d))
        return bp_fail(err, BPROP_E_ARG, "bprop_dataset_to_float: no dataset");
    if (d->x)
        return BPROP_OK;
    size_t cells = d->n * d->dim; /* the bytes exist, so this fits; * 4 may not */
    float *x = cells <= SIZE_MAX / sizeof(float) ? bp_alloc(cells, sizeof(float)) : NULL;
    if (!x)
        return bp_fail(err, BPROP_E_NOMEM, "out of memory for %zu samples x %zu float features",
                       d->n, d->dim);
    const bp_src src = bp_src_dataset(d);
    for (size_t i = 0; i < d->n; i++)
        bp_src_convert(&src, i, x + i * d->dim);
    bp_storage_free(d->storage);
    bp_free(d->x8_mean);
    bp_free(d->x8_scale);
    d->storage = NULL;
    d->x8 = NULL;
    d->x8_mean = d->x8_scale = NULL;
    d->x = x;
    return BPROP_OK;
}
