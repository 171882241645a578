/* engine.c: per-thread buffers and the per-thread forward/backward pass. */
#include "engine.h"

#include <math.h>
#include <omp.h>
#include <string.h>

int bp_resolve_threads(int requested) { return requested > 0 ? requested : omp_get_max_threads(); }

void bp_share(size_t n, int nt, int t, size_t *lo, size_t *hi)
{
    *lo = n * (size_t)t / (size_t)nt;
    *hi = n * (size_t)(t + 1) / (size_t)nt;
}

void bp_param_chunk(size_t n, int nt, int t, size_t *a, size_t *b)
{
    const size_t line = BP_ALIGN / sizeof(float);
    size_t lines = (n + line - 1) / line;
    *a = lines * (size_t)t / (size_t)nt * line;
    *b = lines * (size_t)(t + 1) / (size_t)nt * line;
    if (*a > n)
        *a = n;
    if (*b > n)
        *b = n;
}

static void work_free(bp_work *w)
{
    for (size_t i = 0; w->more && i + 1 < w->group; i++)
        work_free(&w->more[i]);
    bp_free(w->more);
    bp_free(w->h);
    bp_free(w->logits);
    bp_free(w->pred);
    bp_free(w->y);
    bp_free(w->rows);
    bp_free(w->xbuf);
    bp_free(w->w2t);
    bp_free(w->gw2t);
    bp_free(w->confusion);
    bp_scratch_free(&w->scratch);
}

/* A block's own buffers: h, rows, xbuf and scratch. */
static int block_alloc(bp_work *w, const bp_kernels *k, size_t D, size_t H, size_t C)
{
    w->group = 1;
    if (!bp_scratch_alloc(&w->scratch, k, D, H, C))
        return 0;
    w->h = bp_alloc((size_t)BP_BLOCK * H, sizeof(float));
    w->rows = bp_alloc(BP_BLOCK, sizeof(float *));
    w->xstride = bp_src_stride(D);
    w->xbuf = bp_alloc((size_t)BP_BLOCK * w->xstride, sizeof(float));
    return w->h && w->rows && w->xbuf;
}

/* group: how many blocks' buffers (bp_work's group). */
static int work_alloc(bp_work *w, const bp_kernels *k, size_t D, size_t H, size_t C, size_t group)
{
    if (!block_alloc(w, k, D, H, C))
        return 0;
    if (group > 1) {
        if (!(w->more = bp_alloc(group - 1, sizeof *w->more)))
            return 0;
        w->group = group;
        for (size_t i = 0; i + 1 < group; i++)
            if (!block_alloc(&w->more[i], k, D, H, C))
                return 0;
    }
    w->logits = bp_alloc((size_t)BP_BLOCK * C, sizeof(float));
    w->pred = bp_alloc(BP_BLOCK, sizeof(int32_t));
    w->y = bp_alloc(BP_BLOCK, sizeof(int32_t));
    w->w2t = bp_alloc(C * H, sizeof(float));
    w->gw2t = bp_alloc(C * H, sizeof(float));
    w->confusion = bp_alloc(C * C, sizeof(uint64_t));
    return w->logits && w->pred && w->y && w->w2t && w->gw2t && w->confusion;
}

void bp_engine_free(bp_engine *e)
{
    if (!e)
        return;
    for (int t = 0; t < e->threads; t++) {
        if (e->grad)
            bp_free(e->grad[t]);
        if (e->work)
            work_free(&e->work[t]);
    }
    bp_free(e->grad);
    bp_free(e->w1p);
    bp_free(e->work);
    bp_free(e->slot);
    bp_free(e);
}

