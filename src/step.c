/* step.c: one parallel SGD step read top to bottom (bp_step): its plan, the pass, the exact
 * combination over threads (and the ranks, step_ranks.c), and the update; and the stepper that holds its buffers. */
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
    bp_free(s->gblk);
    bp_free(s->runs);
    bp_free(s->rstat);
    bp_free(s->hruns);
    bp_free(s->gsh);
    bp_free(s->gw2t);
    bp_free(s->hbuf);
    bp_free(s->part);
    bp_free(s->w1s);
    bp_free(s->v1s);
    bp_free(s->plan.active);
    bp_engine_free(s->e);
    bp_free(s);
}

/* A training stepper on several ranks whose communicator scatters (float sums; exact sums:
 * int64 sums or float block sums) and gathers runs: every
 * rank's run of the parameters (whole cache lines, as threads' chunks) for split updates; 1
 * when they need nothing or got it, 0 when out of memory. */
static int split_alloc(bp_stepper *s)
{
    const bprop_comm *c = s->comm;
    const size_t P = s->m->layout.total;
    const int scatter = s->cfg.reproducible ? c && (c->sum_scatter_i64 || c->runs_to_owners_f32)
                                            : c && c->sum_scatter_f32;
    if (!c || c->size < 2 || !s->velocity || !scatter || !c->gather_runs_f32 || P > (size_t)INT32_MAX)
        return 1;
    s->runs = bp_alloc((size_t)c->size, sizeof *s->runs);
    s->rstat = bp_alloc((size_t)(c->size + 1) * BPROP_TENSORS + 1, sizeof *s->rstat);
    for (int r = 0; s->runs && r < c->size; r++) {
        size_t a, b;
        bp_param_chunk(P, c->size, r, &a, &b);
        s->runs[r] = b - a;
    }
    return s->runs && s->rstat;
}

/* The stepper's buffers beyond the engine; 0 when out of memory. */
static int stepper_alloc(bp_stepper *s)
{
    const bprop_model *m = s->m;
    const size_t P = m->layout.total, H = m->hidden, C = m->classes, T = (size_t)s->threads;
    const size_t nhb = (H + BP_HBLOCK - 1) / BP_HBLOCK, batch = s->batch;
    int ok = (s->acc = bp_alloc(T, sizeof *s->acc)) && (s->logits = bp_alloc(T, sizeof *s->logits)) &&
             (s->labels = bp_alloc(T, sizeof *s->labels)) && (s->pred = bp_alloc(T, sizeof *s->pred)) &&
             (s->plan.active = bp_alloc(T, sizeof(int)));
    for (size_t t = 0; ok && t < T; t++)
        ok = (s->acc[t] = bp_alloc(P, sizeof(int64_t))) && (s->logits[t] = bp_alloc(batch * C, sizeof(float))) &&
             (s->labels[t] = bp_alloc(batch, sizeof(int32_t))) && (s->pred[t] = bp_alloc(batch, sizeof(int32_t)));
    ok = ok && (s->gsh = bp_alloc(P, sizeof(float))) && (s->gw2t = bp_alloc(C * H, sizeof(float))) &&
         (s->hbuf = bp_alloc(batch * H, sizeof(float))) && (s->part = bp_alloc(nhb * batch * C, sizeof(float)));
    if (ok && s->comm && !s->comm->sum_f32 && !s->cfg.reproducible)
        ok = (s->dsum = bp_alloc(P, sizeof(double))) != NULL;
    /* Exact sums over a few ranks may send each rank's block as floats (bp_gather_blocks):
     * (R - 1) 4P bytes in, against the ring allreduce's 2 (R - 1) / R 8P. */
    if (ok && s->comm && s->comm->gather_f32 && s->cfg.reproducible && s->comm->size > 1 &&
        s->comm->size <= BP_GATHER_RANKS)
        ok = (s->gblk = bp_alloc((size_t)s->comm->size * P, sizeof(float))) != NULL;
    /* The private slices of W1 and its momentum, 2 D H floats, only where a step can use them. */
    if (ok && bp_slices_possible(s))
        ok = (s->w1s = bp_alloc(m->inputs * H, sizeof(float))) &&
             (s->v1s = bp_alloc(m->inputs * H, sizeof(float)));
    ok = ok && split_alloc(s);
    /* The hidden split over ranks: the runs of its exchanges, and the statistics' exchange. */
    if (ok && s->w1s && s->comm && s->comm->size > 1) {
        const size_t R = (size_t)s->comm->size;
        ok = (s->hruns = bp_alloc(R, sizeof *s->hruns)) &&
             (s->rstat || (s->rstat = bp_alloc((R + 1) * BPROP_TENSORS + 1, sizeof *s->rstat)));
    }
    return ok;
}

