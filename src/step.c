/* step.c: one parallel SGD step: data or hidden split, exact gradient combination, update. */
#include "step.h"

#include <math.h>
#include <omp.h>
#include <string.h>

/* ---- set-up ---------------------------------------------------------------------------------- */

void bp_stepper_free(bp_stepper *s)
{
    if (!s)
        return;
    for (int t = 0; t < s->threads; t++) {
        if (s->acc)
            bp_free(s->acc[t]);
        if (s->logits)
            bp_free(s->logits[t]);
        if (s->labels)
            bp_free(s->labels[t]);
        if (s->pred)
            bp_free(s->pred[t]);
    }
    bp_free(s->acc);
    bp_free(s->logits);
    bp_free(s->labels);
    bp_free(s->pred);
    bp_free(s->dsum);
    bp_free(s->gsh);
    bp_free(s->gw2t);
    bp_free(s->hbuf);
    bp_free(s->part);
    bp_engine_free(s->e);
    bp_free(s);
}

bprop_status bp_stepper_create(bprop_model *m, int threads, size_t batch,
                               const bprop_train_config *cfg, float *velocity,
                               const bprop_comm *comm, bp_stepper **out)
{
    bp_stepper *s = bp_alloc(1, sizeof *s);
    if (!s)
        return BPROP_E_NOMEM;
    *s = (bp_stepper){.m = m, .threads = threads, .batch = batch, .cfg = *cfg,
                      .reproducible = cfg->reproducible, .parallel = cfg->parallel,
                      .velocity = velocity, .comm = comm};
    const size_t P = m->layout.total, H = m->hidden, C = m->classes, T = (size_t)threads;
    const size_t nhb = (H + BP_HBLOCK - 1) / BP_HBLOCK;
    bprop_status st = bp_engine_create(m, threads, 1, &s->e);
    int ok = st == BPROP_OK;
    ok = ok && (s->acc = bp_alloc(T, sizeof *s->acc)) && (s->logits = bp_alloc(T, sizeof *s->logits)) &&
         (s->labels = bp_alloc(T, sizeof *s->labels)) && (s->pred = bp_alloc(T, sizeof *s->pred));
    for (int t = 0; ok && t < threads; t++)
        ok = (s->acc[t] = bp_alloc(P, sizeof(int64_t))) && (s->logits[t] = bp_alloc(batch * C, sizeof(float))) &&
             (s->labels[t] = bp_alloc(batch, sizeof(int32_t))) && (s->pred[t] = bp_alloc(batch, sizeof(int32_t)));
    ok = ok && (s->gsh = bp_alloc(P, sizeof(float))) && (s->gw2t = bp_alloc(C * H, sizeof(float))) &&
         (s->hbuf = bp_alloc(batch * H, sizeof(float))) && (s->part = bp_alloc(nhb * batch * C, sizeof(float)));
    if (ok && comm && !s->reproducible)
        ok = (s->dsum = bp_alloc(P, sizeof(double))) != NULL;
    if (!ok) {
        bp_stepper_free(s);
        return BPROP_E_NOMEM;
    }
    *out = s;
    return BPROP_OK;
}

static double max_abs(const float *p, size_t n)
{
    float m = 0.0f;
#pragma omp simd reduction(max : m)
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(p[i]);
        m = a > m ? a : m;
    }
    return m;
}

void bp_stepper_prepare(bp_stepper *s, const bp_src *X, size_t n, int same_data)
{
    /* A pass over the whole data: once per training set, not once per epoch. */
    if (!same_data || bp_src_id(X) != s->bounds_of || n != s->bounds_n) {
        bp_src_bounds(X, n, s->e->work[0].xbuf, &s->xinf, &s->x1);
        s->bounds_of = bp_src_id(X);
        s->bounds_n = n;
    }
    /* The slots carry the parameters' magnitudes from one step's update to the next step's
     * scales; seed them from the whole model. */
    for (int t = 0; t < s->threads; t++) {
        memset(s->e->slot[t].wmax, 0, sizeof s->e->slot[t].wmax);
        s->e->slot[t].w1p_fresh = 0; /* W1 may have changed since: the first step packs */
    }
    for (int k = 0; k < BPROP_TENSORS; k++)
        s->e->slot[0].wmax[k] = max_abs(s->m->params + s->m->layout.offset[k], s->m->layout.count[k]);
}

/* ---- who does what ------------------------------------------------------------------------- */

/* This rank's blocks [*b0, *b1) of a batch of nb samples, and their samples [*lo, *hi). */
static void rank_share(const bp_stepper *s, size_t nb, size_t *b0, size_t *b1, size_t *lo, size_t *hi)
{
    const size_t nblk = (nb + BP_BLOCK - 1) / BP_BLOCK;
    const int rank = s->comm ? s->comm->rank : 0, ranks = s->comm ? s->comm->size : 1;
    bp_share(nblk, ranks, rank, b0, b1);
    *lo = *b0 * BP_BLOCK < nb ? *b0 * BP_BLOCK : nb;
    *hi = *b1 * BP_BLOCK < nb ? *b1 * BP_BLOCK : nb;
}

