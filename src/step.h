/* step.h: one parallel SGD step in four phases: plan, pass, combine, update (internal). */
#ifndef BPROP_STEP_H
#define BPROP_STEP_H

#include "cost.h"
#include "engine.h"

#include <signal.h>


/* This rank's part of a batch: whole blocks [b0, b1) and their samples [lo, hi). */
typedef struct bp_rank_part {
    size_t b0, b1, lo, hi;
} bp_rank_part;

/*
 * Every decision of a step of nb samples on a team of nt threads, made once by bp_plan_step
 * from the stepper's settings (config, ranks, model shape) and reused while nb and nt stay.
 * The legal combinations, and why each exists:
 *
 *   split   sums   rounding          W1 in the pass        why
 *   data    float  -                 one thread, 1 rank    the default: each layout deterministic
 *                                                          in its own float order
 *   data    exact  per block, int64  -                     --reproducible: the same bits for
 *                                                          every thread and rank count
 *   data    exact  in the update     1 rank                --reproducible, one block on one
 *                                                          process: no int64 array at all
 *   hidden  float  -                 1 rank                few blocks per thread: a slice each,
 *                                                          the bits of one thread's pass
 *   hidden  float  -                 ranks (rank_hidden)   the hidden split over ranks: worker
 *                                                          rank nt + tid of R nt owns a slice, every
 *                                                          rank runs the whole batch, only partial
 *                                                          logits travel: the bits of one thread
 *   hidden  exact  per block, int64  -                     --reproducible, or the hidden split over
 *                                                          ranks with clipping, without a gathering
 *                                                          communicator or with fewer hidden blocks
 *                                                          than R nt (their sums meet in int64)
 *   hidden  exact  in the update     1 rank                as data, exact, in the update
 *
 * Clipping (its norm needs the whole gradient first) and several ranks rule out rounding in the
 * update, and (but for rank_hidden, each of whose sums lies on one rank) W1 in the pass; a
 * gradient-only stepper (bprop_loss_grad: output) rules out W1 in the pass, and rounds in the
 * output as the update would. The data split on several ranks
 * updates each rank's run of the parameters only (split_update), float sums or exact, unless
 * clipping (whose norm would need every run) or output asks for the whole gradient.
 */
typedef struct bp_step_plan {
    size_t nb;            /* the batch size the plan is for (0: no plan yet) */
    int nt;               /* and the team size */
    bp_split split;
    int exact;            /* sums: 1 exact fixed point (fixed.h), 0 float */
    int round_in_update;  /* exact sums of a single block on one process without clipping: the
                             update rounds the block's float sums itself (bp_fixed_round), with
                             no int64 array */
    int sum_in_update;    /* float sums of the data split on one process: the update adds the
                             active threads' buffers itself, block by block in thread order (the
                             bits of a separate reduction, without its summed buffer) */
    int rank_hidden;      /* the float hidden split over ranks (bp_rank_hidden_ok): every rank
                             runs the whole batch over its slices, exchanges the partial logits
                             after the forward (bp_gather_partials) and updates its slices only;
                             the other ranks' slices go stale until bp_stepper_sync */
    int workers, worker0; /* the hidden split's slices: thread tid owns bp_hidden_slice(H,
                             workers, worker0 + tid); nt and 0 but for rank_hidden (R nt and
                             rank nt) */
    int w1_in_pass;       /* W1 updated in the last block's backward pass (bp_w1_update), when
                             the step's scales are finite */
    int w1_sliced;        /* float sums of the hidden split on one process with W1 in the pass:
                             each thread's slice of W1 and its momentum, and its W1 and W2 sums,
                             in the stepper's private sliced layout (bp_stepper.w1s) */
    int pack_w1;          /* W1 packed once for the step into the engine's w1p: a thread runs
                             more than one forward block */
    int clip;             /* clipping: the norm of the whole update first, then the update */
    int output;           /* the mean gradient goes to the caller; nothing is updated */
    int ranks;            /* more than one process takes part */
    bp_rank_part part;    /* this rank's share of the batch */
    int split_update;     /* the data split on several ranks, without clipping or output,
                             through a communicator that scatters and gathers runs: each rank
                             gets the sums of its run of the parameters only (float or int64
                             sums reduce-scattered, or the float blocks of add_blocks), updates
                             that run, and the runs are gathered (bp_split_gather) */
    size_t u0, u1;        /* split_update: this rank's run [u0, u1) of the parameters */
    int add_blocks;       /* split_update of exact sums whose blocks travel as floats
                             (bp_gather_blocks): the pass converts nothing; each rank receives
                             every rank's float block sums of its run only, and the update
                             converts and adds them (bp_add_blocks) piece by piece, in L1,
                             before using them; their range check is agreed after the update
                             (bp_split_gather), as round_in_update's is checked after it */
    int n_active;         /* threads with a share of the pass ... */
    int *active;          /* [n_active] ... ascending (every thread for the hidden split) */
} bp_step_plan;