bprop_status bp_engine_create(const bprop_model *m, int threads, int with_grads, bp_engine **out)
{
    bp_engine *e = bp_alloc(1, sizeof *e);
    if (!e)
        return BPROP_E_NOMEM;
    e->k = bp_kernels_choose(NULL, 0);
    e->threads = threads;
    e->params = m->layout.total;
    e->work = bp_alloc((size_t)threads, sizeof *e->work);
    e->slot = bp_alloc((size_t)threads, sizeof *e->slot);
    int ok = e->work && e->slot;
    const size_t packed = bp_w1_packed_size(e->k, m->inputs, m->hidden);
    if (ok && packed)
        ok = (e->w1p = bp_alloc(packed, sizeof(float))) != NULL;
    if (ok && with_grads) {
        e->grad = bp_alloc((size_t)threads, sizeof *e->grad);
        ok = e->grad != NULL;
    }
    /* A training thread keeps a group of blocks' buffers: a wide net's data split reads W1
     * once a group, and the hidden split keeps every block's rows and lists of its forward for
     * its backward (step_pass.c). */
    const size_t group = with_grads ? BP_FWD_GROUP : 1;
    for (int t = 0; ok && t < threads; t++) {
        ok = work_alloc(&e->work[t], e->k, m->inputs, m->hidden, m->classes, group);
        if (ok && with_grads)
            ok = (e->grad[t] = bp_alloc(e->params, sizeof(float))) != NULL;
    }
    if (!ok) {
        bp_engine_free(e);
        return BPROP_E_NOMEM;
    }
    *out = e;
    return BPROP_OK;
}

void bp_hidden_slice(size_t H, int nt, int t, size_t *j0, size_t *j1)
{
    size_t nhb = (H + BP_HBLOCK - 1) / BP_HBLOCK, q0, q1;
    bp_share(nhb, nt, t, &q0, &q1);
    *j0 = q0 * BP_HBLOCK < H ? q0 * BP_HBLOCK : H;
    *j1 = q1 * BP_HBLOCK < H ? q1 * BP_HBLOCK : H;
}

void bp_engine_pack(bp_engine *e, const bprop_model *m, int tid, int nt)
{
    if (!e->w1p)
        return;
    size_t j0, j1;
    bp_hidden_slice(m->hidden, nt, tid, &j0, &j1);
    if (j1 > j0) {
        const bp_net net = {.D = m->inputs, .H = m->hidden, .C = m->classes, .ld = m->hidden,
                            .w1 = bprop_model_tensor(m, BPROP_W1)};
        bp_pack_w1(e->k, &net, j0, j1, e->w1p);
    }
}

bp_net bp_work_net(const bprop_model *m, bp_work *w, const float *w1p)
{
    const size_t H = m->hidden, C = m->classes;
    const float *w2 = bprop_model_tensor(m, BPROP_W2); /* (H, C) */
    for (size_t j = 0; j < H; j++)
        for (size_t c = 0; c < C; c++)
            w->w2t[c * H + j] = w2[j * C + c];
    return (bp_net){.D = m->inputs, .H = H, .C = C, .ld = H,
                    .w1 = bprop_model_tensor(m, BPROP_W1), .b1 = bprop_model_tensor(m, BPROP_B1),
                    .w2t = w->w2t, .b2 = bprop_model_tensor(m, BPROP_B2), .w1p = w1p};
}

/* Fold the transposed dW2 sums (C, H) into the gradient buffer's W2 block (H, C). */
static void fold_w2(const float *gw2t, float *gw2, size_t H, size_t C)
{
    for (size_t j = 0; j < H; j++)
        for (size_t c = 0; c < C; c++)
            gw2[j * C + c] = gw2t[c * H + j];
}

void bp_gather_rows(bp_work *w, const bp_batch *b, size_t s0, size_t nb)
{
    for (size_t r = 0; r < nb; r++)
        w->rows[r] = bp_src_row(&b->X, bp_sample_at(b, s0 + r), w->xbuf + r * w->xstride);
}

void bp_forward_group(const bp_net *net, bp_work *w, const bp_batch *b, size_t s0, size_t hi,
                      size_t most, float *hout, bp_group *gr)
{
    gr->n = 0;
    for (; gr->n < most && gr->n < w->group && s0 < hi; gr->n++, s0 += BP_BLOCK) {
        const size_t i = gr->n;
        bp_work *wi = bp_work_block(w, i);
        gr->s0[i] = s0;
        gr->nb[i] = hi - s0 < BP_BLOCK ? hi - s0 : BP_BLOCK;
        bp_gather_rows(wi, b, s0, gr->nb[i]);
        gr->xr[i] = wi->rows;
        gr->h[i] = hout ? hout + (gr->s0[i] - gr->s0[0]) * net->H : wi->h;
        gr->sc[i] = &wi->scratch;
    }
    if (gr->n == 1)
        bp_forward_hidden(net, gr->xr[0], gr->nb[0], gr->h[0], gr->sc[0]);
    else
        bp_forward_hidden_group(net, gr->n, gr->xr, gr->nb, gr->h, gr->sc);
}