int bp_step_uses_hidden(const bp_stepper *s, size_t nb, int nt)
{
    const size_t nhb = (s->m->hidden + BP_HBLOCK - 1) / BP_HBLOCK;
    if (nt < 2 || nhb < (size_t)nt)
        return 0; /* the hidden split needs a block of hidden units per thread */
    if (s->parallel != BPROP_PARALLEL_AUTO)
        return s->parallel == BPROP_PARALLEL_HIDDEN;
    /* Auto: the data split leaves threads idle when the rank holds fewer blocks than threads;
     * otherwise it measured as fast or faster (README "Measured results"). */
    size_t b0, b1, lo, hi;
    rank_share(s, nb, &b0, &b1, &lo, &hi);
    return (b1 - b0) < (size_t)nt;
}

/* ---- the passes ------------------------------------------------------------------------------ */

static size_t sample_at(const bp_batch *b, size_t r) { return b->idx ? b->idx[r] : b->first + r; }

/* Float sums of one canonical block [lo, hi) into the thread's buffer, then into its int64
 * accumulator (first: overwrite). */
static void data_block(bp_stepper *s, int tid, const float *w1p, const bp_batch *b, size_t lo,
                       size_t hi, int first, int fused, bp_w1_update *upd)
{
    const bprop_model *m = s->m;
    float *g = s->e->grad[tid];
    bp_slot *slot = &s->e->slot[tid];
    bp_thread_pass(m, &s->e->work[tid], w1p, g, &b->X, b->Y, b->idx, b->idx ? lo : b->first + lo,
                   b->idx ? hi : b->first + hi, &slot->loss, &slot->correct, upd);
    if (fused)
        return; /* the update rounds the float sums itself */
    for (int k = 0; k < BPROP_TENSORS; k++) {
        size_t off = m->layout.offset[k];
        double big = bp_fixed_add(s->acc[tid] + off, g + off, m->layout.count[k], s->sc.scale[k], first);
        slot->big = fmax(slot->big, big);
    }
}

/* Data split: thread tid takes a contiguous share of this rank's blocks. */
static void data_pass(bp_stepper *s, int tid, int nt, const float *w1p, const bp_batch *b, int fused,
                      bp_w1_update *upd)
{
    size_t b0, b1, lo, hi, t0, t1;
    rank_share(s, b->nb, &b0, &b1, &lo, &hi);
    bp_share(b1 - b0, nt, tid, &t0, &t1);
    for (size_t q = b0 + t0; q < b0 + t1; q++) {
        size_t slo = q * BP_BLOCK, shi = slo + BP_BLOCK < b->nb ? slo + BP_BLOCK : b->nb;
        data_block(s, tid, w1p, b, slo, shi, q == b0 + t0, fused, upd);
    }
}

/* Float path (reproducible = 0): contiguous sample shares summed in float, as each layout's
 * own deterministic order. */
static void float_pass(bp_stepper *s, int tid, int nt, const float *w1p, const bp_batch *b,
                       bp_w1_update *upd)
{
    size_t b0, b1, lo, hi, t0, t1;
    rank_share(s, b->nb, &b0, &b1, &lo, &hi);
    bp_share(hi - lo, nt, tid, &t0, &t1);
    if (t1 > t0) {
        bp_slot *slot = &s->e->slot[tid];
        size_t a = lo + t0, z = lo + t1;
        bp_thread_pass(s->m, &s->e->work[tid], w1p, s->e->grad[tid], &b->X, b->Y, b->idx,
                       b->idx ? a : b->first + a, b->idx ? z : b->first + z, &slot->loss, &slot->correct,
                       upd);
    }
}

/* The hidden-unit view [j0, j1) of the model, with W2 transposed into the thread's work. */
static bp_net slice_net(const bp_stepper *s, int tid, const float *w1p, size_t j0, size_t j1)
{
    bp_net net = bp_work_net(s->m, &s->e->work[tid], w1p);
    net.H = j1 - j0;
    net.w1 += j0;
    if (net.w1p)
        net.w1p += j0 * net.D;
    net.w2t += j0;
    if (net.b1)
        net.b1 += j0;
    return net;
}

/* A rank without samples adds zeros to the sum over ranks: clear the slice's accumulators. */
static void hidden_zero(bp_stepper *s, int tid, size_t j0, size_t j1)
{
    const bprop_model *m = s->m;
    const bprop_layout *L = &m->layout;
    const size_t H = m->hidden, C = m->classes, W = j1 - j0;
    int64_t *acc = s->acc[0];
    for (size_t k = 0; k < m->inputs; k++)
        memset(acc + L->offset[BPROP_W1] + k * H + j0, 0, W * sizeof(int64_t));
    memset(acc + L->offset[BPROP_W2] + j0 * C, 0, W * C * sizeof(int64_t));
    if (m->has_bias) {
        memset(acc + L->offset[BPROP_B1] + j0, 0, W * sizeof(int64_t));
        if (tid == 0)
            memset(acc + L->offset[BPROP_B2], 0, C * sizeof(int64_t));
    }
}

