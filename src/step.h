/* step.h: one parallel SGD step: the batch's forward and backward passes split over threads and
 * ranks, the exact combination of the gradient, and the update (internal). */
#ifndef BPROP_STEP_H
#define BPROP_STEP_H

#include "engine.h"

/* The samples of one step: sample r of the batch is idx[r] (or first + r without idx). */
typedef struct bp_batch {
    bp_src X;           /* (n, D) rows: floats, or bytes converted as gathered */
    const int32_t *Y;   /* (n) */
    const size_t *idx;  /* (nb) or NULL */
    size_t first, nb;
} bp_batch;

/* Everything a step needs beyond the model, allocated once for `threads` threads and batches of
 * up to `batch` samples; nothing is allocated per step. */
typedef struct bp_stepper {
    bprop_model *m;          /* borrowed: updated in place */
    int threads;             /* threads the buffers are for */
    size_t batch;            /* largest batch */
    int reproducible;        /* exact fixed-point combination (see fixed.h) */
    bprop_parallel parallel; /* requested split */
    const bprop_comm *comm;  /* borrowed; NULL: one process */
    bprop_train_config cfg;  /* momentum, decay, clipping (a copy) */
    float *velocity;         /* borrowed (params): momentum, NULL for gradient-only use */
    bp_engine *e;            /* per-thread work, float gradient buffers, slots */
    int64_t **acc;           /* [threads] (params) fixed-point sums; acc[0] the combined sum */
    double *dsum;            /* (params) float sums widened for a non-reproducible allreduce */
    float *gsh;              /* (params) shared float gradient: hidden split, clipping */
    float *gw2t;             /* (C, H) shared dW2 transposed, hidden split */
    float *hbuf;             /* (batch * H) hidden split: thread t's slice (batch, width) */
    float *part;             /* (hidden blocks, batch, C) partial logits, hidden split */
    float **logits;          /* [threads] (batch, C) every thread's copy of the logits */
    int32_t **labels;        /* [threads] (batch) */
    int32_t **pred;          /* [threads] (batch) */
    double xinf, x1;         /* data bounds of the training set (fixed.h) */
    const void *bounds_of;   /* the data they were computed from (bp_src_id), and its size */
    size_t bounds_n;
    /* Written by thread 0 between barriers, read by all. */
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
    float *grad_out;            /* NULL: update the model; else (params) gets the mean gradient */
    const volatile sig_atomic_t *cancel; /* NULL, or set: this rank asks to stop after the step
                                            (read after the pass; agreed over ranks) */
    bp_after_pass_fn after_pass; /* may be NULL */
    void *ctx;
} bp_step_io;

bprop_status bp_stepper_create(bprop_model *m, int threads, size_t batch,
                               const bprop_train_config *cfg, float *velocity,
                               const bprop_comm *comm, bp_stepper **out);
void bp_stepper_free(bp_stepper *s);

/* Data bounds and the parameters' magnitudes: call before the first step on data X (n, D) and
 * whenever the parameters were changed from outside the steps. same_data != 0 promises that X
 * still holds what it held at the last call with this X and n (the bounds are then kept). */
void bp_stepper_prepare(bp_stepper *s, const bp_src *X, size_t n, int same_data);

/* One step, called by every thread tid of a team of nt <= s->threads inside one parallel
 * region; returns after a closing barrier, so the caller may read s and the slots. */
void bp_step(bp_stepper *s, int tid, int nt, const bp_step_io *io);

/* Whether a step of nb samples on nt threads runs the hidden split. */
int bp_step_uses_hidden(const bp_stepper *s, size_t nb, int nt);

#endif /* BPROP_STEP_H */
