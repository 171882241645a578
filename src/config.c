/* config.c: training settings: defaults, validation and schedule names. */
#include "internal.h"

#include <math.h>
#include <string.h>

void bprop_train_config_default(bprop_train_config *c)
{
    /* Nesterov momentum with a cosine schedule reaches ~89% on Fashion-MNIST (784-256-10) in
     * 10 epochs at batch 128; see docs/performance.md, "Accuracy". */
    *c = (bprop_train_config){
        .epochs = 10,
        .batch = 128,
        .lr = 0.1f,
        .momentum = 0.9f,
        .nesterov = 1,
        .weight_decay = 0.0f,
        .schedule = BPROP_SCHEDULE_COSINE,
        .step_epochs = 3,
        .step_gamma = 0.1f,
        .clip_norm = 0.0f,
        .seed = 42,
        .shuffle = 1,
        .threads = 0,
        .parallel = BPROP_PARALLEL_AUTO,
        .reproducible = 0,
    };
}

bprop_status bprop_train_config_check(const bprop_train_config *c, bprop_error *err)
{
    if (!c)
        return bp_fail(err, BPROP_E_ARG, "training settings are NULL");
    if (c->epochs == 0)
        return bp_fail(err, BPROP_E_ARG, "epochs must be at least 1");
    if (c->batch == 0)
        return bp_fail(err, BPROP_E_ARG, "batch must be at least 1");
    if (!(c->lr > 0.0f) || !isfinite(c->lr))
        return bp_fail(err, BPROP_E_ARG, "learning rate must be a positive number, got %g", (double)c->lr);
    if (!(c->momentum >= 0.0f && c->momentum < 1.0f))
        return bp_fail(err, BPROP_E_ARG, "momentum must lie in [0, 1), got %g", (double)c->momentum);
    if (c->nesterov && !(c->momentum > 0.0f))
        return bp_fail(err, BPROP_E_ARG, "Nesterov momentum needs momentum > 0");
    if (!(c->weight_decay >= 0.0f) || !isfinite(c->weight_decay))
        return bp_fail(err, BPROP_E_ARG, "weight decay must be >= 0, got %g", (double)c->weight_decay);
    if ((int)c->schedule < 0 || c->schedule > BPROP_SCHEDULE_COSINE)
        return bp_fail(err, BPROP_E_ARG, "unknown learning-rate schedule %d", (int)c->schedule);
    if (c->schedule == BPROP_SCHEDULE_STEP && c->step_epochs == 0)
        return bp_fail(err, BPROP_E_ARG, "step schedule needs step epochs >= 1");
    if (!(c->step_gamma > 0.0f && c->step_gamma <= 1.0f))
        return bp_fail(err, BPROP_E_ARG, "step gamma must lie in (0, 1], got %g", (double)c->step_gamma);
    if (!(c->clip_norm >= 0.0f) || !isfinite(c->clip_norm))
        return bp_fail(err, BPROP_E_ARG, "clip norm must be >= 0 (0 disables), got %g", (double)c->clip_norm);
    if ((int)c->parallel < 0 || c->parallel > BPROP_PARALLEL_HIDDEN)
        return bp_fail(err, BPROP_E_ARG, "unknown parallel mode %d", (int)c->parallel);
    if (c->threads < 0)
        return bp_fail(err, BPROP_E_ARG, "threads must be >= 0 (0: OpenMP default), got %d", c->threads);
    return BPROP_OK;
}

static const char *const schedule_names[] = {"constant", "step", "cosine"};

const char *bprop_schedule_name(bprop_schedule s)
{
    return ((int)s >= 0 && s <= BPROP_SCHEDULE_COSINE) ? schedule_names[s] : "?";
}

bprop_status bprop_schedule_parse(const char *name, bprop_schedule *out)
{
    for (int s = 0; name && s <= BPROP_SCHEDULE_COSINE; s++)
        if (strcmp(name, schedule_names[s]) == 0) {
            *out = (bprop_schedule)s;
            return BPROP_OK;
        }
    return BPROP_E_ARG;
}

static const char *const parallel_names[] = {"auto", "data", "hidden"};

const char *bprop_parallel_name(bprop_parallel p)
{
    return ((int)p >= 0 && p <= BPROP_PARALLEL_HIDDEN) ? parallel_names[p] : "?";
}

bprop_status bprop_parallel_parse(const char *name, bprop_parallel *out)
{
    for (int p = 0; name && p <= BPROP_PARALLEL_HIDDEN; p++)
        if (strcmp(name, parallel_names[p]) == 0) {
            *out = (bprop_parallel)p;
            return BPROP_OK;
        }
    return BPROP_E_ARG;
}