/* Hidden split, forward: h of the slice for this rank's samples [lo, hi), and the slice's
 * partial logits into the shared (nhb, hi - lo, C) array. */
static void hidden_forward(bp_stepper *s, int tid, const bp_net *v, size_t q0, const bp_batch *b,
                           size_t lo, size_t hi)
{
    const bprop_model *m = s->m;
    const size_t C = m->classes, nr = hi - lo, W = v->H;
    const size_t nq = (W + BP_HBLOCK - 1) / BP_HBLOCK;
    bp_work *w = &s->e->work[tid];
    float *h = s->hbuf + s->batch * (q0 * BP_HBLOCK); /* (batch, W) this slice's rows */
    for (size_t s0 = lo; s0 < hi; s0 += BP_BLOCK) {
        size_t nbk = hi - s0 < BP_BLOCK ? hi - s0 : BP_BLOCK;
        for (size_t r = 0; r < nbk; r++)
            w->rows[r] = bp_src_row(&b->X, sample_at(b, s0 + r), w->xbuf + r * w->xstride);
        float *hs = h + (s0 - lo) * W;
        bp_forward_hidden(v, w->rows, nbk, hs, &w->scratch);
        bp_logits_partial(v, nbk, hs, w->scratch.part);
        for (size_t q = 0; q < nq; q++)
            memcpy(s->part + ((q0 + q) * nr + (s0 - lo)) * C, w->scratch.part + q * nbk * C,
                   nbk * C * sizeof(float));
    }
}

/* Fixed-point conversion of the slice's float block sums (first block: overwrite). */
static void hidden_convert(bp_stepper *s, int tid, size_t j0, size_t j1, int first)
{
    const bprop_model *m = s->m;
    const bprop_layout *L = &m->layout;
    const size_t D = m->inputs, H = m->hidden, C = m->classes, W = j1 - j0;
    int64_t *acc = s->acc[0];
    double big = 0.0;
    for (size_t k = 0; k < D; k++) {
        size_t off = L->offset[BPROP_W1] + k * H + j0;
        big = fmax(big, bp_fixed_add(acc + off, s->gsh + off, W, s->sc.scale[BPROP_W1], first));
    }
    if (m->has_bias) {
        size_t off = L->offset[BPROP_B1] + j0;
        big = fmax(big, bp_fixed_add(acc + off, s->gsh + off, W, s->sc.scale[BPROP_B1], first));
    }
    big = fmax(big, bp_fixed_add_t(acc + L->offset[BPROP_W2] + j0 * C, s->gw2t + j0, H, W, C,
                                   s->sc.scale[BPROP_W2], first));
    if (m->has_bias && tid == 0) {
        size_t off = L->offset[BPROP_B2];
        big = fmax(big, bp_fixed_add(acc + off, s->gsh + off, C, s->sc.scale[BPROP_B2], first));
    }
    s->e->slot[tid].big = fmax(s->e->slot[tid].big, big);
}

/* Hidden split, after the partial logits of every slice are in: each thread forms all the
 * logits (the same sums in the same order as bp_forward_block), then backpropagates its slice
 * block by block. Thread 0 keeps the loss and owns db2. */
