/* step_slices.c: the hidden split's private W1 slices: when a step loads them from the model's
 * parameters and momentum, when they go back, and their exchange over ranks (rank_hidden). */
#include "step.h"

#include <stdint.h>
#include <string.h>

int bp_slices_possible(const bp_stepper *s)
{
    const size_t nhb = (s->m->hidden + BP_HBLOCK - 1) / BP_HBLOCK;
    const int ranks = s->comm && s->comm->size > 1;
    /* The plan's conditions for a sliced step that do not change from step to step: a float
     * hidden split with W1 updated in the pass (bp_plan_step), on one process for a team of
     * several threads, on several ranks through a communicator that gathers runs. */
    if (!s->params || !s->velocity || s->cfg.reproducible || s->cfg.clip_norm > 0.0f ||
        s->cfg.parallel == BPROP_PARALLEL_DATA)
        return 0;
    if (ranks)
        return s->comm->gather_runs_f32 && nhb >= (size_t)s->comm->size &&
               s->m->inputs * s->m->hidden <= (size_t)INT32_MAX;
    return s->threads > 1 && nhb > 1;
}

int bp_rank_hidden_ok(const bp_stepper *s, int nt)
{
    const size_t nhb = (s->m->hidden + BP_HBLOCK - 1) / BP_HBLOCK;
    return s->w1s && s->comm && s->comm->size > 1 && nhb >= (size_t)s->comm->size * (size_t)nt;
}

void bp_plan_slice(const bp_step_plan *p, size_t H, int tid, size_t *j0, size_t *j1)
{
    bp_hidden_slice(H, p->workers, p->worker0 + tid, j0, j1);
}

/* Thread u's slice for a team of nt: W1 and its momentum between the model's rows (D, H) and
 * the private block (D, j1 - j0); store != 0 copies the block into the rows. */
static void slice_copy(bp_stepper *s, int nt, int u, int store)
{
    const bprop_model *m = s->m;
    const size_t D = m->inputs, H = m->hidden, off = m->layout.offset[BPROP_W1];
    size_t j0, j1;
    bp_hidden_slice(H, nt, u, &j0, &j1);
    const size_t W = j1 - j0;
    float *w = s->params + off + j0, *v = s->velocity + off + j0;   /* (D, H) rows, from j0 */
    float *ws = s->w1s + D * j0, *vs = s->v1s + D * j0;             /* (D, W) */
    for (size_t k = 0; k < D; k++) {
        if (store) {
            memcpy(w + k * H, ws + k * W, W * sizeof(float));
            memcpy(v + k * H, vs + k * W, W * sizeof(float));
        } else {
            memcpy(ws + k * W, w + k * H, W * sizeof(float));
            memcpy(vs + k * W, v + k * H, W * sizeof(float));
        }
    }
}

/* Every rank's hidden units [J0, J1) of a split over `workers` workers, R nt: rank r's workers
 * r nt .. r nt + nt - 1 own one contiguous run of units; runs[r] = (J1 - J0) * per. */
static void rank_runs(const bp_stepper *s, int workers, size_t per, size_t *runs)
{
    const int R = s->comm->size, nt = workers / R;
    for (int r = 0; r < R; r++) {
        size_t a0, a1, b0, b1;
        bp_hidden_slice(s->m->hidden, workers, r * nt, &a0, &a1);
        bp_hidden_slice(s->m->hidden, workers, r * nt + nt - 1, &b0, &b1);
        runs[r] = (b1 - a0) * per;
    }
}

int bp_slices_gather(bp_stepper *s)
{
    const bprop_model *m = s->m;
    const bprop_layout *L = &m->layout;
    const bprop_comm *c = s->comm;
    const size_t D = m->inputs, C = m->classes;
    int failed = 0;
    /* The slices lie slice after slice (slice_copy), so a rank's are one run of D (J1 - J0). */
    rank_runs(s, s->w1s_nt, D, s->hruns);
    failed |= c->gather_runs_f32(c->ctx, s->w1s, s->hruns) != 0;
    failed |= c->gather_runs_f32(c->ctx, s->v1s, s->hruns) != 0;
    rank_runs(s, s->w1s_nt, C, s->hruns); /* W2 (H, C): a rank's rows */
    failed |= c->gather_runs_f32(c->ctx, s->params + L->offset[BPROP_W2], s->hruns) != 0;
    failed |= c->gather_runs_f32(c->ctx, s->velocity + L->offset[BPROP_W2], s->hruns) != 0;
    if (m->has_bias) {
        rank_runs(s, s->w1s_nt, 1, s->hruns);
        failed |= c->gather_runs_f32(c->ctx, s->params + L->offset[BPROP_B1], s->hruns) != 0;
        failed |= c->gather_runs_f32(c->ctx, s->velocity + L->offset[BPROP_B1], s->hruns) != 0;
    }
    return failed;
}

