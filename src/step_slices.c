/* step_slices.c: the hidden split's private W1 slices: when a step loads them from the model's
 * parameters and momentum, and when they go back. */
#include "step.h"

#include <string.h>

int bp_slices_possible(const bp_stepper *s)
{
    const size_t nhb = (s->m->hidden + BP_HBLOCK - 1) / BP_HBLOCK;
    /* The plan's conditions for a sliced step that do not change from step to step: a float
     * hidden split on one process with W1 updated in the pass (bp_plan_step). */
    return s->params && s->velocity && s->threads > 1 && nhb > 1 &&
           !(s->comm && s->comm->size > 1) && !s->cfg.reproducible && !(s->cfg.clip_norm > 0.0f) &&
           s->cfg.parallel != BPROP_PARALLEL_DATA;
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

void bp_slices_begin(bp_stepper *s, const bp_step_plan *p, int tid)
{
    /* Every thread reads the same state: thread 0 last changed it before this step's barriers. */
    const int want = p->w1_sliced ? p->nt : 0, have = s->w1s_nt;
    if (want == have)
        return;
    /* The slices of the old team size, shared out over this team. */
    for (int u = tid; u < have; u += p->nt)
        slice_copy(s, have, u, 1);
    /* Every slice is back in params before any thread reads W1 there or loads its new slice
     * (which overlaps others' old ones); each thread's pass then reads only the slice it
     * loaded itself, so no barrier follows. */
#pragma omp barrier
    if (want)
        slice_copy(s, want, tid, 0);
    if (tid == 0) /* every thread read `have` before the barrier */
        s->w1s_nt = want;
}

void bp_slices_pack(bp_stepper *s, const bp_step_plan *p, int tid)
{
    const bprop_model *m = s->m;
    size_t j0, j1;
    bp_hidden_slice(m->hidden, p->nt, tid, &j0, &j1);
    if (!s->e->w1p || j1 == j0)
        return;
    /* The slice as a net of its own: a view that starts on a BP_HBLOCK boundary cuts the same
     * panels as the whole net, so the packed panels land where bp_engine_pack puts them. */
    const bp_net net = {.D = m->inputs, .H = j1 - j0, .C = m->classes, .ld = j1 - j0,
                        .w1 = s->w1s + m->inputs * j0};
    bp_pack_w1(s->e->k, &net, 0, j1 - j0, s->e->w1p + j0 * m->inputs);
}

void bp_stepper_sync(bp_stepper *s)
{
    for (int u = 0; u < s->w1s_nt; u++)
        slice_copy(s, s->w1s_nt, u, 1);
    s->w1s_nt = 0;
}
