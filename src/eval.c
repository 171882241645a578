/* eval.c: evaluation, prediction and the one-shot loss gradient, all parallel over samples. */
#include "engine.h"

#include <math.h>
#include <omp.h>
#include <string.h>

static bprop_status check_call(const bprop_model *m, int threads, bprop_error *err)
{
    if (!m || !m->params)
        return bp_fail(err, BPROP_E_ARG, "model is NULL");
    if (threads < 0)
        return bp_fail(err, BPROP_E_ARG, "threads must be >= 0 (0: OpenMP default), got %d", threads);
    return BPROP_OK;
}

static bprop_status check_labels(const bprop_model *m, const int32_t *y, size_t n, bprop_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (y[i] < 0 || (size_t)y[i] >= m->classes)
            return bp_fail(err, BPROP_E_LABEL, "sample %zu: label %d outside the model's classes 0..%zu",
                           i, (int)y[i], m->classes - 1);
    return BPROP_OK;
}

/* Forward over samples [lo, hi) of x in blocks; per block, fn consumes the logits. */
typedef void (*logits_fn)(void *ctx, size_t first, size_t nb, float *logits, bp_work *w);

static void forward_range(const bprop_model *m, bp_work *w, const float *x, size_t lo, size_t hi,
                          logits_fn fn, void *ctx)
{
    bp_net net = bp_work_net(m, w);
    for (size_t s0 = lo; s0 < hi; s0 += BP_BLOCK) {
        size_t nb = hi - s0 < BP_BLOCK ? hi - s0 : BP_BLOCK;
        for (size_t r = 0; r < nb; r++)
            w->rows[r] = x + (s0 + r) * m->inputs;
        bp_forward_block(&net, w->rows, nb, w->h, w->logits, &w->scratch);
        fn(ctx, s0, nb, w->logits, w);
    }
}

/* ---- evaluate ------------------------------------------------------------------------------ */

typedef struct eval_ctx {
    const bprop_model *m;
    const int32_t *y;
    double loss;
    size_t correct;
    uint64_t *confusion; /* (C, C) this thread's counts, or NULL */
} eval_ctx;

static void eval_block(void *p, size_t first, size_t nb, float *logits, bp_work *w)
{
    eval_ctx *e = p;
    const size_t C = e->m->classes;
    memcpy(w->y, e->y + first, nb * sizeof(int32_t));
    e->loss += bp_softmax_xent(logits, w->y, nb, C, w->pred);
    for (size_t r = 0; r < nb; r++) {
        e->correct += w->pred[r] == w->y[r];
        if (e->confusion)
            e->confusion[(size_t)w->y[r] * C + (size_t)w->pred[r]]++;
    }
}

bprop_status bprop_evaluate(const bprop_model *m, const bprop_dataset *d, int threads,
                            bprop_eval *out, uint64_t *confusion, bprop_error *err)
{
    bprop_status st = check_call(m, threads, err);
    if (st != BPROP_OK)
        return st;
    if (!d || !d->x || !d->y || !out)
        return bp_fail(err, BPROP_E_ARG, "evaluation needs labelled data and an output");
    if (d->dim != m->inputs)
        return bp_fail(err, BPROP_E_MISMATCH, "data has %zu features per sample, the model expects %zu",
                       d->dim, m->inputs);
    if ((st = check_labels(m, d->y, d->n, err)) != BPROP_OK)
        return st;
    const size_t C = m->classes;
    int nt = bp_resolve_threads(threads);
    bp_engine *e = NULL;
    eval_ctx *ctx = bp_alloc((size_t)nt, sizeof *ctx);
    if (!ctx || bp_engine_create(m, nt, 0, &e) != BPROP_OK) {
        bp_free(ctx);
        return bp_fail(err, BPROP_E_NOMEM, "cannot allocate evaluation buffers");
    }
    int ok = 1;
    for (int t = 0; t < nt; t++) {
        ctx[t] = (eval_ctx){.m = m, .y = d->y};
        if (confusion && !(ctx[t].confusion = bp_alloc(C * C, sizeof(uint64_t))))
            ok = 0;
    }
    if (ok) {
#pragma omp parallel num_threads(nt)
        {
            int t = omp_get_thread_num();
            size_t lo, hi;
            bp_share(d->n, omp_get_num_threads(), t, &lo, &hi);
            if (hi > lo)
                forward_range(m, &e->work[t], d->x, lo, hi, eval_block, &ctx[t]);
        }
        /* Combine in thread order so the result does not depend on scheduling. */
        double loss = 0.0;
        size_t correct = 0;
        if (confusion)
            memset(confusion, 0, C * C * sizeof(uint64_t));
        for (int t = 0; t < nt; t++) {
            loss += ctx[t].loss;
            correct += ctx[t].correct;
            for (size_t i = 0; confusion && i < C * C; i++)
                confusion[i] += ctx[t].confusion[i];
        }
        *out = (bprop_eval){.loss = d->n ? loss / (double)d->n : NAN,
                            .accuracy = d->n ? (double)correct / (double)d->n : NAN, .n = d->n};
    }
    for (int t = 0; t < nt; t++)
        bp_free(ctx[t].confusion);
    bp_free(ctx);
    bp_engine_free(e);
    return ok ? BPROP_OK : bp_fail(err, BPROP_E_NOMEM, "cannot allocate confusion counts");
}

