/* exec_fma.h: the FMAs bprop's kernels execute in one training epoch, read off their own zero-input lists. */
#ifndef BPROP_BENCH_EXEC_FMA_H
#define BPROP_BENCH_EXEC_FMA_H

/*
 * The kernels skip zero inputs in layer 1 (kernels.h, bp_scratch), so a run executes fewer FMAs
 * than the dense count 2DH + 3HC per sample (D inputs, H hidden units, C classes). The executed
 * count of one epoch, in FMAs:
 *
 *   3 H C per sample                      layer 2: logits, dW2 and dh are computed densely
 * + sum over forward tiles of m * k * W   a tile of m samples computes every pixel of its list
 *                                         (the k pixels non-zero in at least one of them) for
 *                                         all m samples and the W units of the thread's view
 * + sum over dW1 tiles of r * s * W       a tile of r pixels adds the s samples of its list
 *                                         (those with a non-zero pixel among the r) for all r
 *                                         pixels and W units
 *
 * A view narrower than the kernels' sparse threshold lists every pixel and every sample, which
 * the same sums then count as D W per sample each way. Padding lanes (a width that is not a
 * multiple of the vector length) are not counted.
 *
 * The lists are the kernels' own: for every block of every step, cut from the batch the way
 * src/step.c cuts it (exec_step below), the counter runs forward_hidden and backward_block
 * of the kernel set in use (or of a named one) on a net of zero weights and reads k and s from
 * the scratch. The tile heights m and r are not exported: exec_probe reads them off the lists
 * of a probe block whose sample i has pixel i alone non-zero. The lists depend on the view's
 * width only through the kernels' thresholds (sparse or not, greedy grouping or not), so a view
 * wider than EXEC_COUNT_W is counted at that width, after the first block has shown the same
 * list lengths at both widths (otherwise at its own width). Nothing here runs in the timed
 * epoch.
 */

#include "bprop.h"
#include "cost.h"
#include "kernels.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Widest view the lists are built at (a view of exactly this width costs about a sixth of an
 * H = 256 pass), and the width of the probe block's net (surely above the sparse threshold). */
#define EXEC_COUNT_W 64
#define EXEC_PROBE_W 256
/* Distinct view widths one epoch can have: the whole net, or up to three slice widths. */
#define EXEC_MAX_VIEWS 4

/* A zero-weight net of up to wmax units and the kernels' buffers for one block. */
typedef struct exec_counter {
    const bp_kernels *k;              /* the kernel set whose lists are counted */
    size_t D, C, wmax;
    size_t fwd_mr, bwd_mr;            /* tile heights (samples, pixels), from exec_probe */
    float *w1, *b1, *w2t, *b2;        /* (D, wmax), (wmax), (C, wmax), (C): zeros */
    float *gw1, *gb1, *gw2t, *gb2;    /* the gradients' shapes, written and ignored */
    float *h, *dl;                    /* (BP_BLOCK, wmax), (BP_BLOCK, C) */
    const float **rows;               /* (BP_BLOCK) the block's rows */
    float *xbuf;                      /* (BP_BLOCK, D) byte rows of a block as floats */
    bp_scratch sc;
    int have_sc;
    size_t view_w[EXEC_MAX_VIEWS];    /* view widths seen in this epoch ... */
    size_t count_w[EXEC_MAX_VIEWS];   /* ... and the width each is counted at */
    size_t nviews;
} exec_counter;

static inline void exec_counter_free(exec_counter *ec)
{
    if (ec->have_sc)
        bp_scratch_free(&ec->sc);
    free(ec->w1), free(ec->b1), free(ec->w2t), free(ec->b2);
    free(ec->gw1), free(ec->gb1), free(ec->gw2t), free(ec->gb2);
    free(ec->h), free(ec->dl), free(ec->rows), free(ec->xbuf);
    memset(ec, 0, sizeof *ec);
}

/* Runs the kernels' forward and backward passes over the block in ec->rows (nb rows) on a
 * zero-weight view of w units, which leaves the block's lists in ec->sc. */
static inline void exec_lists(exec_counter *ec, size_t nb, size_t w)
{
    const size_t D = ec->D, C = ec->C;
    bp_net net = {D, w, C, w, ec->w1, ec->b1, ec->w2t, ec->b2, NULL};
    bp_grads g = {ec->gw1, ec->gb1, ec->gw2t, ec->gb2, NULL};
    memset(ec->gw2t, 0, C * w * sizeof(float));
    bp_forward_hidden(&net, ec->rows, nb, ec->h, &ec->sc);
    bp_backward_block(&net, ec->rows, nb, ec->h, ec->dl, &g, 1, &ec->sc);
}

/* Layer-1 FMAs per hidden unit of one block of nb rows (ec->rows) on a view of width w: the
 * forward tiles' m * k plus the dW1 tiles' r * s, read from the lists the kernels built. */