static void hidden_backward(bp_stepper *s, int tid, const bp_net *v, size_t j0, size_t j1,
                            const bp_batch *b, size_t lo, size_t hi, int fused, int float_sums,
                            bp_w1_update *upd)
{
    const bprop_model *m = s->m;
    const bprop_layout *L = &m->layout;
    const size_t H = m->hidden, C = m->classes, nr = hi - lo, W = j1 - j0;
    const size_t nhb = (H + BP_HBLOCK - 1) / BP_HBLOCK;
    bp_work *w = &s->e->work[tid];
    bp_slot *slot = &s->e->slot[tid];
    float *z = s->logits[tid];
    int32_t *y = s->labels[tid];
    for (size_t r = 0; r < nr; r++)
        y[r] = b->Y[sample_at(b, lo + r)];
    bp_logits_combine(v->b2, s->part, nhb, nr, C, z);
    double loss = bp_softmax_xent(z, y, nr, C, s->pred[tid]);
    if (tid == 0) {
        slot->loss += loss;
        for (size_t r = 0; r < nr; r++)
            slot->correct += s->pred[tid][r] == y[r];
    }
    float *h = s->hbuf + s->batch * j0;
    bp_grads g = {.w1 = s->gsh + L->offset[BPROP_W1] + j0,
                  .b1 = m->has_bias ? s->gsh + L->offset[BPROP_B1] + j0 : NULL,
                  .w2t = s->gw2t + j0,
                  .b2 = m->has_bias && tid == 0 ? s->gsh + L->offset[BPROP_B2] : NULL};
    /* In the last block's pass; a non-finite loss stops training without an update. */
    bp_w1_update *last_upd = upd && isfinite(loss) ? upd : NULL;
    for (size_t s0 = lo; s0 < hi; s0 += BP_BLOCK) {
        size_t nbk = hi - s0 < BP_BLOCK ? hi - s0 : BP_BLOCK;
        for (size_t r = 0; r < nbk; r++)
            w->rows[r] = bp_src_row(&b->X, sample_at(b, s0 + r), w->xbuf + r * w->xstride);
        /* Byte rows are converted into the buffer hidden_forward's blocks used, so the same row
         * pointers no longer mean the same samples: the zero-input bitmaps the kernels keep for
         * the next backward call (by pointer) would describe another block. */
        if (!b->X.x)
            w->scratch.nz_n = 0;
        /* Exact: each block's float sums from zero, then into int64. Float sums: one chain per
         * entry over every block, as one thread's pass forms it. */
        const int fresh = !float_sums || s0 == lo;
        if (fresh) {
            for (size_t c = 0; c < C; c++)
                memset(g.w2t + c * H, 0, W * sizeof(float));
            if (g.b1)
                memset(g.b1, 0, W * sizeof(float));
            if (g.b2)
                memset(g.b2, 0, C * sizeof(float));
        }
        g.w1_update = s0 + nbk == hi ? last_upd : NULL;
        if (g.w1_update)
            upd->applied = 1;
        bp_backward_block(v, w->rows, nbk, h + (s0 - lo) * W, z + (s0 - lo) * C, &g, fresh,
                          &w->scratch);
        if (!fused && !float_sums)
            hidden_convert(s, tid, j0, j1, s0 == lo);
    }
    if (fused || float_sums) /* the update reads W2's sums from gsh, in the model's (H, C) layout */
        for (size_t j = j0; j < j1; j++)
            for (size_t c = 0; c < C; c++)
                s->gsh[L->offset[BPROP_W2] + j * C + c] = s->gw2t[c * H + j];
}

/* ---- combining ------------------------------------------------------------------------------- */

/* acc[0][a, b) = sum over the active threads' accumulators (exact; thread order irrelevant). */
static void sum_accumulators(bp_stepper *s, const int *active, int nt, size_t a, size_t b)
{
    int64_t *dst = s->acc[0];
    if (!active[0])
        memset(dst + a, 0, (b - a) * sizeof(int64_t));
    for (int u = 1; u < nt; u++) {
        if (!active[u])
            continue;
        bp_add_i64(dst + a, s->acc[u] + a, b - a);
    }
}

/* Float path: the fixed-order sum of the active threads' buffers into grad[first active]. */
static void sum_floats(bp_stepper *s, const int *active, int nt, size_t a, size_t b)
{
    int ids[nt], na = 0;
    for (int u = 0; u < nt; u++)
        if (active[u])
            ids[na++] = u;
    if (na > 0 && b > a)
        bp_sum_buffers(s->e->grad, ids, na, a, b - a, s->e->grad[ids[0]] + a);
}

/* ---- the update ------------------------------------------------------------------------------ */

/* One contiguous run of parameters inside a single tensor. */
typedef struct seg {
    size_t p, n;    /* first index in the flat block, length */
    int tensor;
} seg;

/* The mean gradient of run r into g (n floats). */
typedef struct grad_src {
    bp_stepper *s;
    int fixed;           /* 1: from acc[0], or rounded from src when fused; 0: from src */
    int fused;           /* a single-block batch: src holds its float sums (see bp_fixed_round) */
    bp_slot *slot;       /* fused: where the largest scaled magnitude goes */
    const float *src;    /* (params) float sums (float path) */
    float inv_nb;
} grad_src;

static void mean_grad(const grad_src *q, seg r, float *g)
{
    if (q->fused) {
        double big = bp_fixed_round(q->src + r.p, r.n, q->s->sc.scale[r.tensor],
                                    q->s->sc.unscale[r.tensor] * (double)q->inv_nb, g);
        q->slot->big = big > q->slot->big ? big : q->slot->big;
    } else if (q->fixed) {
        bp_fixed_to_float(q->s->acc[0] + r.p, r.n, q->s->sc.unscale[r.tensor] * (double)q->inv_nb, g);
    } else {
        const float *src = q->src + r.p;
        for (size_t i = 0; i < r.n; i++)
            g[i] = src[i] * q->inv_nb;
    }
}

static float decay_of(const bp_stepper *s, int tensor)
{
    return (tensor == BPROP_W1 || tensor == BPROP_W2) ? s->cfg.weight_decay : 0.0f;
}

/* The SGD settings of one tensor's update. */
static bp_sgd_params sgd_params(const bp_stepper *s, int tensor, float lr, float clip)
{
    return (bp_sgd_params){.lr = lr, .momentum = s->cfg.momentum, .decay = decay_of(s, tensor),
                           .clip = clip, .nesterov = s->cfg.nesterov};
}

