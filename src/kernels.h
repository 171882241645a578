/* kernels.h: blocked forward/backward kernels over one thread's block of samples (internal). */
/* The kernels are organised as BLIS organises its own: the vector code is compiled once per
 * instruction set (src/kernels/kernels_body.h, in kernels_generic.c, kernels_avx2.c and
 * kernels_avx512.c), everything else once (the zero-input lists, the scratch layout, softmax,
 * the choice of a set). A set is one table, bp_kernels: its tile sizes as data and its entry
 * points. A scratch records the table it was allocated for, and the block functions below call
 * through that pointer, so a scratch always runs with its own set; an engine (engine.c)
 * chooses its table when it is created. docs/kernels.md has the map. */
#ifndef BPROP_KERNELS_H
#define BPROP_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Samples one kernel call handles at most: large enough to amortise loading and storing the
 * thread's W1 gradient tile, small enough that activations stay in L1/L2. */
#define BP_BLOCK 64

/* Hidden units per block of the layer-2 dot products. Each logit is b2 plus the partial dot
 * products of the hidden blocks, added in block order: a thread that owns a slice of whole
 * hidden blocks computes the same partials as one that owns them all, so splitting the hidden
 * units over threads does not change a single bit. */
#define BP_HBLOCK 64

/* The network as the kernels read it. W2 is given transposed, (C, H), so that both the forward
 * dot products and the backward axpys run along the hidden dimension with unit stride. */
typedef struct bp_net {
    size_t D, H, C;    /* inputs, hidden units (of this view), classes */
    size_t ld;         /* row stride of w1, w2t and of the gradients' w1 and w2t (>= H): a view
                          of hidden units [j0, j0 + H) of a wider net points w1, b1, w2t at j0 */
    const float *w1;   /* (D, ld) */
    const float *b1;   /* (H) or NULL without biases */
    const float *w2t;  /* (C, ld) transposed copy of W2 (H, C) */
    const float *b2;   /* (C) or NULL */
    const float *w1p;  /* W1 packed in the set's forward panels (bp_pack_w1), or NULL: each
                          forward call then packs the panels it needs itself */
} bp_net;

/* SGD-with-momentum settings of one update: u = (g + decay w) clip, v = momentum v + u,
 * w -= lr (nesterov ? u + momentum v : v). */
typedef struct bp_sgd_params {
    float lr, momentum, decay, clip;
    int nesterov;
} bp_sgd_params;

/* W1's update done inside the backward pass of a step's last block, where one thread holds the
 * whole gradient sum (one rank, no clipping): each panel of dW1 sums becomes the mean gradient and updates W1 and its momentum
 * while it is still in cache, instead of being stored and read back by the update pass. The
 * caller sets the inputs; the kernels raise or add to the outputs. */
typedef struct bp_w1_update {
    float *w, *v;          /* (D, ld) the view's W1 and its momentum */
    size_t ld;
    float *w1p;            /* NULL, or the view's packed W1 (bp_pack_w1's layout, the view's
                              H units from w1p), rewritten with each updated row so that the
                              next step need not pack it */
    size_t H;              /* the view's width */
    int fixed;             /* 1: mean = bp_fixed_round(sums, scale, mul); 0: mean = sums * inv_nb */
    double scale, mul;
    float inv_nb;
    bp_sgd_params p;
    double big;            /* out: largest |sum * scale| (fixed) */
    double norm2;          /* out: sum of the mean gradient's squares */
    float wmax;            /* out: largest |w| after the update */
    int applied;           /* the caller's record: 1 once a pass has applied it */
} bp_w1_update;

/* A thread's gradient sums (not yet divided by the batch size). */
typedef struct bp_grads {
    float *w1;   /* (D, ld); unused with w1_update */
    float *b1;   /* (H) or NULL */
    float *w2t;  /* (C, ld) transposed, the thread folds it into (H, C) at the end of its pass */
    float *b2;   /* (C) or NULL (also NULL for all but one thread of a hidden split) */
    bp_w1_update *w1_update; /* NULL, or W1 is updated in the pass from w1's sums (first = 0)
                                or the block's alone (first = 1): the step's last block */
} bp_grads;