static inline double exec_block_per_unit(exec_counter *ec, size_t nb, size_t w)
{
    const size_t D = ec->D;
    exec_lists(ec, nb, w);
    double fma = 0.0;
    for (size_t t = 0; t * ec->fwd_mr < nb; t++) {
        const size_t m = nb - t * ec->fwd_mr < ec->fwd_mr ? nb - t * ec->fwd_mr : ec->fwd_mr;
        fma += (double)m * (double)ec->sc.fwd_n[t];
    }
    if (ec->sc.bwd_rows)
        return fma + (double)nb * (double)D; /* no lists: every sample of every pixel */
    const size_t whole = D / ec->bwd_mr, tiles = whole + D % ec->bwd_mr;
    for (size_t t = 0; t < tiles; t++)
        fma += (double)(t < whole ? ec->bwd_mr : 1) * (double)ec->sc.bwd_n[t];
    return fma;
}

/* Reads the tile heights off a probe block of BP_BLOCK samples, sample i with pixel i alone
 * non-zero: a forward tile's list is then its own samples' pixels (k = m), and the first dW1
 * tile lists the samples of its r pixels. Checks that every tile says the same. */
static inline int exec_probe(exec_counter *ec, float *x)
{
    const size_t D = ec->D, n = BP_BLOCK, w = EXEC_PROBE_W;
    for (size_t i = 0; i < n; i++) {
        x[i * D + i] = 1.0f;
        ec->rows[i] = x + i * D;
    }
    exec_lists(ec, n, w);
    ec->fwd_mr = ec->sc.fwd_n[0];
    ec->bwd_mr = ec->sc.bwd_rows ? 0 : ec->sc.bwd_n[0];
    if (ec->fwd_mr < 1 || ec->fwd_mr > n || ec->bwd_mr < 1 || ec->bwd_mr > 8)
        return -1;
    for (size_t t = 0; t * ec->fwd_mr < n; t++) {
        const size_t m = n - t * ec->fwd_mr < ec->fwd_mr ? n - t * ec->fwd_mr : ec->fwd_mr;
        if (ec->sc.fwd_n[t] != m)
            return -1;
    }
    for (size_t t = 0; t < D / ec->bwd_mr; t++) {
        const size_t k = t * ec->bwd_mr, s = k >= n ? 0 : (n - k < ec->bwd_mr ? n - k : ec->bwd_mr);
        if (ec->sc.bwd_n[t] != s)
            return -1;
    }
    return 0;
}

/* A counter of kernel set k (NULL: the set in use, as training uses it) for D inputs, C classes
 * and views up to h units wide (D >= BP_BLOCK); 0 on success, -1 when out of memory or when the
 * kernels' lists do not look as described above (then nothing can be counted). */
static inline int exec_counter_init(exec_counter *ec, const bp_kernels *k, size_t D, size_t C,
                                    size_t h)
{
    memset(ec, 0, sizeof *ec);
    const size_t w = h > EXEC_PROBE_W ? h : EXEC_PROBE_W;
    ec->k = k ? k : bp_kernels_choose(NULL, 0);
    ec->D = D, ec->C = C, ec->wmax = w;
    ec->w1 = calloc(D * w, sizeof(float)), ec->b1 = calloc(w, sizeof(float));
    ec->w2t = calloc(C * w, sizeof(float)), ec->b2 = calloc(C, sizeof(float));
    ec->gw1 = calloc(D * w, sizeof(float)), ec->gb1 = calloc(w, sizeof(float));
    ec->gw2t = calloc(C * w, sizeof(float)), ec->gb2 = calloc(C, sizeof(float));
    ec->h = calloc(BP_BLOCK * w, sizeof(float)), ec->dl = calloc(BP_BLOCK * C, sizeof(float));
    ec->rows = calloc(BP_BLOCK, sizeof *ec->rows);
    ec->xbuf = calloc(BP_BLOCK * D, sizeof(float));
    float *x = calloc(BP_BLOCK * D, sizeof(float));
    int ok = D >= BP_BLOCK && ec->w1 && ec->b1 && ec->w2t && ec->b2 && ec->gw1 && ec->gb1 &&
             ec->gw2t && ec->gb2 && ec->h && ec->dl && ec->rows && ec->xbuf && x;
    if (ok) { /* scratch_free also frees what a failed scratch_alloc left */
        ec->have_sc = 1;
        ok = bp_scratch_alloc(&ec->sc, ec->k, D, w, C);
    }
    if (ok)
        ok = exec_probe(ec, x) == 0;
    free(x);
    if (!ok)
        exec_counter_free(ec);
    return ok ? 0 : -1;
}

/* The width a view of w units is counted at: EXEC_COUNT_W when w is wider and the block in
 * ec->rows (nb rows) gives the same list lengths at both, else w. Decided once per width. */
