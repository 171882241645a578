/* eval.c: evaluation, prediction and the one-shot loss gradient, all parallel over samples. */
#include "workspace.h"

#include <math.h>
#include <omp.h>
#include <string.h>

static bprop_status check_call(const bprop_workspace *ws, const bprop_model *m, int threads,
                               bprop_error *err)
{
    if (!ws)
        return bp_fail(err, BPROP_E_ARG, "workspace is NULL");
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

/* Per block of samples [first, first + nb), what a forward pass does with the logits. */
typedef void (*logits_fn)(void *ctx, size_t first, size_t nb, float *logits, bp_work *w);

/* A forward pass of a team over the n samples of x, every block's logits handed to fn. */
typedef struct forward_job {
    const bprop_model *m;
    bp_engine *e;      /* buffers for the team */
    bp_src x;          /* (n, D) rows: floats, or bytes converted as gathered */
    size_t n;
    logits_fn fn;
} forward_job;

/* W1 packed by the team for a pass over n samples when a thread runs more than one block (the
 * same rule as the training step's; step.c says why), else NULL. Every thread calls it. */
static const float *packed_w1(bp_engine *e, const bprop_model *m, size_t n, int t, int nth)
{
    if (!e->w1p || (n + (size_t)nth - 1) / (size_t)nth <= BP_BLOCK)
        return NULL;
    bp_engine_pack(e, m, t, nth);
#pragma omp barrier
    return e->w1p;
}

/* Thread t of a team of nth: its contiguous share of the samples, in blocks; fn gets ctx. */
static void forward_share(const forward_job *j, int t, int nth, void *ctx)
{
    size_t lo, hi;
    bp_share(j->n, nth, t, &lo, &hi);
    const float *w1p = packed_w1(j->e, j->m, j->n, t, nth);
    if (hi <= lo)
        return;
    bp_work *w = &j->e->work[t];
    bp_net net = bp_work_net(j->m, w, w1p);
    const bp_batch all = {.X = j->x, .nb = j->n};
    for (size_t s0 = lo; s0 < hi; s0 += BP_BLOCK) {
        size_t nb = hi - s0 < BP_BLOCK ? hi - s0 : BP_BLOCK;
        bp_gather_rows(w, &all, s0, nb);
        bp_forward_block(&net, w->rows, nb, w->h, w->logits, &w->scratch);
        j->fn(ctx, s0, nb, w->logits, w);
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

/* bprop_evaluate's work with checked arguments and buffers e for nt threads. */
static void evaluate(const bprop_model *m, bp_engine *e, const bprop_dataset *d, int nt,
                     bprop_eval *out, uint64_t *confusion)
{
    const size_t C = m->classes;
    eval_ctx ctx[nt];
    for (int t = 0; t < nt; t++)
        ctx[t] = (eval_ctx){.m = m, .y = d->y, .confusion = confusion ? e->work[t].confusion : NULL};
    const forward_job job = {.m = m, .e = e, .x = bp_src_dataset(d), .n = d->n, .fn = eval_block};
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num();
        if (ctx[t].confusion)
            memset(ctx[t].confusion, 0, C * C * sizeof(uint64_t));
        forward_share(&job, t, omp_get_num_threads(), &ctx[t]);
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

bprop_status bprop_evaluate_ws(bprop_workspace *ws, const bprop_model *m, const bprop_dataset *d,
                               int threads, bprop_eval *out, uint64_t *confusion, bprop_error *err)
{
    bprop_status st = check_call(ws, m, threads, err);
    if (st != BPROP_OK)
        return st;
    if (!d || !bp_dataset_has_features(d) || !d->y || !out)
        return bp_fail(err, BPROP_E_ARG, "evaluation needs labelled data and an output");
    if (d->dim != m->inputs)
        return bp_fail(err, BPROP_E_MISMATCH, "data has %zu features per sample, the model expects %zu",
                       d->dim, m->inputs);
    if ((st = check_labels(m, d->y, d->n, err)) != BPROP_OK)
        return st;
    if ((st = bp_workspace_claim(ws, "bprop_evaluate", err)) != BPROP_OK)
        return st;
    int nt = bp_resolve_threads(threads);
    bp_engine *e = bp_workspace_engine(ws, m, nt);
    if (e)
        evaluate(m, e, d, nt, out, confusion);
    bp_workspace_release(ws);
    return e ? BPROP_OK : bp_fail(err, BPROP_E_NOMEM, "cannot allocate evaluation buffers");
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

bprop_status bprop_predict_ws(bprop_workspace *ws, const bprop_model *m, const float *x, size_t n,
                              int threads, float *probs, bprop_error *err)
{
    bprop_status st = check_call(ws, m, threads, err);
    if (st != BPROP_OK)
        return st;
    if (!x || !probs || n == 0)
        return bp_fail(err, BPROP_E_ARG, "prediction needs inputs and an output");
    if ((st = bp_workspace_claim(ws, "bprop_predict", err)) != BPROP_OK)
        return st;
    int nt = bp_resolve_threads(threads);
    bp_engine *e = bp_workspace_engine(ws, m, nt);
    if (!e) {
        bp_workspace_release(ws);
        return bp_fail(err, BPROP_E_NOMEM, "cannot allocate prediction buffers");
    }
    predict_ctx ctx = {.C = m->classes, .probs = probs};
    const forward_job job = {.m = m, .e = e, .x = bp_src_floats(x, m->inputs), .n = n, .fn = predict_block};
#pragma omp parallel num_threads(nt)
    forward_share(&job, omp_get_thread_num(), omp_get_num_threads(), &ctx);
    bp_workspace_release(ws);
    return BPROP_OK;
}

/* ---- loss and gradient without an update --------------------------------------------------- */

/* No more threads than the step can give work to: a block of samples or a block of hidden
 * units each. The exact sums make the gradient the same for any count, and a thread with
 * nothing to do would still cost the team its start and its barriers. */
static int useful_threads(const bprop_model *m, size_t n, int nt)
{
    const size_t sample_blocks = (n + BP_BLOCK - 1) / BP_BLOCK;
    const size_t hidden_blocks = (m->hidden + BP_HBLOCK - 1) / BP_HBLOCK;
    const size_t useful = sample_blocks > hidden_blocks ? sample_blocks : hidden_blocks;
    return (size_t)nt > useful ? (int)useful : nt;
}

bprop_status bprop_loss_grad_ws(bprop_workspace *ws, const bprop_model *m, const float *x,
                                const int32_t *y, size_t n, int threads, double *loss, float *grad,
                                bprop_error *err)
{
    bprop_status st = check_call(ws, m, threads, err);
    if (st != BPROP_OK)
        return st;
    if (!x || !y || !grad || n == 0)
        return bp_fail(err, BPROP_E_ARG, "bprop_loss_grad needs data, labels and a gradient output");
    if (n > (size_t)BP_FIXED_MAX_BLOCKS * BP_BLOCK)
        return bp_fail(err, BPROP_E_SIZE, "bprop_loss_grad: %zu samples, at most %zu in one call", n,
                       (size_t)BP_FIXED_MAX_BLOCKS * BP_BLOCK);
    if ((st = check_labels(m, y, n, err)) != BPROP_OK)
        return st;
    if ((st = bp_workspace_claim(ws, "bprop_loss_grad", err)) != BPROP_OK)
        return st;
    const int nt = useful_threads(m, n, bp_resolve_threads(threads));
    bp_stepper *s = bp_workspace_stepper(ws, m, nt);
    if (!s) {
        bp_workspace_release(ws);
        return bp_fail(err, BPROP_E_NOMEM, "cannot allocate gradient buffers for %d threads", nt);
    }
    /* One training step over all n samples as a single batch, with the gradient as output
     * instead of an update: the same blocks, kernels and exact sums as training. */
    const bp_src src = bp_src_floats(x, m->inputs);
    bp_stepper_prepare(s, &src, n);
    bp_step_io io = {.b = {.X = src, .Y = y, .nb = n}, .grad_out = grad};
#pragma omp parallel num_threads(nt)
    bp_step(s, omp_get_thread_num(), omp_get_num_threads(), &io);
    int diverged = s->diverged;
    double total = s->loss;
    bp_workspace_release(ws);
    if (diverged)
        return bp_fail(err, BPROP_E_NONFINITE, "bprop_loss_grad: the loss or gradient is not finite");
    if (loss)
        *loss = total / (double)n;
    return BPROP_OK;
}

/* ---- the calls with buffers of their own ------------------------------------------------- */

bprop_status bprop_evaluate(const bprop_model *m, const bprop_dataset *d, int threads,
                            bprop_eval *out, uint64_t *confusion, bprop_error *err)
{
    bprop_workspace ws;
    bp_workspace_init(&ws);
    bprop_status st = bprop_evaluate_ws(&ws, m, d, threads, out, confusion, err);
    bp_workspace_clear(&ws);
    return st;
}

bprop_status bprop_predict(const bprop_model *m, const float *x, size_t n, int threads,
                           float *probs, bprop_error *err)
{
    bprop_workspace ws;
    bp_workspace_init(&ws);
    bprop_status st = bprop_predict_ws(&ws, m, x, n, threads, probs, err);
    bp_workspace_clear(&ws);
    return st;
}

bprop_status bprop_loss_grad(const bprop_model *m, const float *x, const int32_t *y, size_t n,
                             int threads, double *loss, float *grad, bprop_error *err)
{
    bprop_workspace ws;
    bp_workspace_init(&ws);
    bprop_status st = bprop_loss_grad_ws(&ws, m, x, y, n, threads, loss, grad, err);
    bp_workspace_clear(&ws);
    return st;
}