bprop_status bp_stepper_create(const bp_stepper_spec *spec, bp_stepper **out)
{
    bp_stepper *s = bp_alloc(1, sizeof *s);
    if (!s)
        return BPROP_E_NOMEM;
    *s = (bp_stepper){.m = spec->m, .params = spec->params, .velocity = spec->velocity,
                      .threads = spec->threads, .batch = spec->batch, .cfg = *spec->cfg,
                      .comm = spec->comm};
    if (bp_engine_create(spec->m, spec->threads, 1, &s->e) != BPROP_OK || !stepper_alloc(s)) {
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

void bp_stepper_prepare(bp_stepper *s, const bp_src *X, size_t n)
{
    /* The bounds size the fixed-point scales of exact sums, which --reproducible and several
     * ranks use. They are read at every call: the caller may have rewritten X in place since the
     * last one, or X may be new data at the old address (nothing cheaper than this pass would
     * tell), and stale bounds give other scales (other bits, or a false divergence). Float sums
     * on one process never convert to fixed point, so they skip this read of the whole data:
     * their scales then only flag parameters that are no longer finite (bad_scales). */
    if (s->cfg.reproducible || (s->comm && s->comm->size > 1))
        bp_src_bounds(X, n, s->e->work[0].xbuf, &s->xinf, &s->x1);
    else
        s->xinf = s->x1 = 0.0;
    /* The slots carry the parameters' magnitudes from one step's update to the next step's
     * scales; seed them from the whole model. */
    for (int t = 0; t < s->threads; t++) {
        memset(s->e->slot[t].wmax, 0, sizeof s->e->slot[t].wmax);
        s->e->slot[t].w1p_current = 0; /* W1 may have changed since: the first step packs */
    }
    s->w1s_nt = 0; /* and the first sliced step loads its slices from params and velocity */
    for (int k = 0; k < BPROP_TENSORS; k++)
        s->e->slot[0].wmax[k] = max_abs(s->m->params + s->m->layout.offset[k], s->m->layout.count[k]);
}

/* ---- the plan -------------------------------------------------------------------------------- */

/* This rank's blocks of a batch of nb samples, and their samples. */
static bp_rank_part rank_part(const bp_stepper *s, size_t nb)
{
    const size_t nblk = (nb + BP_BLOCK - 1) / BP_BLOCK;
    const int rank = s->comm ? s->comm->rank : 0, ranks = s->comm ? s->comm->size : 1;
    bp_rank_part r;
    bp_share(nblk, ranks, rank, &r.b0, &r.b1);
    r.lo = r.b0 * BP_BLOCK < nb ? r.b0 * BP_BLOCK : nb;
    r.hi = r.b1 * BP_BLOCK < nb ? r.b1 * BP_BLOCK : nb;
    return r;
}

/* The most samples any rank holds of a batch of nb: the cost model's shape, the same on every
 * rank, so that every rank chooses the same split (and so the same collectives). */
static size_t largest_part(const bp_stepper *s, size_t nb)
{
    const size_t nblk = (nb + BP_BLOCK - 1) / BP_BLOCK;
    const int ranks = s->comm ? s->comm->size : 1;
    size_t most = 0;
    for (int r = 0; r < ranks; r++) {
        size_t b0, b1;
        bp_share(nblk, ranks, r, &b0, &b1);
        const size_t lo = b0 * BP_BLOCK < nb ? b0 * BP_BLOCK : nb, hi = b1 * BP_BLOCK < nb ? b1 * BP_BLOCK : nb;
        most = hi - lo > most ? hi - lo : most;
    }
    return most;
}

/* The whole batch: every rank's part under rank_hidden. */
static bp_rank_part whole_batch(size_t nb)
{
    return (bp_rank_part){.b0 = 0, .b1 = (nb + BP_BLOCK - 1) / BP_BLOCK, .lo = 0, .hi = nb};
}

/* Whether every rank runs a team of nt threads (thread 0 of every rank, together: every rank
 * makes its plans at the same steps). A failed exchange counts as a disagreement. */
static int teams_agree(const bp_stepper *s, int nt)
{
    if (!s->comm || s->comm->size < 2)
        return 1;
    double v[2] = {(double)nt, -(double)nt}; /* the largest team and minus the smallest */
    return s->comm->max_f64(s->comm->ctx, v, 2) == 0 && v[0] == -v[1];
}

static bp_split choose_split(const bp_stepper *s, size_t nb, int nt)
{
    /* Ranks with teams of different sizes (--threads differing between ranks, OMP_THREAD_LIMIT
     * on one node) take the data split: the one split whose shares and collectives do not
     * depend on the other ranks' teams. Any other choice below could differ between them, and
     * ranks that disagree on the split wait in different collectives or train wrong slices. */
    if (!teams_agree(s, nt))
        return BP_SPLIT_DATA;
    const size_t nhb = (s->m->hidden + BP_HBLOCK - 1) / BP_HBLOCK;
    const int by_ranks = bp_rank_hidden_ok(s, nt);
    if (!by_ranks && (nt < 2 || nhb < (size_t)nt))
        return BP_SPLIT_DATA; /* the hidden split needs a block of hidden units per worker */
    if (s->cfg.parallel != BPROP_PARALLEL_AUTO)
        return s->cfg.parallel == BPROP_PARALLEL_HIDDEN ? BP_SPLIT_HIDDEN : BP_SPLIT_DATA;
    /* Auto: the split the cost model predicts fastest for this shape, team, ranks and kernel
     * set; never a timing, so the same settings always choose the same (docs/parallel.md,
     * "Choosing the split"). */
    const bp_cost_shape shape = {.samples = largest_part(s, nb), .inputs = s->m->inputs,
                                 .hidden = s->m->hidden, .classes = s->m->classes,
                                 .has_bias = s->m->has_bias, .threads = nt,
                                 .ranks = s->comm ? s->comm->size : 1,
                                 .exact = s->cfg.reproducible, .kernels = s->e->k->name,
                                 .batch = nb, .rank_split = by_ranks};
    return bp_cost_choose(&shape);
}

/* The most forward blocks one thread runs in the step. With one, packing W1 into the engine's
 * shared buffer costs more than it saves: the kernels then pack each panel into their own small
 * buffer, which stays in L2, while the shared pack writes all of W1 to memory and reads it back
 * (measured on AVX2: 12% slower at batch 32, 9% faster at batch 512, one thread). */
static size_t blocks_per_thread(const bp_step_plan *p)
{
    const bp_rank_part *r = &p->part;
    const size_t nt = (size_t)p->nt;
    if (p->split == BP_SPLIT_HIDDEN)
        return r->b1 - r->b0; /* each thread runs every block of the rank over its slice */
    if (p->exact)
        return (r->b1 - r->b0 + nt - 1) / nt;
    const size_t share = (r->hi - r->lo + nt - 1) / nt; /* float sums: sample shares */
    return (share + BP_BLOCK - 1) / BP_BLOCK;
}

/* The threads with a share of the pass: the data split's shares of blocks (exact) or samples
 * (float) may leave some empty; the hidden split gives every thread its slice. */
static void find_active(bp_step_plan *p)
{
    const bp_rank_part *r = &p->part;
    p->n_active = 0;
    for (int u = 0; u < p->nt; u++) {
        size_t t0, t1;
        bp_share(p->exact ? r->b1 - r->b0 : r->hi - r->lo, p->nt, u, &t0, &t1);
        if (p->split == BP_SPLIT_HIDDEN || t1 > t0)
            p->active[p->n_active++] = u;
    }
}

void bp_plan_step(const bp_stepper *s, size_t nb, int nt, bp_step_plan *p)
{
    p->nb = nb;
    p->nt = nt;
    p->part = rank_part(s, nb);
    p->ranks = s->comm && s->comm->size > 1;
    p->split = choose_split(s, nb, nt);
    /* The hidden split over ranks with float sums: each of the R nt workers owns a slice of
     * every sum, over the whole batch on every rank. */
    p->rank_hidden = p->split == BP_SPLIT_HIDDEN && bp_rank_hidden_ok(s, nt);
    p->workers = p->rank_hidden ? s->comm->size * nt : nt;
    p->worker0 = p->rank_hidden ? s->comm->rank * nt : 0;
    if (p->rank_hidden)
        p->part = whole_batch(nb);
    /* Exact sums when asked for, and for another hidden split over several ranks (their partial
     * sums meet in int64). Otherwise the hidden split needs no reduction at all: with float
     * sums each worker sums its slice block after block, the same chains as one thread's pass,
     * so it trains the same bits as one thread, on one process or over ranks. */
    p->exact = s->cfg.reproducible || (p->split == BP_SPLIT_HIDDEN && p->ranks && !p->rank_hidden);
    p->clip = s->cfg.clip_norm > 0.0f;
    p->output = s->velocity == NULL;
    p->round_in_update = p->exact && !p->ranks && nb <= BP_BLOCK && !p->clip;
    p->sum_in_update = p->split == BP_SPLIT_DATA && !p->exact && !p->ranks;
    /* Storing dW1 and reading it back in a separate pass is a large share of a small batch's
     * step: where one thread ends up with the whole sum of each W1 entry (one block of exact
     * sums, float sums of one thread, or a hidden slice), it updates W1 in its pass. */
    p->w1_in_pass = !p->output && (!p->ranks || p->rank_hidden) && !p->clip &&
                    (p->exact ? nb <= BP_BLOCK : nt == 1 || p->split == BP_SPLIT_HIDDEN);
    /* Its own (D, W) block of W1 for each thread: no core writes lines next to another's. */
    p->w1_sliced = s->w1s && p->split == BP_SPLIT_HIDDEN && !p->exact &&
                   (!p->ranks || p->rank_hidden) && p->w1_in_pass;
    p->pack_w1 = s->e->w1p && blocks_per_thread(p) > 1;
    p->split_update = bp_split_update_ok(s, p);
    p->add_blocks = p->split_update && p->exact && bp_gather_blocks(s, p);
    p->u0 = 0;
    p->u1 = s->m->layout.total;
    if (p->split_update)
        bp_param_chunk(s->m->layout.total, s->comm->size, s->comm->rank, &p->u0, &p->u1);
    find_active(p);
}

/* The plan of this step: made by thread 0 when the batch or team size changed since the last
 * step (the trainer's last, smaller batch), between barriers that keep the team in step. */
static const bp_step_plan *current_plan(bp_stepper *s, int tid, int nt, size_t nb)
{
    if (s->plan.nb != nb || s->plan.nt != nt) {
#pragma omp barrier
        if (tid == 0)
            bp_plan_step(s, nb, nt, &s->plan);
#pragma omp barrier
    }
    return &s->plan;
}

/* ---- before the pass ------------------------------------------------------------------------- */

/* Thread 0: the scales of the step's fixed-point sums, from the parameters' magnitudes the
 * previous update left in the slots (every slot is read before the barrier that lets the
 * threads reset theirs). */
static void set_scales(bp_stepper *s)
{
    memset(s->wmax, 0, sizeof s->wmax);
    for (int u = 0; u < s->threads; u++)
        for (int k = 0; k < BPROP_TENSORS; k++)
            s->wmax[k] = fmax(s->wmax[k], s->e->slot[u].wmax[k]);
    s->bad_scales = !bp_make_scales(s->wmax, s->xinf, s->x1, BP_BLOCK, &s->sc);
}

/* Thread tid's part of packing W1 for the step (complete after the next barrier), unless the
 * packed copy is still current; returns the packed W1, or NULL when the step reads W1 in place. */
static const float *pack_w1(bp_stepper *s, const bp_step_plan *p, int tid)
{
    bp_slot *slot = &s->e->slot[tid];
    const float *w1p = p->pack_w1 ? s->e->w1p : NULL;
    if (w1p && !slot->w1p_current && p->w1_sliced)
        bp_slices_pack(s, p, tid);
    else if (w1p && !slot->w1p_current)
        bp_engine_pack(s->e, s->m, tid, p->nt);
    slot->w1p_current = 0;
    return w1p;
}

static void reset_slot(bp_slot *slot)
{
    slot->upd = (bp_w1_update){0};
    slot->loss = 0.0;
    slot->correct = 0;
    slot->big = 0.0;
    memset(slot->norm2, 0, sizeof slot->norm2);
    memset(slot->wmax, 0, sizeof slot->wmax);
    memset(&slot->sq, 0, sizeof slot->sq);
}

/* ---- combining ------------------------------------------------------------------------------- */

/* acc[0][a, b) = sum over the active threads' accumulators (exact; thread order irrelevant). */
static void sum_accumulators(bp_stepper *s, const bp_step_plan *p, size_t a, size_t b)
{
    int64_t *dst = s->acc[0];
    if (p->n_active == 0 || p->active[0] != 0)
        memset(dst + a, 0, (b - a) * sizeof(int64_t));
    for (int i = 0; i < p->n_active; i++)
        if (p->active[i] != 0)
            s->e->k->add_i64(dst + a, s->acc[p->active[i]] + a, b - a);
}

/* Data split: each thread sums its chunk of the parameters over the threads' buffers: exact
 * sums into acc[0], or, before a float sum over ranks, float sums in a fixed order into the
 * first active thread's buffer. On one process the update adds the float buffers itself. */
static void combine_threads(bp_stepper *s, const bp_step_plan *p, int tid)
{
    if (p->split == BP_SPLIT_HIDDEN || p->sum_in_update || p->add_blocks)
        return; /* each thread's slice already holds the whole sum, or the update adds them */
    size_t a, z;
    bp_param_chunk(s->m->layout.total, p->nt, tid, &a, &z);
    if (!p->exact && p->n_active > 0 && z > a)
        bp_sum_buffers(s->e->grad, p->active, p->n_active, a, z - a, s->e->grad[p->active[0]] + a);
    else if (p->exact && !p->round_in_update)
        sum_accumulators(s, p, a, z);
#pragma omp barrier
}

/* Whether the step's fixed-point magnitudes left the range of exact sums (fixed.h): before the
 * update, the scales or any conversion of the pass; after an update that rounded or converted
 * the sums itself (round_in_update, add_blocks: agreed over ranks by bp_split_gather), its own
 * conversions and those of the W1 update in the pass. This and a non-finite loss are what make
 * a step diverge. */
static int out_of_range(const bp_stepper *s, int nt, int after_update)
{
    if (after_update) {
        for (int u = 0; u < nt; u++)
            if (!(s->e->slot[u].big < BP_FIXED_LIMIT) || !(s->e->slot[u].upd.big < BP_FIXED_LIMIT))
                return 1;
        return 0;
    }
    double big = 0.0;
    for (int u = 0; u < nt; u++)
        big = fmax(big, s->e->slot[u].big);
    return s->bad_scales || !(big < BP_FIXED_LIMIT);
}

/* Thread 0 between the pass and the update: the step's loss over all threads and ranks, the
 * exact sum over ranks, divergence and stopping, agreed by every rank. */
static void combine_ranks(bp_stepper *s, const bp_step_plan *p, const bp_step_io *io)
{
    double loss = 0.0, correct = 0.0;
    for (int u = 0; u < p->nt; u++) {
        loss += s->e->slot[u].loss;
        correct += (double)s->e->slot[u].correct;
    }
    const int cancel = io->cancel && *io->cancel;
    /* A failed exchange of the rank split travels as a range flag, so every rank stops. */
    double v[4] = {loss, correct, cancel ? 1.0 : 0.0,
                   out_of_range(s, p->nt, 0) || s->comm_failed ? 1.0 : 0.0};
    int failed = 0;
    if (p->rank_hidden) {
        /* Every rank has the whole batch's loss: only the flags meet (a maximum). */
        failed |= s->comm->max_f64(s->comm->ctx, v + 2, 2) != 0;
    } else if (p->ranks) {
        failed |= s->comm->sum_f64(s->comm->ctx, v, 4) != 0;
        failed |= bp_sum_over_ranks(s, p);
    }
    s->loss = v[0];
    s->correct = v[1];
    s->diverged = failed || !isfinite(v[0]) || v[3] > 0.0;
    s->cancelled = !s->diverged && v[2] > 0.0;
    s->stop = s->diverged || s->cancelled;
    if (!s->diverged && io->after_pass && io->after_pass(io->ctx, s, io->b.nb))
        s->stop = 1;
}

/* ---- the step -------------------------------------------------------------------------------- */

void bp_step(bp_stepper *s, int tid, int nt, const bp_step_io *io)
{
    /* 1. Plan: every decision of this step, made once per batch and team size. */
    const bp_step_plan *p = current_plan(s, tid, nt, io->b.nb);
    bp_slot *slot = &s->e->slot[tid];
    if (tid == 0)
        set_scales(s);
    bp_slices_begin(s, p, tid); /* W1 where this step reads it: in slices or in params */
    const float *w1p = pack_w1(s, p, tid);
#pragma omp barrier
    reset_slot(slot);
    bp_w1_update *upd = p->w1_in_pass && !s->bad_scales ? &slot->upd : NULL;
    /* An in-pass update also writes the packed W1 when steps use it, so that the next step need
     * not pack it (w1p_current). */
    if (upd)
        bp_step_w1_update(s, p, tid, io->lr, w1p ? s->e->w1p : NULL, upd);

    /* 2. Pass: forward and backward of this thread's share. */
    bp_step_pass(s, p, tid, w1p, &io->b, upd);
    if (upd && upd->applied) {
        slot->norm2[BPROP_W1] += upd->norm2;
        slot->wmax[BPROP_W1] = fmax(slot->wmax[BPROP_W1], upd->wmax);
    }
#pragma omp barrier
    const double t_pass = tid == 0 ? omp_get_wtime() : 0.0;

    /* 3. Combine: over threads, then over ranks with the loss, divergence and stopping. */
    combine_threads(s, p, tid);
    if (tid == 0)
        combine_ranks(s, p, io);
#pragma omp barrier
    if (s->diverged) {
#pragma omp barrier
        if (tid == 0)
            s->combine_seconds = omp_get_wtime() - t_pass;
        return;
    }

    /* 4. Update: each thread's part of the parameters, or of the caller's gradient. */
    bp_step_update(s, p, tid, io);
#pragma omp barrier
    if (tid == 0) {
        if (p->split_update && bp_split_gather(s, p))
            s->diverged = s->stop = 1;
        if (p->rank_hidden && bp_ranks_stats(s, p))
            s->diverged = s->stop = 1;
        s->combine_seconds = omp_get_wtime() - t_pass;
        if ((p->round_in_update || p->add_blocks) && out_of_range(s, nt, 1))
            s->diverged = s->stop = 1;
    }
    if (p->round_in_update || p->split_update || p->rank_hidden) {
#pragma omp barrier
    }
}