/* Block i of the group: its logits, loss and count, and the first half of its backward (dW2t,
 * db2, db1; its h becomes dh). */
static void block_loss_hidden(const bp_pass *p, const bp_batch *b, const bp_net *net,
                              const bp_group *gr, size_t i, bp_grads *g)
{
    bp_work *w = p->w;
    const size_t nb = gr->nb[i], C = net->C, nhb = (net->H + BP_HBLOCK - 1) / BP_HBLOCK;
    for (size_t r = 0; r < nb; r++)
        w->y[r] = b->Y[bp_sample_at(b, gr->s0[i] + r)];
    bp_logits_partial(net, nb, gr->h[i], gr->sc[i]);
    bp_logits_combine(net->b2, gr->sc[i]->part, nhb, nb, C, w->logits);
    *p->loss += bp_softmax_xent(w->logits, w->y, nb, C, w->pred);
    for (size_t r = 0; r < nb; r++)
        *p->correct += w->pred[r] == w->y[r];
    bp_backward_hidden(net, nb, gr->h[i], w->logits, g, gr->sc[i]);
}

void bp_thread_pass(const bp_pass *p, const bp_batch *b, size_t lo, size_t hi)
{
    const bprop_model *m = p->m;
    const bprop_layout *L = &m->layout;
    const size_t H = m->hidden, C = m->classes;
    bp_work *w = p->w;
    bp_net net = bp_work_net(m, w, p->w1p);
    bp_grads g = {.w1 = p->grad + L->offset[BPROP_W1],
                  .b1 = m->has_bias ? p->grad + L->offset[BPROP_B1] : NULL,
                  .w2t = w->gw2t,
                  .b2 = m->has_bias ? p->grad + L->offset[BPROP_B2] : NULL};
    memset(w->gw2t, 0, C * H * sizeof(float));
    if (m->has_bias) {
        memset(g.b1, 0, H * sizeof(float));
        memset(g.b2, 0, C * sizeof(float));
    }
    /* Blocks in groups where W1 is too large for L2 (BP_FWD_GROUP_MIN), else one at a time. */
    const size_t most = m->inputs * H * sizeof(float) >= BP_FWD_GROUP_MIN ? w->group : 1;
    bp_group gr;
    for (size_t s0 = lo; s0 < hi; s0 += gr.n * BP_BLOCK) {
        bp_forward_group(&net, w, b, s0, hi, most, NULL, &gr);
        for (size_t i = 0; i < gr.n; i++)
            block_loss_hidden(p, b, &net, &gr, i, &g);
        /* In the last group (its last block); a non-finite loss stops training without an
         * update, so then W1 keeps its values. */
        const size_t end = gr.s0[gr.n - 1] + gr.nb[gr.n - 1];
        g.w1_update = p->upd && end == hi && isfinite(*p->loss) ? p->upd : NULL;
        if (g.w1_update)
            p->upd->applied = 1;
        bp_backward_w1_group(&net, gr.n, gr.xr, gr.nb, gr.h, &g, s0 == lo, gr.sc);
    }
    fold_w2(w->gw2t, p->grad + L->offset[BPROP_W2], H, C);
}

void bp_sum_buffers(float *const *grads, const int *active, int na, size_t a, size_t n, float *out)
{
    const float *g0 = grads[active[0]] + a;
    if (out != g0)
        memcpy(out, g0, n * sizeof(float));
    for (int u = 1; u < na; u++) {
        const float *gu = grads[active[u]] + a;
        /* The next block of another thread's buffer sits in that thread's cache: ask for it now
         * so the cross-core transfer overlaps this block's sum. */
        for (size_t i = 0; i < n; i += BP_ALIGN / sizeof(float))
            __builtin_prefetch(gu + n + i);
#pragma omp simd
        for (size_t i = 0; i < n; i++)
            out[i] += gu[i];
    }
}
