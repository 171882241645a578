/* step_update.c: the update of a step: each thread's part of the parameters gets its mean
 * gradient (from float or exact sums) and SGD with momentum, decay and clipping; or the mean
 * gradient goes to the caller. */
#include "step.h"

#include <math.h>
#include <omp.h>
#include <string.h>

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
    float *const *bufs;  /* nsum > 1: the threads' float buffers, summed here instead of src */
    const int *order;    /* (nsum) which buffers, in the order bp_sum_buffers adds them */
    int nsum;
    float inv_nb;
} grad_src;

/* g = the sum of the buffers' run r in their order (bp_sum_buffers' additions), times inv_nb. */
static void sum_then_scale(const grad_src *q, seg r, float *g)
{
    const float *b0 = q->bufs[q->order[0]] + r.p, *b1 = q->bufs[q->order[1]] + r.p;
    if (q->nsum == 2) { /* the common case in one loop */
#pragma omp simd
        for (size_t i = 0; i < r.n; i++)
            g[i] = (b0[i] + b1[i]) * q->inv_nb;
        return;
    }
    bp_sum_buffers(q->bufs, q->order, q->nsum, r.p, r.n, g);
    for (size_t i = 0; i < r.n; i++)
        g[i] *= q->inv_nb;
}

static void mean_grad(const grad_src *q, seg r, float *g)
{
    if (q->fused) {
        double big = q->s->e->k->fixed_round(q->src + r.p, r.n, q->s->sc.scale[r.tensor],
                                    q->s->sc.unscale[r.tensor] * (double)q->inv_nb, g);
        q->slot->big = big > q->slot->big ? big : q->slot->big;
    } else if (q->fixed) {
        q->s->e->k->fixed_to_float(q->s->acc[0] + r.p, r.n, q->s->sc.unscale[r.tensor] * (double)q->inv_nb, g);
    } else if (q->nsum > 1) {
        /* The same additions in the same order as a separate reduction would make, on a block
         * that stays in L1 for the update: no summed buffer written and read back. */
        sum_then_scale(q, r, g);
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
    float wmax = s->e->k->sgd(s->params + r.p, s->velocity + r.p, g, r.n, &p);
    slot->wmax[r.tensor] = fmax(slot->wmax[r.tensor], wmax);
}

/* SINK_UPDATE of run r from fixed-point sums (int64, or float sums rounded on the fly when
 * fused): conversion, squared norm and update in one pass (bp_sgd_fixed), the same bits as
 * mean_grad then sgd_run. */
static void sgd_run_fixed(bp_stepper *s, const grad_src *q, seg r, float lr)
{
    const bp_sgd_params p = sgd_params(s, r.tensor, lr, 1.0f);
    bp_slot *slot = q->slot;
    float wmax = s->e->k->sgd_fixed(s->params + r.p, s->velocity + r.p,
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
    int tid, nt;
    int by_slice; /* the hidden split: each thread updates its slice, as its pass summed it */
    grad_src src;
    sink what;
    float lr, clip;
    float *out;   /* SINK_OUTPUT: (params) */
    int e2;       /* SINK_CLIP_PREPARE: exponent of the exact squares */
    int skip_w1;  /* W1 was updated in the backward pass (bp_w1_update) */
    size_t u0, u1; /* the data split's run of the parameters on this rank (split_update) */
    const bp_step_plan *p;
} update_ctx;

/* SINK_CLIP_PREPARE of block q: the gradient waits in gsh for the clip factor; the squares of
 * the update direction u = g + decay w go into the exact sum. */
static void clip_prepare(update_ctx *x, seg q)
{
    bp_stepper *s = x->s;
    float *gs = s->gsh + q.p, u[UPDATE_BLOCK];
    const float *w = s->m->params + q.p, wd = decay_of(s, q.tensor);
    mean_grad(&x->src, q, gs);
    x->slot->norm2[q.tensor] += sumsq(gs, q.n);
    for (size_t i = 0; i < q.n; i++)
        u[i] = gs[i] + wd * w[i];
    bp_sq_add(&x->slot->sq, u, q.n, x->e2);
}

/* add_blocks: the ranks' blocks of run r into fixed point, piece by piece, each piece's sums
 * used by the update while they are in L1 (the bits of converting the whole run first: every
 * step is elementwise). */
static void add_blocks_update(update_ctx *x, seg r)
{
    for (size_t p = r.p; p < r.p + r.n; p += UPDATE_BLOCK) {
        seg q = {p, r.p + r.n - p < UPDATE_BLOCK ? r.p + r.n - p : UPDATE_BLOCK, r.tensor};
        double big = bp_add_blocks(x->s, x->p, q.p, q.n, q.tensor);
        x->slot->big = big > x->slot->big ? big : x->slot->big;
        sgd_run_fixed(x->s, &x->src, q, x->lr);
    }
}

static void do_run(update_ctx *x, seg r)
{
    bp_stepper *s = x->s;
    if (x->what == SINK_UPDATE && x->src.fixed) {
        if (x->p->add_blocks)
            add_blocks_update(x, r);
        else
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
        case SINK_CLIP_PREPARE:
            clip_prepare(x, q);
            break;
        case SINK_CLIP_UPDATE:
            sgd_run(s, x->slot, q, s->gsh + q.p, x->lr, x->clip);
            break;
        }
    }
}

/* Data split: thread tid's chunk of this rank's run of the flat block, cut at tensor
 * boundaries. */
static void for_chunk(update_ctx *x)
{
    const bprop_layout *L = &x->s->m->layout;
    size_t a, b;
    bp_param_chunk(x->u1 - x->u0, x->nt, x->tid, &a, &b);
    a += x->u0;
    b += x->u0;
    for (int k = 0; k < BPROP_TENSORS; k++) {
        if (k == BPROP_W1 && x->skip_w1)
            continue;
        size_t lo = L->offset[k] > a ? L->offset[k] : a, hi = L->offset[k] + L->count[k];
        hi = hi < b ? hi : b;
        if (hi > lo)
            do_run(x, (seg){lo, hi - lo, k});
    }
}

/* Hidden split: thread tid's columns of W1, entries of b1, rows of W2, and b2 for thread 0 (of
 * every rank: under rank_hidden each rank has the whole db2 and updates b2 identically). */
static void for_slice(update_ctx *x)
{
    const bprop_model *m = x->s->m;
    const bprop_layout *L = &m->layout;
    const size_t H = m->hidden, C = m->classes;
    size_t j0, j1;
    bp_plan_slice(x->p, H, x->tid, &j0, &j1);
    if (j1 > j0) {
        /* A sliced step (W1 in w1s, its sums in that layout) always gets here with W1 updated
         * in the pass: bad scales or a non-finite loss, which leave it out, diverge first. */
        for (size_t k = 0; k < m->inputs && !x->skip_w1; k++)
            do_run(x, (seg){L->offset[BPROP_W1] + k * H + j0, j1 - j0, BPROP_W1});
        if (m->has_bias)
            do_run(x, (seg){L->offset[BPROP_B1] + j0, j1 - j0, BPROP_B1});
        do_run(x, (seg){L->offset[BPROP_W2] + j0 * C, (j1 - j0) * C, BPROP_W2});
    }
    if (m->has_bias && x->tid == 0)
        do_run(x, (seg){L->offset[BPROP_B2], C, BPROP_B2});
}

static void for_part(update_ctx *x, sink what)
{
    x->what = what;
    if (x->by_slice)
        for_slice(x);
    else
        for_chunk(x);
}

/* Largest |u| the clipping norm can meet: the batch-mean gradient stays under the per-sample
 * bound (the fixed-point scale's 2^50 / (2 block)), plus the weight-decay term. */
static double update_bound(const bp_stepper *s)
{
    double b = 0.0;
    for (int k = 0; k < BPROP_TENSORS; k++) {
        double g = ldexp(s->sc.unscale[k], 50) / (2.0 * BP_BLOCK);
        double u = g + decay_of(s, k) * s->wmax[k];
        b = u > b ? u : b;
    }
    return b;
}

/* Clipping: the exact norm of the whole update direction (every thread's squares, after a
 * barrier), then the update scaled by the clip factor. */
static void clipped_update(update_ctx *x)
{
    bp_stepper *s = x->s;
    x->e2 = bp_sq_exponent(update_bound(s), s->m->layout.total);
    for_part(x, SINK_CLIP_PREPARE);
#pragma omp barrier
    bp_sq128 sq = {{0}};
    for (int u = 0; u < x->nt; u++)
        bp_sq_merge(&sq, &s->e->slot[u].sq);
    double norm = sqrt(bp_sq_value(&sq, x->e2));
    x->clip = norm > s->cfg.clip_norm ? (float)(s->cfg.clip_norm / norm) : 1.0f;
    for_part(x, SINK_CLIP_UPDATE);
}

/* The float sums the update reads: the hidden split's shared buffer, the sum over ranks, or
 * the first active thread's buffer (NULL when this rank had no samples). */
static const float *float_sums(const bp_stepper *s, const bp_step_plan *p)
{
    if (p->split == BP_SPLIT_HIDDEN)
        return s->gsh;
    if (p->ranks)
        return s->e->grad[0];
    return p->n_active > 0 ? s->e->grad[p->active[0]] : NULL;
}

void bp_step_w1_update(const bp_stepper *s, const bp_step_plan *p, int tid, float lr,
                       float *w1p, bp_w1_update *u)
{
    const bprop_model *m = s->m;
    size_t j0 = 0, j1 = m->hidden, off = m->layout.offset[BPROP_W1];
    if (p->split == BP_SPLIT_HIDDEN)
        bp_plan_slice(p, m->hidden, tid, &j0, &j1);
    /* The mean gradient as mean_grad forms it. */
    const float inv_nb = 1.0f / (float)p->nb;
    /* W1's columns [j0, j1) of params and velocity (D, H), or a sliced step's (D, W) blocks. */
    float *w = s->params + off + j0, *v = s->velocity + off + j0;
    size_t ld = m->hidden;
    if (p->w1_sliced) {
        w = s->w1s + m->inputs * j0;
        v = s->v1s + m->inputs * j0;
        ld = j1 - j0;
    }
    *u = (bp_w1_update){.w = w, .v = v, .ld = ld,
                        .w1p = w1p ? w1p + j0 * m->inputs : NULL, .H = j1 - j0,
                        .fixed = p->exact, .scale = s->sc.scale[BPROP_W1],
                        .mul = s->sc.unscale[BPROP_W1] * (double)inv_nb, .inv_nb = inv_nb,
                        .p = sgd_params(s, BPROP_W1, lr, 1.0f)};
}

void bp_step_update(bp_stepper *s, const bp_step_plan *p, int tid, const bp_step_io *io)
{
    bp_slot *slot = &s->e->slot[tid];
    update_ctx x = {.s = s, .slot = slot, .tid = tid, .nt = p->nt,
                    .by_slice = p->split == BP_SPLIT_HIDDEN, .lr = io->lr, .clip = 1.0f,
                    .out = io->grad_out, .u0 = p->u0, .u1 = p->u1, .p = p,
                    .src = {.s = s, .fixed = p->exact, .fused = p->round_in_update, .slot = slot,
                            .inv_nb = 1.0f / (float)p->nb, .src = float_sums(s, p)}};
    if (p->sum_in_update) {
        x.src.bufs = s->e->grad;
        x.src.order = p->active;
        x.src.nsum = p->n_active;
    }
    /* W1 updated in the pass by some thread is not updated again; when every thread updated its
     * part and wrote it packed, the packed W1 stays current for the next step. */
    int w1p_current = p->pack_w1;
    for (int u = 0; u < p->nt; u++) {
        x.skip_w1 |= s->e->slot[u].upd.applied;
        w1p_current = w1p_current && s->e->slot[u].upd.applied && s->e->slot[u].upd.w1p;
    }
    if (p->output)
        for_part(&x, SINK_OUTPUT);
    else if (!p->clip)
        for_part(&x, SINK_UPDATE);
    else
        clipped_update(&x);
    slot->w1p_current = w1p_current; /* nothing below changes W1 when every thread updated it */
}
