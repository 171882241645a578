/* workspace.c: the compute buffers of evaluate, predict and loss_grad, owned by the caller. */
#include "workspace.h"

void bp_workspace_init(bprop_workspace *ws)
{
    *ws = (bprop_workspace){0};
    atomic_flag_clear(&ws->busy);
}

void bp_workspace_clear(bprop_workspace *ws)
{
    bp_engine_free(ws->engine);
    bp_stepper_free(ws->stepper);
    ws->engine = NULL;
    ws->stepper = NULL;
}

bprop_status bprop_workspace_create(bprop_workspace **out, bprop_error *err)
{
    if (!out)
        return bp_fail(err, BPROP_E_ARG, "bprop_workspace_create: out is NULL");
    bprop_workspace *ws = bp_alloc(1, sizeof *ws);
    if (!ws)
        return bp_fail(err, BPROP_E_NOMEM, "cannot allocate a workspace");
    bp_workspace_init(ws);
    *out = ws;
    return BPROP_OK;
}

void bprop_workspace_free(bprop_workspace *ws)
{
    if (!ws)
        return;
    bp_workspace_clear(ws);
    bp_free(ws);
}

bprop_status bp_workspace_claim(bprop_workspace *ws, const char *call, bprop_error *err)
{
    if (atomic_flag_test_and_set(&ws->busy))
        return bp_fail(err, BPROP_E_ARG, "%s: the workspace is in use by another call", call);
    return BPROP_OK;
}

void bp_workspace_release(bprop_workspace *ws) { atomic_flag_clear(&ws->busy); }

/* Drop the buffers when m has another shape than they were built for. */
static void fit_shape(bprop_workspace *ws, const bprop_model *m)
{
    if (ws->inputs == m->inputs && ws->hidden == m->hidden && ws->classes == m->classes &&
        ws->has_bias == m->has_bias)
        return;
    bp_workspace_clear(ws);
    ws->inputs = m->inputs;
    ws->hidden = m->hidden;
    ws->classes = m->classes;
    ws->has_bias = m->has_bias;
}

bp_engine *bp_workspace_engine(bprop_workspace *ws, const bprop_model *m, int threads)
{
    fit_shape(ws, m);
    if (ws->engine && ws->engine_threads == threads)
        return ws->engine;
    bp_engine_free(ws->engine);
    ws->engine = NULL;
    if (bp_engine_create(m, threads, 0, &ws->engine) != BPROP_OK)
        return NULL;
    ws->engine_threads = threads;
    return ws->engine;
}

bp_stepper *bp_workspace_stepper(bprop_workspace *ws, const bprop_model *m, int threads)
{
    fit_shape(ws, m);
    if (!ws->stepper || ws->stepper_threads != threads) {
        bp_stepper_free(ws->stepper);
        ws->stepper = NULL;
        /* Exact sums: the gradient is the same for every thread count. The data split only, so
         * the hidden split's (batch)-sized buffers are never needed: batch 1. */
        bprop_train_config cfg;
        bprop_train_config_default(&cfg);
        cfg.parallel = BPROP_PARALLEL_DATA;
        cfg.reproducible = 1;
        const bp_stepper_spec spec = {.m = m, .threads = threads, .batch = 1, .cfg = &cfg};
        if (bp_stepper_create(&spec, &ws->stepper) != BPROP_OK)
            return NULL;
        ws->stepper_threads = threads;
    }
    ws->stepper->m = m;
    return ws->stepper;
}