int bp_gather_partials(bp_stepper *s, const bp_step_plan *p)
{
    /* (hidden blocks, nb, C): a rank's slices start and end on block boundaries (or at H), so
     * its blocks are one run of ceil((J1 - J0) / 64) nb C values. */
    const size_t nr = p->part.hi - p->part.lo, C = s->m->classes;
    const int R = s->comm->size;
    for (int r = 0; r < R; r++) {
        size_t a0, a1, b0, b1;
        bp_hidden_slice(s->m->hidden, p->workers, r * p->nt, &a0, &a1);
        bp_hidden_slice(s->m->hidden, p->workers, r * p->nt + p->nt - 1, &b0, &b1);
        s->hruns[r] = ((b1 + BP_HBLOCK - 1) / BP_HBLOCK - a0 / BP_HBLOCK) * nr * C;
    }
    return s->comm->gather_runs_f32(s->comm->ctx, s->part, s->hruns) != 0;
}

void bp_slices_begin(bp_stepper *s, const bp_step_plan *p, int tid)
{
    /* Every thread reads the same state: thread 0 last changed it before this step's barriers. */
    const int want = p->w1_sliced ? p->workers : 0, have = s->w1s_nt;
    if (want == have)
        return;
    /* Several ranks (every rank makes the same plans, so all get here together): slices of the
     * hidden split over ranks are current only for this rank's, so every rank's go everywhere
     * first; and a split update of the data split earlier in the epoch left only this rank's
     * run of the momentum current, which the new slices read across every run. */
    const int ranks = s->comm && s->comm->size > 1;
    if (ranks && (have || (want && s->velocity_partial))) {
#pragma omp barrier
        if (tid == 0) {
            int failed = have ? bp_slices_gather(s) : 0;
            failed |= want ? bp_stepper_gather_velocity(s) : 0;
            s->comm_failed |= failed;
        }
#pragma omp barrier
    }
    /* The slices of the old team size, shared out over this team. */
    for (int u = tid; u < have; u += p->nt)
        slice_copy(s, have, u, 1);
    /* Every slice is back in params before any thread reads W1 there or loads its new slice
     * (which overlaps others' old ones); each thread's pass then reads only the slice it
     * loaded itself, so no barrier follows. */
#pragma omp barrier
    if (want)
        slice_copy(s, want, p->worker0 + tid, 0);
    if (tid == 0) /* every thread read `have` before the barrier */
        s->w1s_nt = want;
}

void bp_slices_pack(bp_stepper *s, const bp_step_plan *p, int tid)
{
    const bprop_model *m = s->m;
    size_t j0, j1;
    bp_plan_slice(p, m->hidden, tid, &j0, &j1);
    if (!s->e->w1p || j1 == j0)
        return;
    /* The slice as a net of its own: a view that starts on a BP_HBLOCK boundary cuts the same
     * panels as the whole net, so the packed panels land where bp_engine_pack puts them. */
    const bp_net net = {.D = m->inputs, .H = j1 - j0, .C = m->classes, .ld = j1 - j0,
                        .w1 = s->w1s + m->inputs * j0};
    bp_pack_w1(s->e->k, &net, 0, j1 - j0, s->e->w1p + j0 * m->inputs);
}

int bp_stepper_sync(bp_stepper *s)
{
    int failed = 0;
    if (s->w1s_nt && s->comm && s->comm->size > 1)
        failed = bp_slices_gather(s);
    for (int u = 0; u < s->w1s_nt; u++)
        slice_copy(s, s->w1s_nt, u, 1);
    s->w1s_nt = 0;
    return failed;
}