/* SGD with momentum on run r given its mean gradient g: u = (g + decay w) clip, v = mu v + u,
 * w -= lr (Nesterov ? u + mu v : v). Records |w|'s maximum. */
static void sgd_run(bp_stepper *s, bp_slot *slot, seg r, const float *g, float lr, float clip)
{
    const bp_sgd_params p = sgd_params(s, r.tensor, lr, clip);
    float wmax = bp_sgd(s->m->params + r.p, s->velocity + r.p, g, r.n, &p);
    slot->wmax[r.tensor] = fmax(slot->wmax[r.tensor], wmax);
}

/* SINK_UPDATE of run r from fixed-point sums (int64, or float sums rounded on the fly when
 * fused): conversion, squared norm and update in one pass (bp_sgd_fixed), the same bits as
 * mean_grad then sgd_run. */
static void sgd_run_fixed(bp_stepper *s, const grad_src *q, seg r, float lr)
{
    const bp_sgd_params p = sgd_params(s, r.tensor, lr, 1.0f);
    bp_slot *slot = q->slot;
    float wmax = bp_sgd_fixed(s->m->params + r.p, s->velocity + r.p,
                              q->fused ? NULL : s->acc[0] + r.p, q->fused ? q->src + r.p : NULL, r.n,
                              s->sc.scale[r.tensor], s->sc.unscale[r.tensor] * (double)q->inv_nb, &p,
                              &slot->big, &slot->norm2[r.tensor]);
    slot->wmax[r.tensor] = fmax(slot->wmax[r.tensor], wmax);
}

static double sumsq(const float *g, size_t n)
{
    double a = 0.0;
#pragma omp simd reduction(+ : a)
    for (size_t i = 0; i < n; i++)
        a += (double)g[i] * g[i];
    return a;
}

/* Reduce-and-update block: small enough to live in L1 between the sum and the update. */
#define UPDATE_BLOCK 512

/* What to do with each run of this thread's part. */
typedef enum sink { SINK_UPDATE, SINK_OUTPUT, SINK_CLIP_PREPARE, SINK_CLIP_UPDATE } sink;

typedef struct update_ctx {
    bp_stepper *s;
    bp_slot *slot;
    grad_src src;
    sink what;
    float lr, clip;
    float *out;   /* SINK_OUTPUT: (params) */
    int e2;       /* SINK_CLIP_PREPARE: exponent of the exact squares */
    int skip_w1;  /* W1 was updated in the backward pass (bp_w1_update) */
} update_ctx;

static void do_run(update_ctx *x, seg r)
{
    bp_stepper *s = x->s;
    if (x->what == SINK_UPDATE && x->src.fixed) {
        sgd_run_fixed(s, &x->src, r, x->lr);
        return;
    }
    for (size_t p = r.p; p < r.p + r.n; p += UPDATE_BLOCK) {
        seg q = {p, r.p + r.n - p < UPDATE_BLOCK ? r.p + r.n - p : UPDATE_BLOCK, r.tensor};
        float g[UPDATE_BLOCK];
        switch (x->what) {
        case SINK_OUTPUT:
            mean_grad(&x->src, q, x->out + q.p);
            break;
        case SINK_UPDATE:
            mean_grad(&x->src, q, g);
            x->slot->norm2[q.tensor] += sumsq(g, q.n);
            sgd_run(s, x->slot, q, g, x->lr, 1.0f);
            break;
        case SINK_CLIP_PREPARE: {
            /* The gradient waits in gsh for the clip factor; the squares of the update
             * direction u = g + decay w go into the exact sum. */
            float *gs = s->gsh + q.p, u[UPDATE_BLOCK];
            const float *w = s->m->params + q.p, wd = decay_of(s, q.tensor);
            mean_grad(&x->src, q, gs);
            x->slot->norm2[q.tensor] += sumsq(gs, q.n);
            for (size_t i = 0; i < q.n; i++)
                u[i] = gs[i] + wd * w[i];
            bp_sq_add(&x->slot->sq, u, q.n, x->e2);
            break;
        }
        case SINK_CLIP_UPDATE:
            sgd_run(s, x->slot, q, s->gsh + q.p, x->lr, x->clip);
            break;
        }
    }
}

/* Data split: thread tid's chunk of the flat block, cut at tensor boundaries. */
static void for_chunk(update_ctx *x, int tid, int nt)
{
    const bprop_layout *L = &x->s->m->layout;
    size_t a, b;
    bp_param_chunk(L->total, nt, tid, &a, &b);
    for (int k = 0; k < BPROP_TENSORS; k++) {
        if (k == BPROP_W1 && x->skip_w1)
            continue;
        size_t lo = L->offset[k] > a ? L->offset[k] : a, hi = L->offset[k] + L->count[k];
        hi = hi < b ? hi : b;
        if (hi > lo)
            do_run(x, (seg){lo, hi - lo, k});
    }
}