typedef struct bp_kernels bp_kernels;

/* A thread's kernel scratch, for one set (k) and one net shape. The index lists let the kernels
 * skip zero inputs (about half of Fashion-MNIST's pixels): which pixels are non-zero in each
 * forward tile of samples (samples grouped so that each tile's union stays small), and which
 * samples are non-zero in each backward tile of pixels, with those samples' pixels copied in
 * list order; they are rebuilt for every block from per-sample bitmaps (src/kernels/lists.c),
 * and not built at all for a net too narrow to gain from them (SPARSE_MIN_H) or for a block
 * with no zero input (dense lists then, with the same bits). The panel
 * buffers hold one panel of W1 or dh columns copied contiguously (zero-padded for the last
 * columns); PW is the set's widest panel, a few vectors of its vector length. The sizes follow
 * from the set's tile sizes (src/kernels/scratch.c). About 350 KB for Fashion-MNIST on AVX2 at
 * H = 256, most of it the backward's input copy (bwd tiles x BP_BLOCK x bwd_mr floats). */
typedef struct bp_scratch {
    const bp_kernels *k; /* the set the sizes below are for, and the one every block call runs */
    float *part;      /* (hidden blocks, BP_BLOCK, C) partial logits of bp_forward_block */
    uint32_t *fwd_k;  /* (fwd tiles, D) + 8 non-zero pixel indices of each tile of samples */
    uint32_t *fwd_n;  /* (fwd tiles) how many */
    size_t fwd_kstep; /* tile t's list starts at fwd_k + t * fwd_kstep: D, or 0 when every tile
                         reads the same list of all D pixels (a net too narrow to skip zeros,
                         or a block with no zero input) */
    uint8_t *bwd_s;   /* (bwd tiles, BP_BLOCK) samples with a non-zero pixel in each pixel tile */
    uint32_t *bwd_n;  /* (bwd tiles) how many */
    float *wpad;      /* (D, PW) a panel of W1 columns; or of dW1 columns for a padded panel */
    float *bpad;      /* (PW) the panel's b1 entries, zero-padded */
    float *hpad;      /* (BP_BLOCK, PW) a padded panel's h columns; a panel of dh columns */
    uint64_t *nzb;    /* (BP_BLOCK, NZ_WORDS(D)) each sample's non-zero pixels as bits */
    float *bwd_x;     /* (bwd tiles, BP_BLOCK, bwd_mr) the listed samples' pixels of each tile */
    const float *const *bwd_rows; /* NULL, or no backward lists: every tile sums over all the
                                     bwd_nrows samples of these rows (a narrow net, or a
                                     block with no zero input) */
    size_t bwd_nrows;
    const float **nz_rows; /* (BP_BLOCK) the rows nzb describes, for the next backward call */
    size_t nz_n;      /* how many; 0 once used (or never set) */
    const float **fwd_xr; /* (BP_BLOCK) the block's rows in forward tile order */
    uint8_t *fwd_rows;    /* (BP_BLOCK) their positions in the block */
    uint64_t *fwd_u;      /* (NZ_WORDS(D)) the union of a forward tile's bitmaps */
} bp_scratch;

/* 64-bit words of a bitmap of D pixels. */
#define NZ_WORDS(D) (((D) + 63) / 64)

/* Which instance of the list builders a set's CPUs run (lists.c): the x86-64 baseline, or one
 * compiled for POPCNT and AVX2 (hardware popcount, wider moves), which every CPU that runs the
 * AVX2 or AVX-512 set has. Both build the same lists. */
enum { BP_LISTS_BASE = 0, BP_LISTS_AVX2 = 1 };

/* One kernel set: its tile sizes and its vector code, chosen once per engine (bp_kernels_choose)
 * and reached through each scratch's k. The tile sizes are the constants the set's vector code
 * was compiled with (kernels_body.h says what each means); the code compiled once reads them
 * here to size the scratch and to cut the lists into the same tiles. */
