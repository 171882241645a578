/* engine.h: per-thread buffers and the per-thread forward/backward pass (internal). */
#ifndef BPROP_ENGINE_H
#define BPROP_ENGINE_H

#include "fixed.h"
#include "internal.h"
#include "kernels.h"
#include "rows.h"

/* One thread's scratch for a block of samples; every array is its own cache-aligned allocation,
 * so two threads never write to the same cache line. */
typedef struct bp_work {
    float *h;           /* (BP_BLOCK, H) activations, then dL/d(pre-activation) */
    float *logits;      /* (BP_BLOCK, C) logits, then dL/dlogits */
    int32_t *pred;      /* (BP_BLOCK) arg-max classes */
    int32_t *y;         /* (BP_BLOCK) labels of the block */
    const float **rows; /* (BP_BLOCK) pointers to the block's input rows */
    float *xbuf;        /* (BP_BLOCK, xstride) byte rows of the block converted to floats */
    size_t xstride;     /* bp_src_stride(D) */
    float *w2t;         /* (C, H) W2 transposed, refreshed at the start of each pass */
    float *gw2t;        /* (C, H) dW2 sums, transposed */
    uint64_t *confusion; /* (C, C) evaluation counts [true][predicted] */
    bp_scratch scratch; /* kernel scratch of the engine's set: zero-input lists, padded tail columns */
    size_t group;       /* blocks whose buffers the thread keeps (bp_forward_group): 1 for an
                           evaluation engine, BP_FWD_GROUP for a training engine */
    struct bp_work *more; /* (group - 1) the further blocks' h, rows, xbuf and scratch (the rest
                             of each is NULL) */
} bp_work;

/* Block i of w's group: w itself for 0, else its further buffers. */
static inline struct bp_work *bp_work_block(struct bp_work *w, size_t i)
{
    return i ? &w->more[i - 1] : w;
}

/* Per-thread scalars, one cache line (or more) each, read by the master after a barrier. */
typedef struct bp_slot {
    double loss;                   /* summed loss of the thread's share */
    size_t correct;                /* correct predictions in the share */
    double norm2[BPROP_TENSORS];   /* squared loss-gradient norm of the thread's parameter part */
    double wmax[BPROP_TENSORS];    /* largest |parameter| of the part this thread updated */
    double big;                    /* largest scaled magnitude this thread turned into fixed point */
    bp_sq128 sq;                   /* exact partial sum of squares of the update (clipping) */
    bp_w1_update upd;              /* W1's update in this thread's backward pass, if any */
    int w1p_current;               /* the engine's w1p holds W1 as the last step left it: every
                                      thread updated its part in the pass and wrote it packed
                                      (each thread keeps its own copy of this verdict) */
} __attribute__((aligned(BP_ALIGN))) bp_slot;

typedef struct bp_engine {
    const bp_kernels *k; /* the kernel set, chosen when the engine is created (bp_kernels_choose);
                            every scratch of the engine is allocated for it */
    int threads;
    size_t params;  /* layout.total */
    float **grad;   /* [threads] (params) thread-local gradient sums; NULL when not needed */
    float *w1p;     /* (bp_w1_packed_size) W1 in k's forward panels, packed by
                       bp_engine_pack for the pass that follows; NULL for a set without packing */
    bp_work *work;  /* [threads] */
    bp_slot *slot;  /* [threads] */
} bp_engine;

/* The samples of one batch: sample r is idx[r] (or first + r without idx), its input row
 * X + sample * D and its label Y[sample]. */
typedef struct bp_batch {
    bp_src X;           /* (n, D) the whole data set: floats, or bytes converted as gathered */
    const int32_t *Y;   /* (n) or NULL (prediction) */
    const size_t *idx;  /* (nb) or NULL */
    size_t first, nb;
} bp_batch;

static inline size_t bp_sample_at(const bp_batch *b, size_t r) { return b->idx ? b->idx[r] : b->first + r; }