/* Hidden split: thread tid's columns of W1, entries of b1, rows of W2, and b2 for thread 0. */
static void for_slice(update_ctx *x, int tid, int nt)
{
    const bprop_model *m = x->s->m;
    const bprop_layout *L = &m->layout;
    const size_t H = m->hidden, C = m->classes;
    size_t j0, j1;
    bp_hidden_slice(H, nt, tid, &j0, &j1);
    if (j1 > j0) {
        for (size_t k = 0; k < m->inputs && !x->skip_w1; k++)
            do_run(x, (seg){L->offset[BPROP_W1] + k * H + j0, j1 - j0, BPROP_W1});
        if (m->has_bias)
            do_run(x, (seg){L->offset[BPROP_B1] + j0, j1 - j0, BPROP_B1});
        do_run(x, (seg){L->offset[BPROP_W2] + j0 * C, (j1 - j0) * C, BPROP_W2});
    }
    if (m->has_bias && tid == 0)
        do_run(x, (seg){L->offset[BPROP_B2], C, BPROP_B2});
}

static void for_part(update_ctx *x, int tid, int nt, int hidden)
{
    if (hidden)
        for_slice(x, tid, nt);
    else
        for_chunk(x, tid, nt);
}

/* Largest |u| the clipping norm can meet: the batch-mean gradient stays under the per-sample
 * bound (the fixed-point scale's 2^50 / (2 block)), plus the weight-decay term. */
static double update_bound(const bp_stepper *s, const double wmax[BPROP_TENSORS])
{
    double b = 0.0;
    for (int k = 0; k < BPROP_TENSORS; k++) {
        double g = ldexp(s->sc.unscale[k], 50) / (2.0 * BP_BLOCK);
        double u = g + decay_of(s, k) * wmax[k];
        b = u > b ? u : b;
    }
    return b;
}

/* ---- the step -------------------------------------------------------------------------------- */

/* Thread 0 between the pass and the update: the step's loss over all threads and ranks, the
 * exact sum over ranks, divergence and stopping, agreed by every rank. */
static void combine_ranks(bp_stepper *s, int nt, const bp_step_io *io, int fixed,
                          const float *fsum)
{
    double loss = 0.0, correct = 0.0, big = 0.0;
    for (int u = 0; u < nt; u++) {
        loss += s->e->slot[u].loss;
        correct += (double)s->e->slot[u].correct;
        big = fmax(big, s->e->slot[u].big);
    }
    const int out_of_range = s->bad_scales || !(big < BP_FIXED_LIMIT);
    const int cancel = io->cancel && *io->cancel;
    double v[4] = {loss, correct, cancel ? 1.0 : 0.0, out_of_range ? 1.0 : 0.0};
    int failed = 0;
    const bprop_comm *c = s->comm;
    const size_t P = s->m->layout.total;
    if (c && c->size > 1) {
        failed |= c->sum_f64(c->ctx, v, 4) != 0;
        if (fixed) {
            failed |= c->sum_i64(c->ctx, s->acc[0], P) != 0;
        } else {
            /* Each layout's own float sum, widened for the transfer (reproducible = 0). */
            float *g = s->e->grad[0];
            for (size_t i = 0; i < P; i++)
                s->dsum[i] = fsum ? fsum[i] : 0.0;
            failed |= c->sum_f64(c->ctx, s->dsum, P) != 0;
            for (size_t i = 0; i < P; i++)
                g[i] = (float)s->dsum[i];
        }
    }
    s->loss = v[0];
    s->correct = v[1];
    s->diverged = failed || !isfinite(v[0]) || v[3] > 0.0;
    s->cancelled = !s->diverged && v[2] > 0.0;
    s->stop = s->diverged || s->cancelled;
    if (!s->diverged && io->after_pass && io->after_pass(io->ctx, s, io->b.nb))
        s->stop = 1;
}

static void reset_slot(bp_slot *slot)
{
    slot->upd = (bp_w1_update){0};
    slot->loss = 0.0;
    slot->correct = 0;
    slot->big = 0.0;
    memset(slot->norm2, 0, sizeof slot->norm2);
    memset(&slot->sq, 0, sizeof slot->sq);
}

/* The float path's fixed-order sum went to the first active thread's buffer; NULL when this
 * rank had no samples. */
static const float *float_sum_buffer(const bp_stepper *s, const int *active, int nt)
{
    for (int u = 0; u < nt; u++)
        if (active[u])
            return s->e->grad[u];
    return NULL;
}

/* Which threads hold a share: every thread derives the same answer. */
static void find_active(const bp_stepper *s, const bp_batch *b, int nt, int hidden, int fixed,
                        int *active)
{
    size_t b0, b1, lo, hi, t0, t1;
    rank_share(s, b->nb, &b0, &b1, &lo, &hi);
    for (int u = 0; u < nt; u++) {
        if (!fixed)
            bp_share(hi - lo, nt, u, &t0, &t1);
        else
            bp_share(b1 - b0, nt, u, &t0, &t1);
        active[u] = hidden || t1 > t0;
    }
}