struct bp_kernels {
    const char *name;     /* "generic", "avx2" or "avx512" */
    size_t vl;            /* floats per vector */
    size_t fwd_mr, fwd_nv; /* a forward tile: samples x vectors of hidden units */
    size_t bwd_mr, bwd_nv; /* a dW1 tile: input pixels x vectors of hidden units */
    int fwd_pack;         /* 1: the forward reads W1 in packed panels (bp_w1_packed_size > 0) */
    int bwd_pack;         /* 1: the dW1 tiles read dh from a packed panel */
    int lists;            /* BP_LISTS_BASE or BP_LISTS_AVX2 */

    /* ---- vector code: called per block, per run of parameters or per step; never per element */
    /* nzb (nb, NZ_WORDS(D)) = each row's non-zero pixels as bits (bit k % 64 of word k / 64). */
    void (*nz_bitmaps)(const float *const *xr, size_t nb, size_t D, uint64_t *nzb);
    /* Hidden units [j0, j1) of net's W1 into w1p in the set's forward panels (bp_pack_w1). */
    void (*pack_w1)(const bp_net *net, size_t j0, size_t j1, float *w1p);
    /* h (nb, H) = relu(x W1 + b1) over the forward lists already in sc (bp_forward_hidden). */
    void (*forward_hidden)(const bp_net *net, size_t nb, float *h, bp_scratch *sc);
    /* The same for nblk blocks at once, block i from sc[i] into h[i] (nb[i], H), each panel of
     * W1 through every block before the next panel (bp_forward_hidden_group). */
    void (*forward_hidden_group)(const bp_net *net, size_t nblk, const size_t *nb,
                                 float *const *h, bp_scratch *const *sc);
    /* part (ceil(H / BP_HBLOCK), nb, C): each hidden block's partial logits (bp_logits_partial). */
    void (*logits_partial)(const bp_net *net, size_t nb, const float *h, float *part);
    /* dW2t, db2 and db1 sums from dl (nb, C); h (nb, H) becomes dh (bp_backward_block). */
    void (*backward_hidden)(const bp_net *net, size_t nb, float *h, const float *dl, bp_grads *g);
    /* dW1 sums (or W1's in-pass update) from dh over the backward lists already in sc. */
    void (*backward_w1)(const bp_net *net, size_t nb, const float *dh, float *gw1, int first,
                        bp_scratch *sc, bp_w1_update *upd);
    /* The same for nblk blocks (dh[i] (nb[i], H), lists in sc[i]) in block order, each panel of
     * dW1 through every block before the next panel; upd, if any, in the last block. */
    void (*backward_w1_group)(const bp_net *net, size_t nblk, const size_t *nb,
                              const float *const *dh, float *gw1, int first,
                              bp_scratch *const *sc, bp_w1_update *upd);
    /* The step's memory-bound loops. fixed.h documents the first three: their bits are the same
     * in every set; sgd and sgd_fixed fuse a*b+c where the set has FMA, so a set gives identical
     * updates only with itself. */
    double (*fixed_add)(int64_t *acc, const float *g, size_t n, double scale, int first);
    void (*fixed_to_float)(const int64_t *s, size_t n, double mul, float *out);
    double (*fixed_round)(const float *g, size_t n, double scale, double mul, float *out);
    /* dst += src over n entries, wrapping. */
    void (*add_i64)(int64_t *dst, const int64_t *src, size_t n);
    /* Update n parameters w and momenta v from their mean gradient g; returns max |w| after. */
    float (*sgd)(float *w, float *v, const float *g, size_t n, const bp_sgd_params *p);
    /* sgd from a fixed-point gradient in one pass: g = (float)(q * mul) with q the int64 sums
     * sq, or (sq NULL) the float sums f rounded at scale as fixed_round rounds them (raising
     * *big to their largest |f * scale|); adds sum g^2 to *norm2. The same bits as the
     * conversion, then sgd. Returns max |w| after. */
    float (*sgd_fixed)(float *w, float *v, const int64_t *sq, const float *f, size_t n,
                       double scale, double mul, const bp_sgd_params *p, double *big,
                       double *norm2);
};

/* ---- choosing a set (choose.c) ------------------------------------------------------------- */

