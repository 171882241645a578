/* workspace.h: the compute buffers of evaluate, predict and loss_grad, owned by whoever passes
 * the workspace (internal). */
#ifndef BPROP_WORKSPACE_H
#define BPROP_WORKSPACE_H

#include "step.h"

#include <stdatomic.h>

/* Buffers for models of one shape, built on first use and rebuilt when a call brings another
 * shape or thread count. A workspace serves one call at a time: a call that finds it in use
 * fails instead of sharing it. */
struct bprop_workspace {
    atomic_flag busy;        /* set while a call uses the buffers below */
    size_t inputs, hidden, classes;
    int has_bias;            /* the shape the buffers are for */
    bp_engine *engine;       /* forward-only buffers, engine_threads threads */
    int engine_threads;
    bp_stepper *stepper;     /* gradient-only stepper (exact sums, data split), stepper_threads */
    int stepper_threads;
};

/* An empty workspace in place (for one on the stack); bp_workspace_clear frees its buffers. */
void bp_workspace_init(bprop_workspace *ws);
void bp_workspace_clear(bprop_workspace *ws);

/* Take ws for one call, or fail (BPROP_E_ARG, with a message naming `call`) when another call
 * holds it; bp_workspace_release hands it back. */
bprop_status bp_workspace_claim(bprop_workspace *ws, const char *call, bprop_error *err);
void bp_workspace_release(bprop_workspace *ws);

/* Forward-only buffers for m's shape and `threads` threads; NULL when out of memory. */
bp_engine *bp_workspace_engine(bprop_workspace *ws, const bprop_model *m, int threads);

/* A gradient-only stepper bound to m (it reads m, never writes it) for `threads` threads;
 * NULL when out of memory. */
bp_stepper *bp_workspace_stepper(bprop_workspace *ws, const bprop_model *m, int threads);

#endif /* BPROP_WORKSPACE_H */