/* Buffers for threads threads on model m, for the kernel set BPROP_ISA and the CPU choose now;
 * with_grads != 0 adds the gradient buffers. */
bprop_status bp_engine_create(const bprop_model *m, int threads, int with_grads, bp_engine **out);
void bp_engine_free(bp_engine *e);

/* Thread count to use: requested, or omp_get_max_threads() for 0. */
int bp_resolve_threads(int requested);

/* Thread t's share [*lo, *hi) of n samples split over nt threads: contiguous and balanced. */
void bp_share(size_t n, int nt, int t, size_t *lo, size_t *hi);

/* Hidden units [*j0, *j1) of thread t of nt: whole blocks of BP_HBLOCK, so that partial logits
 * and packed panels line up. */
void bp_hidden_slice(size_t H, int nt, int t, size_t *j0, size_t *j1);

/* Thread tid's part (its hidden slice) of packing m's W1 into e->w1p. Every thread of the team
 * calls it; the pack is complete after the next barrier. A no-op without e->w1p. */
void bp_engine_pack(bp_engine *e, const bprop_model *m, int tid, int nt);

/* The network view of m with w->w2t refreshed from m's W2, reading W1 from the packed w1p (as
 * e->w1p after bp_engine_pack) or, with NULL, packing per call. */
bp_net bp_work_net(const bprop_model *m, bp_work *w, const float *w1p);

/* The input rows of samples [s0, s0 + nb) of batch b (nb <= BP_BLOCK) into w->rows: the one
 * place where a block of a data set becomes the kernels' row pointers. */
void bp_gather_rows(bp_work *w, const bp_batch *b, size_t s0, size_t nb);

/* The blocks of one group (bp_forward_group): block i holds samples [s0[i], s0[i] + nb[i]) of the
 * batch, its rows xr[i], h[i] and scratch sc[i] in bp_work_block(w, i). */
typedef struct bp_group {
    size_t n;
    size_t s0[BP_FWD_GROUP], nb[BP_FWD_GROUP];
    const float *const *xr[BP_FWD_GROUP];
    float *h[BP_FWD_GROUP];
    bp_scratch *sc[BP_FWD_GROUP];
} bp_group;

/* h of the next blocks of batch b from sample s0 (below hi), at most most and as many as w->group
 * holds, into gr (h into the blocks' work buffers, or with hout into hout's consecutive rows of
 * net->H floats):
 * block i gathered into bp_work_block(w, i) (rows, xbuf) and its h computed there with its
 * scratch's lists, W1 read once for the group. */
void bp_forward_group(const bp_net *net, bp_work *w, const bp_batch *b, size_t s0, size_t hi,
                      size_t most, float *hout, bp_group *gr);

/* One thread's forward and backward pass: where it reads the model and writes its results. */
typedef struct bp_pass {
    const bprop_model *m;
    bp_work *w;
    const float *w1p;    /* as for bp_work_net */
    float *grad;         /* (params) overwritten with the gradient sums of exactly the pass's samples */
    double *loss;        /* += the summed loss */
    size_t *correct;     /* += the correct count */
    bp_w1_update *upd;   /* NULL, or W1's update applied in the last block's backward pass instead
                            of the W1 gradient written to grad, unless the loss is not finite
                            (upd->applied says) */
} bp_pass;

/* Forward and backward over samples [lo, hi) of batch b (hi > lo), as p says. */
void bp_thread_pass(const bp_pass *p, const bp_batch *b, size_t lo, size_t hi);

/* out[i] = sum over u < na, in that order, of grads[active[u]][a + i] for i < n: the
 * fixed-order reduction that makes results independent of scheduling. out may be the first
 * active buffer + a (in place). */
void bp_sum_buffers(float *const *grads, const int *active, int na, size_t a, size_t n, float *out);

/* Thread t's chunk [*a, *b) of n parameters: contiguous, starting on cache-line boundaries. */
void bp_param_chunk(size_t n, int nt, int t, size_t *a, size_t *b);

#endif /* BPROP_ENGINE_H */
