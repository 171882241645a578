/* reference.h: one SGD step in plain double precision: the math bprop computes (internal). */
/* Read this first to learn what bprop computes; read kernels.h and step.h for how it is made
 * fast. Nothing here is blocked, vectorised, parallel or rounded to float: each formula is
 * written once, in the order a textbook would, and the tests (tests/test_reference.c) check
 * every kernel set's training step against it. */
#ifndef BPROP_REFERENCE_H
#define BPROP_REFERENCE_H

#include "internal.h"

/* The network logits = W2^T relu(W1^T x + b1) + b2 with softmax cross-entropy, its parameters
 * and momentum in doubles, laid out as a bprop_model's (the flat block W1 | b1 | W2 | b2). */
typedef struct bp_ref_net {
    size_t D, H, C;      /* inputs, hidden units, classes */
    bprop_layout layout; /* where each tensor sits in theta and velocity (bprop_layout_make) */
    double *theta;       /* (layout.total) W1 (D, H) | b1 (H) | W2 (H, C) | b2 (C); no biases
                            when layout.count[BPROP_B1] == 0 */
    double *velocity;    /* (layout.total) momentum, the same layout */
} bp_ref_net;

/* The settings of one step, as the trainer takes them from bprop_train_config and its
 * schedule. */
typedef struct bp_ref_sgd {
    double lr;           /* this step's learning rate */
    double momentum;     /* mu */
    int nesterov;        /* 1: Nesterov's form of the update */
    double weight_decay; /* on W1 and W2, not on the biases */
    double clip_norm;    /* > 0: the update direction's norm is clipped to it; 0: no clipping */
} bp_ref_sgd;

/* The batch's mean loss into *loss and its gradient into grad (layout.total): nb samples, x
 * (nb, D) row-major and y (nb) labels in [0, C). BPROP_E_NOMEM when a buffer cannot be had. */
bprop_status bp_ref_loss_grad(const bp_ref_net *net, const float *x, const int32_t *y, size_t nb,
                              double *loss, double *grad);

/* One SGD step over the batch, as bprop_trainer_epoch takes it: the mean gradient g of the
 * batch's loss, then for every parameter w with its momentum v
 *   u = g + decay w                       (decay only for W1 and W2)
 *   u = u min(1, clip_norm / ||u||)       (||u|| over all parameters; only with clip_norm > 0)
 *   v = mu v + u
 *   w = w - lr (u + mu v)  (Nesterov)  or  w - lr v  (plain momentum).
 * *loss gets the batch's mean loss before the step. */
bprop_status bp_ref_step(bp_ref_net *net, const float *x, const int32_t *y, size_t nb,
                         const bp_ref_sgd *p, double *loss);

#endif /* BPROP_REFERENCE_H */