/* Whether this step updates W1 inside the backward pass (bp_w1_update): a training step on one
 * process, without clipping (whose factor needs the whole gradient first), where one thread
 * ends up with the whole sum of each W1 entry: an exact step of one block, or float sums of a
 * single thread or of a hidden split (each thread owns its slice). Storing dW1 and reading it
 * back in a separate pass is a large share of the small batches' steps. Every thread derives
 * the same answer. */
static int w1_in_pass(const bp_stepper *s, const bp_step_io *io, int nt, int hidden, int fixed,
                      int ranks)
{
    const int one_block = io->b.nb <= BP_BLOCK;
    return !io->grad_out && s->velocity && !ranks && !(s->cfg.clip_norm > 0.0f) &&
           (fixed ? one_block : nt == 1 || hidden) && !s->bad_scales;
}

/* This thread's W1 update settings: its slice of W1 for the hidden split, all of it otherwise
 * (only the thread that runs the block uses them). The mean gradient is formed as mean_grad
 * forms it. */
static void w1_update_setup(bp_stepper *s, const bp_step_io *io, int tid, int nt, int hidden,
                            int fixed, float *w1p, bp_w1_update *u)
{
    const bprop_model *m = s->m;
    size_t j0 = 0, j1 = m->hidden, off = m->layout.offset[BPROP_W1];
    if (hidden)
        bp_hidden_slice(m->hidden, nt, tid, &j0, &j1);
    const float inv_nb = 1.0f / (float)io->b.nb;
    *u = (bp_w1_update){.w = s->m->params + off + j0, .v = s->velocity + off + j0, .ld = m->hidden,
                        .w1p = w1p ? w1p + j0 * m->inputs : NULL, .H = j1 - j0,
                        .fixed = fixed, .scale = s->sc.scale[BPROP_W1],
                        .mul = s->sc.unscale[BPROP_W1] * (double)inv_nb, .inv_nb = inv_nb,
                        .p = sgd_params(s, BPROP_W1, io->lr, 1.0f)};
}

/* The most forward blocks one thread runs this step. With one, packing W1 into the engine's
 * shared buffer costs more than it saves: the kernels then pack each panel into their own small
 * buffer, which stays in L2, while the shared pack writes all of W1 to memory and reads it back
 * (measured on AVX2: 12% slower at batch 32, 9% faster at batch 512, one thread). */
static size_t blocks_per_thread(const bp_stepper *s, const bp_batch *b, int nt, int hidden, int fixed)
{
    size_t b0, b1, lo, hi;
    rank_share(s, b->nb, &b0, &b1, &lo, &hi);
    if (hidden)
        return b1 - b0; /* each thread runs every block of the rank over its slice */
    if (fixed)
        return (b1 - b0 + (size_t)nt - 1) / (size_t)nt;
    const size_t share = (hi - lo + (size_t)nt - 1) / (size_t)nt; /* float path: sample shares */
    return (share + BP_BLOCK - 1) / BP_BLOCK;
}