/* How to make a stepper: for training (params and velocity given: updated in place) or for
 * gradients only (both NULL: m is only read). */
typedef struct bp_stepper_spec {
    const bprop_model *m;
    float *params;                 /* m->params to update, or NULL */
    float *velocity;               /* (params) momentum, or NULL */
    int threads;                   /* threads the buffers are for */
    size_t batch;                  /* largest batch */
    const bprop_train_config *cfg; /* momentum, decay, clipping, split, exact sums (copied) */
    const bprop_comm *comm;        /* borrowed; NULL: one process */
} bp_stepper_spec;

/* Everything a step needs beyond the model, allocated once for `threads` threads and batches of
 * up to `batch` samples; nothing is allocated per step. */
typedef struct bp_stepper {
    const bprop_model *m;    /* borrowed: read; the shape the buffers are for */
    float *params;           /* borrowed (params): m's parameters, updated; NULL: gradient only */
    float *velocity;         /* borrowed (params): momentum; NULL: gradient only */
    int threads;             /* threads the buffers are for */
    size_t batch;            /* largest batch */
    const bprop_comm *comm;  /* borrowed; NULL: one process */
    bprop_train_config cfg;  /* momentum, decay, clipping, split, exact sums (a copy) */
    bp_engine *e;            /* per-thread work, float gradient buffers, slots */
    int64_t **acc;           /* [threads] (params) fixed-point sums; acc[0] the combined sum */
    double *dsum;            /* (params) float sums widened for sum_f64 (float sums, several
                                ranks, a communicator without sum_f32) */
    float *gblk;             /* (ranks, params) every rank's float block sums (bp_gather_blocks),
                                or (add_blocks) every rank's of this rank's run, (ranks, run) */
    size_t *runs;            /* (ranks) every rank's run of the parameters (split_update), or
                                NULL: the communicator cannot split the update */
    double *rstat;           /* (ranks + 1, tensors) split_update's exchange of statistics */
    int velocity_partial;    /* a split update left only this rank's run of the momentum current
                                (bp_stepper_gather_velocity) */
    float *gsh;              /* (params) shared float gradient: hidden split, clipping; a sliced
                                step keeps its W1 sums in w1s's layout */
    float *gw2t;             /* (C, H) shared dW2 transposed, hidden split; a sliced step keeps
                                thread t's (C, j1 - j0) block at C j0 */
    /* The hidden split's private slices (steps whose plan has w1_sliced). Thread t of a team of
     * nt owns units [j0, j1) of every row of W1. In the model's (D, H) layout two cores write
     * neighbouring parts of each row (at H = 256 the halves of each 1 KB row), and the hardware
     * prefetchers pull the other core's freshly written lines across at every step; so each
     * slice lives as its own (D, j1 - j0) block at offset D j0. */
    float *w1s;              /* (D H) W1 in slices; NULL where no step can use them (one thread,
                                several ranks, no params, exact sums, clipping, the data split) */
    float *v1s;              /* (D H) W1's momentum in the same slices */
    int w1s_nt;              /* the team size whose slices w1s and v1s hold, newer than W1 in
                                params and velocity; 0: params and velocity are current. On
                                several ranks (rank_hidden) the workers of all ranks, R nt: only
                                this rank's slices, and its rows of b1 and W2 in params and
                                velocity, are current until bp_slices_gather */
    size_t *hruns;           /* (ranks) rank_hidden's runs of one exchange, or NULL */
    int comm_failed;         /* an exchange of rank_hidden failed: every later step diverges */
    float *hbuf;             /* (batch * H) hidden split: thread t's slice (batch, width) */
    float *part;             /* (hidden blocks, batch, C) partial logits, hidden split */
    float **logits;          /* [threads] (batch, C) every thread's copy of the logits */
    int32_t **labels;        /* [threads] (batch) */
    int32_t **pred;          /* [threads] (batch) */
    double xinf, x1;         /* data bounds of the data of the last bp_stepper_prepare (fixed.h) */
    /* Written by thread 0 between barriers, read by all. */
    bp_step_plan plan;       /* the last step's plan; plan.active has `threads` entries */
    double wmax[BPROP_TENSORS]; /* the parameters' largest magnitudes when the step began */
    bp_scales sc;
    int bad_scales;          /* the parameters' magnitudes were not finite */
    double loss, correct;    /* the step's summed loss and correct count over all ranks */
    int stop;                /* leave the loop after this step (all ranks agree) */
    int cancelled;           /* some rank's cancellation flag was set (all ranks agree) */
    int diverged;            /* loss non-finite or fixed point out of range */
    double combine_seconds;  /* wall time of the last step after its pass: sums and update */
} bp_stepper;

