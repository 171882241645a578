/* step_pass.c: the pass of a step: each thread's forward and backward over its share, for the
 * data split (float or exact sums) and the hidden split. */
#include "step.h"

#include <math.h>
#include <string.h>

/* ---- data split ------------------------------------------------------------------------------ */

/* One thread's pass as bp_thread_pass takes it, into its own buffers and slot. */
static bp_pass thread_pass_of(bp_stepper *s, int tid, const float *w1p, bp_w1_update *upd)
{
    bp_slot *slot = &s->e->slot[tid];
    return (bp_pass){.m = s->m, .w = &s->e->work[tid], .w1p = w1p, .grad = s->e->grad[tid],
                     .loss = &slot->loss, .correct = &slot->correct, .upd = upd};
}

/* Exact sums: thread tid takes a contiguous share of this rank's blocks; each block's float sums
 * go into its int64 accumulator (the first block overwrites it), unless the update rounds or
 * converts them. */
static void exact_data_pass(bp_stepper *s, const bp_step_plan *p, int tid, const bp_pass *pass,
                            const bp_batch *b)
{
    const bprop_layout *L = &s->m->layout;
    const bp_rank_part *r = &p->part;
    bp_slot *slot = &s->e->slot[tid];
    size_t t0, t1;
    bp_share(r->b1 - r->b0, p->nt, tid, &t0, &t1);
    for (size_t q = r->b0 + t0; q < r->b0 + t1; q++) {
        size_t lo = q * BP_BLOCK, hi = lo + BP_BLOCK < b->nb ? lo + BP_BLOCK : b->nb;
        bp_thread_pass(pass, b, lo, hi);
        if (p->round_in_update || p->add_blocks)
            continue; /* the update converts the block */
        for (int k = 0; k < BPROP_TENSORS; k++) {
            size_t off = L->offset[k];
            double big = s->e->k->fixed_add(s->acc[tid] + off, pass->grad + off, L->count[k],
                                      s->sc.scale[k], q == r->b0 + t0);
            slot->big = fmax(slot->big, big);
        }
    }
}

/* Float sums: contiguous sample shares summed in float, as each layout's own deterministic
 * order. */
static void float_data_pass(const bp_step_plan *p, int tid, const bp_pass *pass, const bp_batch *b)
{
    const bp_rank_part *r = &p->part;
    size_t t0, t1;
    bp_share(r->hi - r->lo, p->nt, tid, &t0, &t1);
    if (t1 > t0)
        bp_thread_pass(pass, b, r->lo + t0, r->lo + t1);
}

/* ---- hidden split ---------------------------------------------------------------------------- */

/* One thread's part of the hidden split: its slice [j0, j1) of hidden units and the network
 * view of that slice, over this rank's samples [lo, hi) of the batch. */
typedef struct hidden_job {
    bp_stepper *s;
    const bp_step_plan *p;
    int tid;
    size_t j0, j1, lo, hi;
    bp_net v;
    float *gw1;   /* (D, v.ld) the slice's W1 sums in gsh */
    float *gw2t;  /* (C, v.ld) its dW2 sums, transposed, in the stepper's gw2t */
    const bp_batch *b;
} hidden_job;

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

/* A sliced step's view of the slice: W1 from the thread's private (D, W) block, and W2's
 * slice transposed into the thread's work as (C, W), so that one row stride W serves the net
 * and its sums (the kernels take a single ld); the same values as slice_net's view. */
static bp_net sliced_net(const bp_stepper *s, int tid, const float *w1p, size_t j0, size_t j1)
{
    const bprop_model *m = s->m;
    const size_t D = m->inputs, C = m->classes, W = j1 - j0;
    const float *w2 = bprop_model_tensor(m, BPROP_W2), *b1 = bprop_model_tensor(m, BPROP_B1);
    float *w2t = s->e->work[tid].w2t; /* (C, W) */
    for (size_t j = 0; j < W; j++)
        for (size_t c = 0; c < C; c++)
            w2t[c * W + j] = w2[(j0 + j) * C + c];
    return (bp_net){.D = D, .H = W, .C = C, .ld = W, .w1 = s->w1s + D * j0,
                    .b1 = b1 ? b1 + j0 : NULL, .w2t = w2t, .b2 = bprop_model_tensor(m, BPROP_B2),
                    .w1p = w1p ? w1p + j0 * D : NULL};
}

