/* step_ranks.c: the combination of a step's gradient sums over MPI ranks (through bprop_comm):
 * float sums as floats, exact sums as int64 or, for a rank's single block, as its float sums;
 * for an update split over the ranks, each rank's run of them. */
#include "step.h"

#include <math.h>
#include <string.h>

/* The float sums over ranks into grad[0] (float sums, several ranks): summed as floats by the
 * communicator's sum_f32, or, without one, widened to double for sum_f64 and rounded back (the
 * same bits for 2 ranks: a sum of two floats is correctly rounded either way). A rank without
 * samples adds zeros. Returns non-zero when the transfer failed. */
static int sum_floats(bp_stepper *s, const bp_step_plan *p)
{
    const size_t P = s->m->layout.total;
    const float *fsum = p->n_active > 0 ? s->e->grad[p->active[0]] : NULL;
    float *g = s->e->grad[0];
    if (p->split_update) { /* the same float additions, each rank keeping only its run */
        if (!fsum)
            memset(g, 0, P * sizeof *g);
        else if (fsum != g)
            memcpy(g, fsum, P * sizeof *g);
        return s->comm->sum_scatter_f32(s->comm->ctx, g, s->runs) != 0;
    }
    if (s->comm->sum_f32) {
        if (!fsum)
            memset(g, 0, P * sizeof *g);
        else if (fsum != g)
            memcpy(g, fsum, P * sizeof *g);
        return s->comm->sum_f32(s->comm->ctx, g, P) != 0;
    }
    for (size_t i = 0; i < P; i++)
        s->dsum[i] = fsum ? fsum[i] : 0.0;
    int failed = s->comm->sum_f64(s->comm->ctx, s->dsum, P) != 0;
    for (size_t i = 0; i < P; i++)
        g[i] = (float)s->dsum[i];
    return failed;
}

int bp_gather_blocks(const bp_stepper *s, const bp_step_plan *p)
{
    const size_t nblk = (p->nb + BP_BLOCK - 1) / BP_BLOCK;
    return s->gblk && p->ranks && p->exact && p->split == BP_SPLIT_DATA &&
           nblk <= (size_t)s->comm->size;
}

/* Exact sums where every rank holds at most one block: each rank's float block sums travel
 * (4 bytes a value instead of the int64 sum's 8), and every rank turns the other ranks' blocks
 * into fixed point and adds them to its own, as its pass turned its own: the integers, and so
 * the sum, are those of the int64 path. The blocks' range checks need no exchange: every block
 * was checked by the rank that computed it, in the flags summed before. */
static int gather_blocks(bp_stepper *s, const bp_step_plan *p)
{
    const bprop_layout *L = &s->m->layout;
    const size_t P = L->total, nblk = (p->nb + BP_BLOCK - 1) / BP_BLOCK;
    const float *mine = p->n_active > 0 ? s->e->grad[p->active[0]] : s->e->grad[0];
    if (s->comm->gather_f32(s->comm->ctx, mine, s->gblk, P) != 0)
        return 1;
    for (int r = 0; r < s->comm->size; r++) {
        size_t b0, b1;
        bp_share(nblk, s->comm->size, r, &b0, &b1);
        if (r == s->comm->rank || b1 == b0)
            continue; /* this rank's block is in acc[0]; a rank without one adds nothing */
        for (int k = 0; k < BPROP_TENSORS; k++)
            s->e->k->fixed_add(s->acc[0] + L->offset[k], s->gblk + (size_t)r * P + L->offset[k],
                               L->count[k], s->sc.scale[k], 0);
    }
    return 0;
}

int bp_sum_over_ranks(bp_stepper *s, const bp_step_plan *p)
{
    if (!p->exact)
        return sum_floats(s, p);
    if (p->add_blocks) { /* the update adds them (bp_add_blocks) */
        const float *mine = p->n_active > 0 ? s->e->grad[p->active[0]] : s->e->grad[0];
        return s->comm->runs_to_owners_f32(s->comm->ctx, mine, s->gblk, s->runs) != 0;
    }
    if (bp_gather_blocks(s, p))
        return gather_blocks(s, p);
    if (p->split_update)
        return s->comm->sum_scatter_i64(s->comm->ctx, s->acc[0], s->runs) != 0;
    return s->comm->sum_i64(s->comm->ctx, s->acc[0], s->m->layout.total) != 0;
}