/* The set BPROP_ISA names, or the widest this CPU runs when it is unset or empty: a function of
 * the environment and the CPU alone, so each workspace may ask anew. When BPROP_ISA names a set
 * this build lacks or this CPU cannot run, the generic set, with the reason in why (a line of
 * at most why_size bytes; "" when BPROP_ISA was honoured or unset; why may be NULL). */
const bp_kernels *bp_kernels_choose(char *why, size_t why_size);

/* The set called name if this build has it and this CPU can run it, else NULL (for tests and
 * benchmarks that run each set directly). */
const bp_kernels *bp_kernels_named(const char *name);

/* Every set of this build, narrowest first, whether or not this CPU can run it: *n gets how
 * many. Pair with bp_kernels_named to skip the ones the CPU lacks. */
const char *const *bp_kernels_list(size_t *n);

/* ---- code compiled once -------------------------------------------------------------------- */

/* Allocate (bp_alloc) the scratch of set k for D inputs, H hidden units and C classes; 0 on
 * failure. Free with bp_scratch_free (also after a failed allocation). */
int bp_scratch_alloc(bp_scratch *sc, const bp_kernels *k, size_t D, size_t H, size_t C);
void bp_scratch_free(bp_scratch *sc);

/* Floats of W1 (D, H) packed in set k's forward panels; 0 for a set that reads W1 in place
 * (then no net needs a w1p). */
size_t bp_w1_packed_size(const bp_kernels *k, size_t D, size_t H);

/* The forward lists of rows xr[0..nb) for a view of H hidden units, into sc: samples grouped
 * into tiles of sc->k->fwd_mr and each tile's non-zero pixels (lists.c). */
void bp_fwd_lists(bp_scratch *sc, const float *const *xr, size_t nb, size_t D, size_t H);

/* The backward lists of the same kind: for each tile of sc->k->bwd_mr pixels, the samples with
 * a non-zero pixel in it and their pixels in list order (lists.c). */
void bp_bwd_lists(bp_scratch *sc, const float *const *xr, size_t nb, size_t D, size_t H);

/* logits (nb, C) = b2 (or 0) + part[0] + part[1] + ... + part[nhb-1], in that order. */
void bp_logits_combine(const float *b2, const float *part, size_t nhb, size_t nb, size_t C,
                       float *logits);

/* Softmax cross-entropy of logits (nb, C) against y (nb): returns the summed loss, writes the
 * arg-max class of each sample to pred (nb) and replaces logits by dlogits = softmax - onehot. */
double bp_softmax_xent(float *logits, const int32_t *y, size_t nb, size_t C, int32_t *pred);

/* Softmax of logits (nb, C) in place, with arg-max to pred (nb) when not NULL. */
void bp_softmax(float *logits, size_t nb, size_t C, int32_t *pred);

/* ---- one block, through the scratch's set ---------------------------------------------------- */

/* Pack hidden units [j0, j1) of net's W1 into w1p (bp_w1_packed_size floats for the whole net;
 * j0 and j1 on BP_HBLOCK boundaries or j1 = H), so that every forward call of a step reads the
 * panels packed once instead of packing them per block. Threads may pack disjoint ranges. A
 * view of units [j0, j1) of the net uses w1p + j0 * D. */
static inline void bp_pack_w1(const bp_kernels *k, const bp_net *net, size_t j0, size_t j1,
                              float *w1p)
{
    k->pack_w1(net, j0, j1, w1p);
}

/* h (nb, H) = relu(x W1 + b1) for nb <= BP_BLOCK samples whose rows are xr[0..nb). Fills sc's
 * forward lists. Each h entry sums its non-zero pixels in pixel order, whatever the view. */
static inline void bp_forward_hidden(const bp_net *net, const float *const *xr, size_t nb,
                                     float *h, bp_scratch *sc)
{
    bp_fwd_lists(sc, xr, nb, net->D, net->H);
    sc->k->forward_hidden(net, nb, h, sc);
}

/* Blocks the forward runs together at most (bp_forward_hidden_group). */
#ifndef BP_FWD_GROUP /* (a build may set it, for experiments) */
#define BP_FWD_GROUP 8
#endif