/* A rank without samples adds zeros to the sum over ranks: clear the slice's accumulators. */
static void hidden_zero(const hidden_job *j)
{
    const bprop_model *m = j->s->m;
    const bprop_layout *L = &m->layout;
    const size_t H = m->hidden, C = m->classes, W = j->j1 - j->j0;
    int64_t *acc = j->s->acc[0];
    for (size_t k = 0; k < m->inputs; k++)
        memset(acc + L->offset[BPROP_W1] + k * H + j->j0, 0, W * sizeof(int64_t));
    memset(acc + L->offset[BPROP_W2] + j->j0 * C, 0, W * C * sizeof(int64_t));
    if (m->has_bias) {
        memset(acc + L->offset[BPROP_B1] + j->j0, 0, W * sizeof(int64_t));
        if (j->tid == 0)
            memset(acc + L->offset[BPROP_B2], 0, C * sizeof(int64_t));
    }
}

/* Forward: h of the slice for the rank's samples, and the slice's partial logits into the
 * shared (hidden blocks, hi - lo, C) array. */
static void hidden_forward(const hidden_job *j)
{
    bp_stepper *s = j->s;
    const size_t C = s->m->classes, nr = j->hi - j->lo, W = j->v.H, q0 = j->j0 / BP_HBLOCK;
    const size_t nq = (W + BP_HBLOCK - 1) / BP_HBLOCK;
    bp_work *w = &s->e->work[j->tid];
    float *h = s->hbuf + s->batch * (q0 * BP_HBLOCK); /* (batch, W) this slice's rows */
    /* Blocks in groups of as many as the thread keeps buffers for, whatever the slice's width:
     * a wide W1 is read once a group, and with float sums the backward then finds each block's
     * rows and zero-input bitmaps where the forward left them (at 2 x 128 x 256, 1.067 times
     * the speed of blocks one at a time, whose backward gathered and listed each block again). */
    const size_t most = w->group;
    bp_group gr;
    for (size_t s0 = j->lo; s0 < j->hi; s0 += gr.n * BP_BLOCK) {
        bp_forward_group(&j->v, w, j->b, s0, j->hi, most, h + (s0 - j->lo) * W, &gr);
        for (size_t i = 0; i < gr.n; i++) {
            const size_t nbk = gr.nb[i], r0 = gr.s0[i] - j->lo;
            bp_logits_partial(&j->v, nbk, gr.h[i], gr.sc[i]);
            for (size_t q = 0; q < nq; q++)
                memcpy(s->part + ((q0 + q) * nr + r0) * C, gr.sc[i]->part + q * nbk * C,
                       nbk * C * sizeof(float));
        }
    }
}

/* Fixed-point conversion of the slice's float block sums (first block: overwrite). */
static void hidden_convert(const hidden_job *j, int first)
{
    bp_stepper *s = j->s;
    const bprop_model *m = s->m;
    const bprop_layout *L = &m->layout;
    const size_t D = m->inputs, H = m->hidden, C = m->classes, j0 = j->j0, W = j->j1 - j0;
    int64_t *acc = s->acc[0];
    double big = 0.0;
    for (size_t k = 0; k < D; k++) {
        size_t off = L->offset[BPROP_W1] + k * H + j0;
        big = fmax(big, s->e->k->fixed_add(acc + off, s->gsh + off, W, s->sc.scale[BPROP_W1], first));
    }
    if (m->has_bias) {
        size_t off = L->offset[BPROP_B1] + j0;
        big = fmax(big, s->e->k->fixed_add(acc + off, s->gsh + off, W, s->sc.scale[BPROP_B1], first));
    }
    big = fmax(big, bp_fixed_add_t(s->e->k, acc + L->offset[BPROP_W2] + j0 * C, s->gw2t + j0, H, W, C,
                                   s->sc.scale[BPROP_W2], first));
    if (m->has_bias && j->tid == 0) {
        size_t off = L->offset[BPROP_B2];
        big = fmax(big, s->e->k->fixed_add(acc + off, s->gsh + off, C, s->sc.scale[BPROP_B2], first));
    }
    s->e->slot[j->tid].big = fmax(s->e->slot[j->tid].big, big);
}

/* Every thread forms all the logits of the rank's samples from the partials (the same sums in
 * the same order as bp_forward_block) and their loss; thread 0 keeps the loss. Returns it. */
static double hidden_logits(const hidden_job *j)
{
    bp_stepper *s = j->s;
    const size_t C = s->m->classes, nr = j->hi - j->lo;
    const size_t nhb = (s->m->hidden + BP_HBLOCK - 1) / BP_HBLOCK;
    bp_slot *slot = &s->e->slot[j->tid];
    float *z = s->logits[j->tid];
    int32_t *y = s->labels[j->tid];
    for (size_t r = 0; r < nr; r++)
        y[r] = j->b->Y[bp_sample_at(j->b, j->lo + r)];
    bp_logits_combine(j->v.b2, s->part, nhb, nr, C, z);
    double loss = bp_softmax_xent(z, y, nr, C, s->pred[j->tid]);
    if (j->tid == 0) {
        slot->loss += loss;
        for (size_t r = 0; r < nr; r++)
            slot->correct += s->pred[j->tid][r] == y[r];
    }
    return loss;
}

