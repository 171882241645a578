/* model.c: parameter layout, initialisation and ownership of bprop_model. */
#include "internal.h"

#include <math.h>
#include <string.h>
#include <time.h>

bprop_status bprop_layout_make(size_t inputs, size_t hidden, size_t classes, int has_bias,
                               bprop_layout *out)
{
    if (!out)
        return BPROP_E_ARG;
    if (inputs == 0 || hidden == 0 || classes == 0)
        return BPROP_E_SIZE;
    size_t w1, w2;
    if (bp_mul_overflows(inputs, hidden, &w1) || bp_mul_overflows(hidden, classes, &w2))
        return BPROP_E_SIZE;
    size_t count[BPROP_TENSORS] = {w1, has_bias ? hidden : 0, w2, has_bias ? classes : 0};
    size_t total = 0;
    for (int t = 0; t < BPROP_TENSORS; t++) {
        out->offset[t] = total;
        out->count[t] = count[t];
        if (__builtin_add_overflow(total, count[t], &total))
            return BPROP_E_SIZE;
    }
    /* Keep parameter counts well inside what float buffers and int indices can address. */
    if (total > ((size_t)1 << 40))
        return BPROP_E_SIZE;
    out->total = total;
    return BPROP_OK;
}

static bprop_model *model_alloc(size_t inputs, size_t hidden, size_t classes, int has_bias,
                                bprop_error *err, bprop_status *st)
{
    bprop_layout layout;
    *st = bprop_layout_make(inputs, hidden, classes, has_bias, &layout);
    if (*st != BPROP_OK) {
        bp_fail(err, *st, "model %zu-%zu-%zu: sizes are zero or too large", inputs, hidden, classes);
        return NULL;
    }
    bprop_model *m = bp_alloc(1, sizeof *m);
    float *params = bp_alloc(layout.total, sizeof(float));
    if (!m || !params) {
        bp_free(m);
        bp_free(params);
        *st = bp_fail(err, BPROP_E_NOMEM, "model %zu-%zu-%zu: cannot allocate %zu parameters",
                      inputs, hidden, classes, layout.total);
        return NULL;
    }
    m->inputs = inputs;
    m->hidden = hidden;
    m->classes = classes;
    m->has_bias = has_bias ? 1 : 0;
    m->layout = layout;
    m->params = params;
    bprop_train_config_default(&m->info.config);
    m->info.test_loss = NAN;
    m->info.test_acc = NAN;
    m->info.created_unix = (int64_t)time(NULL);
    return m;
}

bprop_status bprop_model_create(size_t inputs, size_t hidden, size_t classes, int has_bias,
                                uint64_t seed, bprop_model **out, bprop_error *err)
{
    if (!out)
        return bp_fail(err, BPROP_E_ARG, "bprop_model_create: out is NULL");
    bprop_status st;
    bprop_model *m = model_alloc(inputs, hidden, classes, has_bias, err, &st);
    if (!m)
        return st;
    m->info.config.seed = seed;
    bp_rng rng;
    bp_rng_seed(&rng, seed);
    /* He-normal keeps the variance of the ReLU layer's input constant through W1; W2 uses
     * 1/hidden so the logits start with about unit variance (not saturated softmax). */
    float *w1 = bprop_model_tensor(m, BPROP_W1), *w2 = bprop_model_tensor(m, BPROP_W2);
    double sd1 = sqrt(2.0 / (double)inputs), sd2 = sqrt(1.0 / (double)hidden);
    for (size_t i = 0; i < m->layout.count[BPROP_W1]; i++)
        w1[i] = (float)(sd1 * bp_rng_normal(&rng));
    for (size_t i = 0; i < m->layout.count[BPROP_W2]; i++)
        w2[i] = (float)(sd2 * bp_rng_normal(&rng));
    *out = m;
    return BPROP_OK;
}

bprop_status bprop_model_clone(const bprop_model *m, bprop_model **out, bprop_error *err)
{
    if (!m || !out)
        return bp_fail(err, BPROP_E_ARG, "bprop_model_clone: NULL argument");
    bprop_status st;
    bprop_model *c = model_alloc(m->inputs, m->hidden, m->classes, m->has_bias, err, &st);
    if (!c)
        return st;
    memcpy(c->params, m->params, m->layout.total * sizeof(float));
    c->info = m->info;
    st = bprop_model_set_standardization(c, m->std_mean, m->std_scale);
    if (st != BPROP_OK) {
        bprop_model_free(c);
        return bp_fail(err, st, "bprop_model_clone: cannot copy standardisation");
    }
    *out = c;
    return BPROP_OK;
}

void bprop_model_free(bprop_model *m)
{
    if (!m)
        return;
    bp_free(m->params);
    bp_free(m->std_mean);
    bp_free(m->std_scale);
    bp_free(m);
}

float *bprop_model_tensor(const bprop_model *m, bprop_tensor t)
{
    if (!m || (int)t < 0 || t >= BPROP_TENSORS || m->layout.count[t] == 0)
        return NULL;
    return m->params + m->layout.offset[t];
}

const char *bprop_tensor_name(bprop_tensor t)
{
    static const char *const names[BPROP_TENSORS] = {"W1", "b1", "W2", "b2"};
    return ((int)t >= 0 && t < BPROP_TENSORS) ? names[t] : "?";
}

bprop_status bprop_model_set_standardization(bprop_model *m, const float *mean, const float *scale)
{
    if (!m || (mean && !scale))
        return BPROP_E_ARG;
    float *nm = NULL, *ns = NULL;
    if (mean) {
        nm = bp_alloc(m->inputs, sizeof(float));
        ns = bp_alloc(m->inputs, sizeof(float));
        if (!nm || !ns) {
            bp_free(nm);
            bp_free(ns);
            return BPROP_E_NOMEM;
        }
        memcpy(nm, mean, m->inputs * sizeof(float));
        memcpy(ns, scale, m->inputs * sizeof(float));
    }
    bp_free(m->std_mean);
    bp_free(m->std_scale);
    m->std_mean = nm;
    m->std_scale = ns;
    return BPROP_OK;
}

bprop_status bprop_model_prepare_data(const bprop_model *m, bprop_dataset *d, bprop_error *err)
{
    if (!m || !d)
        return bp_fail(err, BPROP_E_ARG, "bprop_model_prepare_data: NULL argument");
    if (d->dim != m->inputs)
        return bp_fail(err, BPROP_E_MISMATCH, "data has %zu features per sample, the model expects %zu",
                       d->dim, m->inputs);
    if (d->y) {
        for (size_t i = 0; i < d->n; i++)
            if (d->y[i] < 0 || (size_t)d->y[i] >= m->classes)
                return bp_fail(err, BPROP_E_LABEL, "sample %zu: label %d outside the model's classes 0..%zu",
                               i, (int)d->y[i], m->classes - 1);
    }
    if (m->std_mean && bprop_dataset_standardize(d, m->std_mean, m->std_scale) != BPROP_OK)
        return bp_fail(err, BPROP_E_NOMEM, "out of memory standardising %zu samples x %zu features",
                       d->n, d->dim);
    return BPROP_OK;
}