static inline size_t exec_count_width(exec_counter *ec, size_t nb, size_t w)
{
    for (size_t i = 0; i < ec->nviews; i++)
        if (ec->view_w[i] == w)
            return ec->count_w[i];
    size_t cw = w;
    if (w > EXEC_COUNT_W &&
        exec_block_per_unit(ec, nb, w) == exec_block_per_unit(ec, nb, EXEC_COUNT_W))
        cw = EXEC_COUNT_W;
    if (ec->nviews < EXEC_MAX_VIEWS) {
        ec->view_w[ec->nviews] = w;
        ec->count_w[ec->nviews++] = cw;
    }
    return cw;
}

/* Layer-1 FMAs of samples [a, b) of d (in the file's order) cut into blocks of BP_BLOCK from a,
 * on a view of w units. */
static inline double exec_range(exec_counter *ec, const bprop_dataset *d, size_t a, size_t b,
                                size_t w)
{
    double fma = 0.0;
    for (size_t s0 = a; s0 < b; s0 += BP_BLOCK) {
        const size_t nb = b - s0 < BP_BLOCK ? b - s0 : BP_BLOCK;
        for (size_t r = 0; r < nb; r++)
            ec->rows[r] = bprop_dataset_row(d, s0 + r, ec->xbuf + r * d->dim); /* bytes: as floats */
        fma += exec_block_per_unit(ec, nb, exec_count_width(ec, nb, w)) * (double)w;
    }
    return fma;
}

/* Items [lo, hi) of n shared as evenly as possible over nt takers: taker t's share. */
static inline void exec_share(size_t n, size_t nt, size_t t, size_t *lo, size_t *hi)
{
    *lo = n * t / nt;
    *hi = n * (t + 1) / nt;
}

/* Whether a step of nb samples on nt threads of one process runs the hidden split: mirrors
 * choose_split (src/step.c): it needs a 64-unit block (BP_HBLOCK) of hidden units per thread;
 * auto takes the split the cost model (src/cost.h) predicts fastest. */
static inline int exec_uses_hidden(const exec_counter *ec, bprop_parallel p, size_t nb, size_t nt,
                                   size_t H, int reproducible)
{
    if (nt < 2 || (H + BP_HBLOCK - 1) / BP_HBLOCK < nt)
        return 0;
    if (p != BPROP_PARALLEL_AUTO)
        return p == BPROP_PARALLEL_HIDDEN;
    const bp_cost_shape shape = {.samples = nb, .inputs = ec->D, .hidden = H, .classes = ec->C,
                                 .has_bias = 1, .threads = (int)nt, .ranks = 1,
                                 .exact = reproducible, .kernels = ec->k->name};
    return bp_cost_choose(&shape) == BP_SPLIT_HIDDEN;
}

/* Layer-1 FMAs of one step over samples [first, first + nb), cut as src/step.c cuts it: the
 * hidden split runs the batch's blocks on each thread's slice of whole 64-unit blocks; the data
 * split with exact sums (reproducible) shares out the batch's blocks; with float sums each thread
 * takes a contiguous share of the samples and cuts it into blocks from its own start. */
static inline double exec_step(exec_counter *ec, const bprop_dataset *d, size_t first, size_t nb,
                               size_t nt, size_t H, bprop_parallel p, int reproducible)
{
    double fma = 0.0;
    if (exec_uses_hidden(ec, p, nb, nt, H, reproducible)) {
        const size_t nhb = (H + BP_HBLOCK - 1) / BP_HBLOCK;
        for (size_t t = 0; t < nt; t++) {
            size_t q0, q1;
            exec_share(nhb, nt, t, &q0, &q1);
            const size_t j0 = q0 * BP_HBLOCK < H ? q0 * BP_HBLOCK : H;
            const size_t j1 = q1 * BP_HBLOCK < H ? q1 * BP_HBLOCK : H;
            if (j1 > j0)
                fma += exec_range(ec, d, first, first + nb, j1 - j0);
        }
        return fma;
    }
    if (reproducible || nt < 2)
        return exec_range(ec, d, first, first + nb, H);
    for (size_t t = 0; t < nt; t++) {
        size_t lo, hi;
        exec_share(nb, nt, t, &lo, &hi);
        if (hi > lo)
            fma += exec_range(ec, d, first + lo, first + hi, H);
    }
    return fma;
}

/* FMAs the kernels execute in one epoch over d in the file's order (no shuffling), batches of
 * batch samples (the last one shorter), on nt threads of one process, with h hidden units;
 * the counter must have been made for views up to h units wide. */
static inline double exec_epoch_fmas(exec_counter *ec, const bprop_dataset *d, size_t batch,
                                     size_t nt, size_t h, bprop_parallel p, int reproducible)
{
    double fma = 3.0 * (double)d->n * (double)h * (double)d->classes;
    ec->nviews = 0;
    for (size_t first = 0; first < d->n; first += batch) {
        const size_t nb = d->n - first < batch ? d->n - first : batch;
        fma += exec_step(ec, d, first, nb, nt, h, p, reproducible);
    }
    return fma;
}

#endif /* BPROP_BENCH_EXEC_FMA_H */