/* Zero the slice's float sums of dW2t, db1 and db2 before a block that starts them afresh. */
static void zero_slice_sums(const bp_grads *g, size_t H, size_t C, size_t W)
{
    for (size_t c = 0; c < C; c++)
        memset(g->w2t + c * H, 0, W * sizeof(float));
    if (g->b1)
        memset(g->b1, 0, W * sizeof(float));
    if (g->b2)
        memset(g->b2, 0, C * sizeof(float));
}

/* The input rows of the backward's block [s0, s0 + nbk). A single block is still where the
 * forward's gather left it (w->rows, and byte rows converted in w->xbuf), with the zero-input
 * bitmaps the kernels keep for it: nothing to do. Several blocks are gathered again; byte rows
 * are then converted into the buffer the forward's blocks used, so the same row pointers no
 * longer mean the same samples and the kept bitmaps (by pointer) would describe another block. */
static void backward_rows(const hidden_job *j, bp_work *w, size_t s0, size_t nbk)
{
    if (j->hi - j->lo <= BP_BLOCK)
        return;
    bp_gather_rows(w, j->b, s0, nbk);
    if (!j->b->X.x)
        w->scratch.nz_n = 0;
}

/* Float sums of a slice, in hidden_forward's groups of blocks: per group of blocks, each block's dW2t, db1 and db2 sums and dh (block order), then dW1 (or W1's in-pass
 * update, in the last group) panel by panel through the group's blocks: every sum's chain is
 * that of block after block. The forward left every block's rows and lists in its own buffers
 * when the slice had a single group; with several, each block is gathered again into its
 * group slot (byte rows converted there, so their kept bitmaps no longer apply). */
static void hidden_backward_groups(const hidden_job *j, bp_grads *g, bp_w1_update *last_upd,
                                   size_t most)
{
    bp_stepper *s = j->s;
    const size_t C = s->m->classes, W = j->j1 - j->j0;
    bp_work *w = &s->e->work[j->tid];
    float *h = s->hbuf + s->batch * j->j0, *z = s->logits[j->tid];
    const int regather = j->hi - j->lo > most * BP_BLOCK;
    zero_slice_sums(g, j->v.ld, C, W);
    for (size_t s0 = j->lo; s0 < j->hi; s0 += most * BP_BLOCK) {
        size_t n = 0, nb[BP_FWD_GROUP];
        const float *const *xr[BP_FWD_GROUP];
        float *dh[BP_FWD_GROUP];
        bp_scratch *sc[BP_FWD_GROUP];
        for (size_t b0 = s0; n < most && b0 < j->hi; n++, b0 += BP_BLOCK) {
            bp_work *wi = bp_work_block(w, n);
            nb[n] = j->hi - b0 < BP_BLOCK ? j->hi - b0 : BP_BLOCK;
            if (regather) {
                bp_gather_rows(wi, j->b, b0, nb[n]);
                if (!j->b->X.x)
                    wi->scratch.nz_n = 0;
            }
            xr[n] = wi->rows;
            dh[n] = h + (b0 - j->lo) * W;
            sc[n] = &wi->scratch;
            bp_backward_hidden(&j->v, nb[n], dh[n], z + (b0 - j->lo) * C, g, sc[n]);
        }
        g->w1_update = s0 + most * BP_BLOCK >= j->hi ? last_upd : NULL;
        if (g->w1_update)
            g->w1_update->applied = 1;
        bp_backward_w1_group(&j->v, n, xr, nb, dh, g, s0 == j->lo, sc);
    }
}

/* Backward of the slice, block by block. Exact sums: each block's float sums from zero, then
 * into int64 (unless the update rounds them). Float sums: one chain per entry over every block,
 * as one thread's pass forms it. */