/* W1 bytes from which a training engine (engine.c), and the cost model (cost.c), run the forward of several blocks together: a W1 that
 * stays in L2 gains nothing from being read once instead of once per block. */
#ifndef BP_FWD_GROUP_MIN /* (a build may set it, e.g. 1 to run every training pass in groups) */
#define BP_FWD_GROUP_MIN ((size_t)1 << 20)
#endif

/* bp_forward_hidden for nblk <= BP_FWD_GROUP blocks, block i of nb[i] rows xr[i] with its own
 * scratch sc[i] (which keeps block i's lists and bitmaps for its backward) into h[i]; W1 is read
 * once for all of them. The same bits as one bp_forward_hidden per block. */
static inline void bp_forward_hidden_group(const bp_net *net, size_t nblk,
                                           const float *const *const *xr, const size_t *nb,
                                           float *const *h, bp_scratch *const *sc)
{
    for (size_t i = 0; i < nblk; i++)
        bp_fwd_lists(sc[i], xr[i], nb[i], net->D, net->H);
    sc[0]->k->forward_hidden_group(net, nblk, nb, h, sc);
}

/* Partial logits of each hidden block of the view into sc->part (ceil(H / BP_HBLOCK), nb, C),
 * block q holding h[:, q*64 : q*64+64] . W2t[c, same]. */
static inline void bp_logits_partial(const bp_net *net, size_t nb, const float *h, bp_scratch *sc)
{
    sc->k->logits_partial(net, nb, h, sc->part);
}

/* bp_forward_hidden, then logits (nb, C) = h W2 + b2 through the hidden-block partials. */
static inline void bp_forward_block(const bp_net *net, const float *const *xr, size_t nb, float *h,
                                    float *logits, bp_scratch *sc)
{
    bp_forward_hidden(net, xr, nb, h, sc);
    bp_logits_partial(net, nb, h, sc);
    bp_logits_combine(net->b2, sc->part, (net->H + BP_HBLOCK - 1) / BP_HBLOCK, nb, net->C, logits);
}

/* Backward for the same block: accumulates dW2t, db2, db1 and dW1 sums into g. h (nb, H) holds
 * the activations on entry and dL/d(pre-activation) on return. first != 0 overwrites g->w1 instead
 * of adding to it, which spares zeroing the largest buffer every step. */
static inline void bp_backward_block(const bp_net *net, const float *const *xr, size_t nb, float *h,
                                     const float *dl, bp_grads *g, int first, bp_scratch *sc)
{
    sc->k->backward_hidden(net, nb, h, dl, g);
    bp_bwd_lists(sc, xr, nb, net->D, net->H);
    sc->k->backward_w1(net, nb, h, g->w1, first, sc, g->w1_update);
}

/* The first half of bp_backward_block: dW2t, db2 and db1 sums from dl (nb, C); h becomes dh. */
static inline void bp_backward_hidden(const bp_net *net, size_t nb, float *h, const float *dl,
                                      bp_grads *g, const bp_scratch *sc)
{
    sc->k->backward_hidden(net, nb, h, dl, g);
}

/* The second half for nblk <= BP_FWD_GROUP blocks at once (block i: rows xr[i], dh[i] (nb[i],
 * H), scratch sc[i]): dW1 sums into g->w1 (first: the first block overwrites them), or W1's
 * in-pass update g->w1_update in the last block. The same bits as one bp_backward_block per
 * block; with the update, the blocks' dW1 sums are never stored. */
static inline void bp_backward_w1_group(const bp_net *net, size_t nblk,
                                        const float *const *const *xr, const size_t *nb,
                                        float *const *dh, bp_grads *g, int first,
                                        bp_scratch *const *sc)
{
    const float *d[BP_FWD_GROUP];
    for (size_t i = 0; i < nblk; i++) {
        bp_bwd_lists(sc[i], xr[i], nb[i], net->D, net->H);
        d[i] = dh[i];
    }
    sc[0]->k->backward_w1_group(net, nblk, nb, d, g->w1, first, sc, g->w1_update);
}

#endif /* BPROP_KERNELS_H */