/* What the caller does between the pass and the update (thread 0 only, after the step's loss
 * is known over all ranks): returns non-zero to stop after this step. */
typedef int (*bp_after_pass_fn)(void *ctx, const bp_stepper *s, size_t nb);

typedef struct bp_step_io {
    bp_batch b;
    float lr;
    float *grad_out;            /* gradient-only stepper: (params) gets the mean gradient */
    const volatile sig_atomic_t *cancel; /* NULL, or set: this rank asks to stop after the step
                                            (read after the pass; agreed over ranks) */
    bp_after_pass_fn after_pass; /* may be NULL */
    void *ctx;
} bp_step_io;

bprop_status bp_stepper_create(const bp_stepper_spec *spec, bp_stepper **out);
void bp_stepper_free(bp_stepper *s);

/* Data bounds (a pass over X) and the parameters' magnitudes: call before the first step on
 * data X (n, D), whenever X may have changed, and whenever the parameters were changed from
 * outside the steps. It drops the private slices (the next sliced step loads them from params
 * and velocity): call bp_stepper_sync first when steps ran since the last one. */
void bp_stepper_prepare(bp_stepper *s, const bp_src *X, size_t n);

/* The plan of a step of nb samples on nt threads (see bp_step_plan); fills p->active, which
 * must have room for nt entries. */
void bp_plan_step(const bp_stepper *s, size_t nb, int nt, bp_step_plan *p);

/* One step, called by every thread tid of a team of nt <= s->threads inside one parallel
 * region; returns after a closing barrier, so the caller may read s and the slots. */
void bp_step(bp_stepper *s, int tid, int nt, const bp_step_io *io);

/* Whether the stepper has the private slices of W1 (bp_stepper.w1s): a training stepper for
 * more than one thread on one process, or on several ranks whose communicator gathers runs,
 * whose settings allow a sliced step (float sums, no clipping, not the data split asked for). */
int bp_slices_possible(const bp_stepper *s);

/* Whether a team of nt threads on each rank may split the hidden units over the ranks
 * (rank_hidden): the stepper has slices, several ranks, and a 64-unit block for each of the
 * R nt workers. Every rank must run a team of the same size. */
int bp_rank_hidden_ok(const bp_stepper *s, int nt);

/* Thread tid's hidden units [*j0, *j1) in the plan's hidden split. */
void bp_plan_slice(const bp_step_plan *p, size_t H, int tid, size_t *j0, size_t *j1);

/* W1 and its momentum back from the private slices into params and velocity (serial, between
 * steps; every rank together): after it they are current for whatever reads them between
 * epochs, and the next sliced step loads the slices again. With rank_hidden slices, every
 * rank's slices, rows of b1 and W2 and their momentum go to every rank first
 * (bp_slices_gather). A no-op when no slices are current. Returns non-zero when an exchange
 * failed. */
int bp_stepper_sync(bp_stepper *s);

/* rank_hidden (thread 0, every rank together): every rank's slices of W1 and its momentum in
 * w1s and v1s, and its entries of b1 and rows of W2 in params and velocity, to every rank.
 * Returns non-zero when an exchange failed. */