static void hidden_backward_blocks(const hidden_job *j, bp_grads *g, bp_w1_update *last_upd)
{
    bp_stepper *s = j->s;
    const size_t C = s->m->classes, W = j->j1 - j->j0;
    const int exact = j->p->exact, convert = exact && !j->p->round_in_update;
    bp_work *w = &s->e->work[j->tid];
    float *h = s->hbuf + s->batch * j->j0, *z = s->logits[j->tid];
    for (size_t s0 = j->lo; s0 < j->hi; s0 += BP_BLOCK) {
        size_t nbk = j->hi - s0 < BP_BLOCK ? j->hi - s0 : BP_BLOCK;
        backward_rows(j, w, s0, nbk);
        const int sums_from_zero = exact || s0 == j->lo;
        if (sums_from_zero)
            zero_slice_sums(g, j->v.ld, C, W);
        g->w1_update = s0 + nbk == j->hi ? last_upd : NULL;
        if (g->w1_update)
            g->w1_update->applied = 1;
        bp_backward_block(&j->v, w->rows, nbk, h + (s0 - j->lo) * W, z + (s0 - j->lo) * C, g,
                          sums_from_zero, &w->scratch);
        if (convert)
            hidden_convert(j, s0 == j->lo);
    }
}

/* Backward of the slice: its logits, then its sums group by group as its forward ran (float
 * sums), or block by block (exact sums, which convert each block). Thread 0 owns db2. */
static void hidden_backward(const hidden_job *j, bp_w1_update *upd)
{
    bp_stepper *s = j->s;
    const bprop_model *m = s->m;
    const bprop_layout *L = &m->layout;
    const size_t C = m->classes, j0 = j->j0, W = j->j1 - j0;
    const int convert = j->p->exact && !j->p->round_in_update;
    const double loss = hidden_logits(j);
    bp_grads g = {.w1 = j->gw1,
                  .b1 = m->has_bias ? s->gsh + L->offset[BPROP_B1] + j0 : NULL,
                  .w2t = j->gw2t,
                  .b2 = m->has_bias && j->tid == 0 ? s->gsh + L->offset[BPROP_B2] : NULL};
    /* In the last block's pass; a non-finite loss stops training without an update. */
    bp_w1_update *last_upd = upd && isfinite(loss) ? upd : NULL;
    const size_t most = s->e->work[j->tid].group; /* as hidden_forward grouped them */
    if (!j->p->exact && most > 1)
        hidden_backward_groups(j, &g, last_upd, most);
    else
        hidden_backward_blocks(j, &g, last_upd);
    if (!convert) /* the update reads W2's sums from gsh, in the model's (H, C) layout */
        for (size_t jj = 0; jj < W; jj++)
            for (size_t c = 0; c < C; c++)
                s->gsh[L->offset[BPROP_W2] + (j0 + jj) * C + c] = j->gw2t[c * j->v.ld + jj];
}

/* Forward of every slice, a barrier (every slice's partial logits are in; over ranks, after
 * their exchange), then backward. */
static void hidden_pass(bp_stepper *s, const bp_step_plan *p, int tid, const float *w1p,
                        const bp_batch *b, bp_w1_update *upd)
{
    hidden_job j = {.s = s, .p = p, .tid = tid, .lo = p->part.lo, .hi = p->part.hi, .b = b};
    const bprop_model *m = s->m;
    bp_plan_slice(p, m->hidden, tid, &j.j0, &j.j1);
    /* A sliced step keeps the slice's W1 and its sums as (D, W) blocks at D j0, and its dW2t
     * sums as a (C, W) block at C j0; otherwise they are columns of (D, H) and (C, H). */
    if (p->w1_sliced) {
        j.v = sliced_net(s, tid, w1p, j.j0, j.j1);
        j.gw1 = s->gsh + m->layout.offset[BPROP_W1] + m->inputs * j.j0;
        j.gw2t = s->gw2t + m->classes * j.j0;
    } else {
        j.v = slice_net(s, tid, w1p, j.j0, j.j1);
        j.gw1 = s->gsh + m->layout.offset[BPROP_W1] + j.j0;
        j.gw2t = s->gw2t + j.j0;
    }
    if (j.hi > j.lo)
        hidden_forward(&j);
#pragma omp barrier
    if (p->rank_hidden) { /* the other ranks' blocks of partial logits */
        if (tid == 0 && bp_gather_partials(s, p))
            s->comm_failed = 1;
#pragma omp barrier
    }
    if (j.hi > j.lo)
        hidden_backward(&j, upd);
    else
        hidden_zero(&j);
}

/* ---- the phase ------------------------------------------------------------------------------ */

void bp_step_pass(bp_stepper *s, const bp_step_plan *p, int tid, const float *w1p,
                  const bp_batch *b, bp_w1_update *upd)
{
    if (p->split == BP_SPLIT_HIDDEN) {
        hidden_pass(s, p, tid, w1p, b, upd);
        return;
    }
    const bp_pass pass = thread_pass_of(s, tid, w1p, upd);
    if (p->exact)
        exact_data_pass(s, p, tid, &pass, b);
    else
        float_data_pass(p, tid, &pass, b);
}