void bp_step(bp_stepper *s, int tid, int nt, const bp_step_io *io)
{
    const bp_batch *b = &io->b;
    bp_slot *slot = &s->e->slot[tid];
    /* Exact sums when asked for, and for a hidden split over several ranks (their partial sums
     * meet in int64). On one process the hidden split needs no reduction at all: in float mode
     * each thread sums its slice block after block, the same chains as one thread's pass, so
     * it trains the same bits as one thread. */
    const int hidden = bp_step_uses_hidden(s, b->nb, nt);
    const int ranks = s->comm && s->comm->size > 1;
    const int fixed = s->reproducible || (hidden && ranks), float_hidden = hidden && !fixed;
    /* A batch of one block on one process needs no int64 sum: the update rounds its float sums
     * to the same values on the fly (not with clipping, whose norm is taken first). */
    const int fused = fixed && !ranks && b->nb <= BP_BLOCK && !(s->cfg.clip_norm > 0.0f);
    /* The scales come from the parameters' magnitudes the previous update left in the slots;
     * every slot is read before any is reset. */
    double wmax[BPROP_TENSORS] = {0};
    for (int u = 0; u < s->threads; u++)
        for (int k = 0; k < BPROP_TENSORS; k++)
            wmax[k] = fmax(wmax[k], s->e->slot[u].wmax[k]);
    if (tid == 0)
        s->bad_scales = !bp_make_scales(wmax, s->xinf, s->x1, BP_BLOCK, &s->sc);
    /* W1 packed once for every block of the step (the barrier completes it), where threads
     * run several blocks each; see blocks_per_thread. */
    const float *w1p = blocks_per_thread(s, b, nt, hidden, fixed) > 1 ? s->e->w1p : NULL;
    if (w1p && !slot->w1p_fresh)
        bp_engine_pack(s->e, s->m, tid, nt);
    slot->w1p_fresh = 0;
#pragma omp barrier
    reset_slot(slot);
    memset(slot->wmax, 0, sizeof slot->wmax);
    bp_w1_update *upd = w1_in_pass(s, io, nt, hidden, fixed, ranks) ? &slot->upd : NULL;

    /* 1. Forward and backward of this thread's share. */
    int active[nt];
    size_t b0, b1, lo, hi;
    rank_share(s, b->nb, &b0, &b1, &lo, &hi);
    /* An in-pass update also writes the packed W1 when steps use it, so that the next one
     * need not pack it (w1p_fresh). */
    if (upd)
        w1_update_setup(s, io, tid, nt, hidden, fixed, w1p ? s->e->w1p : NULL, upd);
    if (!fixed && !hidden) {
        float_pass(s, tid, nt, w1p, b, upd);
    } else if (!hidden) {
        data_pass(s, tid, nt, w1p, b, fused, upd);
    } else {
        size_t j0, j1;
        bp_hidden_slice(s->m->hidden, nt, tid, &j0, &j1);
        bp_net v = slice_net(s, tid, w1p, j0, j1);
        if (hi > lo)
            hidden_forward(s, tid, &v, j0 / BP_HBLOCK, b, lo, hi);
#pragma omp barrier
        if (hi > lo)
            hidden_backward(s, tid, &v, j0, j1, b, lo, hi, fused, float_hidden, upd);
        else
            hidden_zero(s, tid, j0, j1);
    }
    find_active(s, b, nt, hidden, fixed, active);
    if (upd && upd->applied) {
        slot->norm2[BPROP_W1] += upd->norm2;
        slot->wmax[BPROP_W1] = fmax(slot->wmax[BPROP_W1], upd->wmax);
    }
#pragma omp barrier
    const double t_pass = tid == 0 ? omp_get_wtime() : 0.0;
    /* 2. Combine over threads (data split: each thread sums its chunk) and over ranks. */
    if (!hidden) {
        size_t a, z;
        bp_param_chunk(s->m->layout.total, nt, tid, &a, &z);
        if (!fixed)
            sum_floats(s, active, nt, a, z);
        else if (!fused)
            sum_accumulators(s, active, nt, a, z);
#pragma omp barrier
    }
    const float *fsum = fixed && !fused ? NULL : float_sum_buffer(s, active, nt);
    if (tid == 0)
        combine_ranks(s, nt, io, fixed, fsum);
#pragma omp barrier
    if (s->diverged) {
#pragma omp barrier
        if (tid == 0)
            s->combine_seconds = omp_get_wtime() - t_pass;
        return;
    }
    /* 3. The update, or the gradient for the caller. */
    update_ctx x = {.s = s, .slot = slot, .lr = io->lr, .clip = 1.0f, .out = io->grad_out,
                    .src = {.s = s, .fixed = fixed, .fused = fused, .slot = slot,
                            .inv_nb = 1.0f / (float)b->nb,
                            .src = hidden ? s->gsh : ranks ? s->e->grad[0] : fsum}};
    const int by_slice = hidden;
    int fresh = w1p != NULL;
    for (int u = 0; u < nt; u++) {
        x.skip_w1 |= s->e->slot[u].upd.applied;
        fresh = fresh && s->e->slot[u].upd.applied && s->e->slot[u].upd.w1p;
    }
    if (io->grad_out) {
        x.what = SINK_OUTPUT;
        for_part(&x, tid, nt, by_slice);
    } else if (!(s->cfg.clip_norm > 0.0f)) {
        x.what = SINK_UPDATE;
        for_part(&x, tid, nt, by_slice);
    } else {
        x.what = SINK_CLIP_PREPARE;
        x.e2 = bp_sq_exponent(update_bound(s, wmax), s->m->layout.total);
        for_part(&x, tid, nt, by_slice);
#pragma omp barrier
        bp_sq128 sq = {{0}};
        for (int u = 0; u < nt; u++)
            bp_sq_merge(&sq, &s->e->slot[u].sq);
        double norm = sqrt(bp_sq_value(&sq, x.e2));
        x.clip = norm > s->cfg.clip_norm ? (float)(s->cfg.clip_norm / norm) : 1.0f;
        x.what = SINK_CLIP_UPDATE;
        for_part(&x, tid, nt, by_slice);
    }
    slot->w1p_fresh = fresh; /* nothing below changes W1 when every thread updated it */
#pragma omp barrier
    if (tid == 0) {
        s->combine_seconds = omp_get_wtime() - t_pass;
        /* Fused: the magnitudes were checked during the update; out of range means diverged. */
        for (int u = 0; fused && u < nt; u++)
            if (!(s->e->slot[u].big < BP_FIXED_LIMIT) || !(s->e->slot[u].upd.big < BP_FIXED_LIMIT))
                s->diverged = s->stop = 1;
    }
    if (fused) {
#pragma omp barrier
    }
}