int bp_slices_gather(bp_stepper *s);

/* rank_hidden (thread 0, after the forward's barrier): every rank's partial logits to every
 * rank, in place in s->part. Returns non-zero when the exchange failed. */
int bp_gather_partials(bp_stepper *s, const bp_step_plan *p);

/* After a split or rank_hidden update (thread 0): the slots' largest magnitudes and squared
 * norms over all ranks into slot 0 (see bp_split_gather). Returns non-zero on failure. */
int bp_ranks_stats(bp_stepper *s, const bp_step_plan *p);

/* Most ranks whose exact sums may travel as float block sums (bp_gather_blocks). */
#define BP_GATHER_RANKS 3

/* ---- the phases (step_pass.c, step_update.c, step_ranks.c), for bp_step ---- */

/* Phase 2 (pass): thread tid's forward and backward pass as the plan says; w1p: W1 packed, or
 * NULL; upd: NULL, or this thread's W1 update in the pass, set up. */
void bp_step_pass(bp_stepper *s, const bp_step_plan *p, int tid, const float *w1p,
                  const bp_batch *b, bp_w1_update *upd);

/* Thread tid's W1 update settings for the pass: its slice of W1 for the hidden split, all of
 * it otherwise; w1p: the engine's packed W1 to keep current, or NULL. */
void bp_step_w1_update(const bp_stepper *s, const bp_step_plan *p, int tid, float lr,
                       float *w1p, bp_w1_update *u);

/* Phase 4 (update): thread tid's part of the update (or of the output gradient); ends with every
 * thread's slot->w1p_current set, before the caller's closing barrier. */
void bp_step_update(bp_stepper *s, const bp_step_plan *p, int tid, const bp_step_io *io);

/* Before the step reads W1 (every thread of the team, after the plan): a sliced step loads
 * thread tid's slice from params and velocity unless the slices are current for this team
 * size; any other step, or a team of another size, first stores the current slices back. A
 * barrier only when something moves. */
void bp_slices_begin(bp_stepper *s, const bp_step_plan *p, int tid);

/* A sliced step's part of packing W1 (pack_w1): thread tid's slice from w1s into the engine's
 * w1p, where bp_engine_pack would put it from params. */
void bp_slices_pack(bp_stepper *s, const bp_step_plan *p, int tid);

/* Whether the exact sums of this step travel as every rank's float block sums: a communicator
 * with gather_f32, at most BP_GATHER_RANKS ranks, the data split, and at most one block per
 * rank (the batch has no more blocks than ranks). */
int bp_gather_blocks(const bp_stepper *s, const bp_step_plan *p);

/* Combine (thread 0, several ranks): this rank's sums of the step (grad[active[0]] for float
 * sums, acc[0] for exact ones) become the sums over every rank, into grad[0] or acc[0]. Returns
 * non-zero when the communicator failed. */
int bp_sum_over_ranks(bp_stepper *s, const bp_step_plan *p);

/* Whether steps of the plan's kind may split the update over the ranks (split_update), and
 * this rank's run of the parameters when they do. */
int bp_split_update_ok(const bp_stepper *s, const bp_step_plan *p);

/* add_blocks: every rank's float block sums of [a, a + n) (inside this rank's run and one
 * tensor) into acc[0] in fixed point, as a pass would convert them (fixed_add); returns their
 * largest scaled magnitude, for the range check. */
double bp_add_blocks(bp_stepper *s, const bp_step_plan *p, size_t a, size_t n, int tensor);

/* After a split update (thread 0, after the update's barrier): every rank's run of the
 * parameters to every rank, and the slots' largest magnitudes and squared norms over all
 * ranks, left in slot 0 (the other slots of the team zeroed), so that the next step's scales
 * and the statistics are those of the whole update; for add_blocks, slot 0's big is infinite
 * on every rank when any rank's conversions left the range. Returns non-zero when the transfer
 * failed. */
int bp_split_gather(bp_stepper *s, const bp_step_plan *p);

/* Every rank's run of the momentum to every rank after split updates (all ranks call it
 * together; a no-op when nothing is partial). Returns non-zero when the transfer failed. */
int bp_stepper_gather_velocity(bp_stepper *s);

#endif /* BPROP_STEP_H */