double bp_add_blocks(bp_stepper *s, const bp_step_plan *p, size_t a, size_t n, int tensor)
{
    const size_t nblk = (p->nb + BP_BLOCK - 1) / BP_BLOCK, run = p->u1 - p->u0;
    double big = 0.0;
    int first = 1;
    for (int r = 0; r < s->comm->size; r++) {
        size_t b0, b1;
        bp_share(nblk, s->comm->size, r, &b0, &b1);
        if (b1 == b0)
            continue; /* a rank without a block adds nothing */
        double b = s->e->k->fixed_add(s->acc[0] + a, s->gblk + (size_t)r * run + (a - p->u0), n,
                                      s->sc.scale[tensor], first);
        big = b > big ? b : big;
        first = 0;
    }
    return big;
}

/* Float sums: reduce-scattered as floats. Exact sums: every rank's float blocks of a run to
 * the run's owner (one block per rank), or the int64 sums reduce-scattered; either way the
 * integers summed are those of the whole update, so the bits are. */
int bp_split_update_ok(const bp_stepper *s, const bp_step_plan *p)
{
    if (!s->runs || !p->ranks || p->split != BP_SPLIT_DATA || p->clip || p->output)
        return 0;
    if (!p->exact)
        return s->comm->sum_scatter_f32 != NULL;
    if (bp_gather_blocks(s, p))
        return s->comm->runs_to_owners_f32 != NULL;
    return s->comm->sum_scatter_i64 != NULL;
}

int bp_split_gather(bp_stepper *s, const bp_step_plan *p)
{
    int failed = s->comm->gather_runs_f32(s->comm->ctx, s->params, s->runs) != 0;
    s->velocity_partial = 1;
    return bp_ranks_stats(s, p) | failed;
}

int bp_ranks_stats(bp_stepper *s, const bp_step_plan *p)
{
    const int R = s->comm->size;
    const size_t nv = (size_t)(BPROP_TENSORS * (R + 1)) + 1;
    /* One maximum carries all: the largest magnitudes, each rank's squared norms in that rank's
     * place (zeros elsewhere; norms are never negative), added below in rank order, and
     * whether any rank's conversions in the update (add_blocks) left the range. rank_hidden
     * updates b2 identically on every rank: rank 0's norm counts it once. */
    double *v = s->rstat;
    memset(v, 0, nv * sizeof *v);
    for (int u = 0; u < p->nt; u++) {
        const bp_slot *slot = &s->e->slot[u];
        for (int k = 0; k < BPROP_TENSORS; k++) {
            v[k] = slot->wmax[k] > v[k] ? slot->wmax[k] : v[k];
            if (!(p->rank_hidden && k == BPROP_B2 && s->comm->rank != 0))
                v[BPROP_TENSORS * (s->comm->rank + 1) + k] += slot->norm2[k];
        }
        if (p->add_blocks && !(slot->big < BP_FIXED_LIMIT))
            v[nv - 1] = 1.0;
    }
    int failed = s->comm->max_f64(s->comm->ctx, v, nv) != 0;
    if (v[nv - 1] > 0.0)
        s->e->slot[0].big = INFINITY; /* every rank sees the step leave the range */
    for (int u = 0; u < p->nt; u++) {
        memset(s->e->slot[u].wmax, 0, sizeof s->e->slot[u].wmax);
        memset(s->e->slot[u].norm2, 0, sizeof s->e->slot[u].norm2);
    }
    for (int k = 0; k < BPROP_TENSORS; k++) {
        s->e->slot[0].wmax[k] = v[k];
        for (int r = 0; r < R; r++)
            s->e->slot[0].norm2[k] += v[BPROP_TENSORS * (r + 1) + k];
    }
    return failed;
}

int bp_stepper_gather_velocity(bp_stepper *s)
{
    if (!s->velocity_partial)
        return 0;
    s->velocity_partial = 0;
    return s->comm->gather_runs_f32(s->comm->ctx, s->velocity, s->runs) != 0;
}