/* ---- predict ------------------------------------------------------------------------------- */

typedef struct predict_ctx {
    size_t C;
    float *probs; /* (n, C) */
} predict_ctx;

static void predict_block(void *p, size_t first, size_t nb, float *logits, bp_work *w)
{
    predict_ctx *c = p;
    bp_softmax(logits, nb, c->C, w->pred);
    memcpy(c->probs + first * c->C, logits, nb * c->C * sizeof(float));
}

bprop_status bprop_predict(const bprop_model *m, const float *x, size_t n, int threads,
                           float *probs, bprop_error *err)
{
    bprop_status st = check_call(m, threads, err);
    if (st != BPROP_OK)
        return st;
    if (!x || !probs || n == 0)
        return bp_fail(err, BPROP_E_ARG, "prediction needs inputs and an output");
    int nt = bp_resolve_threads(threads);
    bp_engine *e = NULL;
    if (bp_engine_create(m, nt, 0, &e) != BPROP_OK)
        return bp_fail(err, BPROP_E_NOMEM, "cannot allocate prediction buffers");
    predict_ctx ctx = {.C = m->classes, .probs = probs};
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num();
        size_t lo, hi;
        bp_share(n, omp_get_num_threads(), t, &lo, &hi);
        if (hi > lo)
            forward_range(m, &e->work[t], x, lo, hi, predict_block, &ctx);
    }
    bp_engine_free(e);
    return BPROP_OK;
}

/* ---- loss and gradient without an update --------------------------------------------------- */

bprop_status bprop_loss_grad(const bprop_model *m, const float *x, const int32_t *y, size_t n,
                             int threads, double *loss, float *grad, bprop_error *err)
{
    bprop_status st = check_call(m, threads, err);
    if (st != BPROP_OK)
        return st;
    if (!x || !y || !grad || n == 0)
        return bp_fail(err, BPROP_E_ARG, "bprop_loss_grad needs data, labels and a gradient output");
    if ((st = check_labels(m, y, n, err)) != BPROP_OK)
        return st;
    int nt = bp_resolve_threads(threads);
    bp_engine *e = NULL;
    if (bp_engine_create(m, nt, 1, &e) != BPROP_OK)
        return bp_fail(err, BPROP_E_NOMEM, "cannot allocate gradient buffers for %d threads", nt);
    const size_t P = m->layout.total;
    double total = 0.0;
#pragma omp parallel num_threads(nt)
    {
        /* The same split, pass and fixed-order reduction as a training step. */
        int t = omp_get_thread_num(), team = omp_get_num_threads();
        size_t lo, hi, a, b;
        bp_share(n, team, t, &lo, &hi);
        e->slot[t].loss = 0.0;
        e->slot[t].correct = 0;
        if (hi > lo)
            bp_thread_pass(m, &e->work[t], e->grad[t], x, y, NULL, lo, hi, &e->slot[t].loss,
                           &e->slot[t].correct);
#pragma omp barrier
        int active[team];
        int na = bp_active_threads(n, team, active);
        bp_param_chunk(P, team, t, &a, &b);
        if (b > a) {
            bp_sum_buffers(e->grad, active, na, a, b - a, grad + a);
            float inv = 1.0f / (float)n;
            for (size_t p = a; p < b; p++)
                grad[p] *= inv;
        }
#pragma omp single
        for (int u = 0; u < team; u++)
            total += e->slot[u].loss;
    }
    bp_engine_free(e);
    if (loss)
        *loss = total / (double)n;
    return BPROP_OK;
}
