/* cache.h: buffers a model keeps for evaluate, predict and loss_grad, so repeated calls
 * allocate nothing (internal). */
#ifndef BPROP_CACHE_H
#define BPROP_CACHE_H

#include "step.h"

/* A model's reusable buffers. One caller at a time uses them; a concurrent call on the same
 * model gets temporary buffers of its own instead of waiting. */
typedef struct bp_cache bp_cache;

bp_cache *bp_cache_new(void);
void bp_cache_free(bp_cache *c);

/* Forward-only buffers for `threads` threads: the cached engine (then *owned = 0) or a fresh
 * one (*owned = 1); NULL when out of memory. Hand it back with bp_cache_put_engine. */
bp_engine *bp_cache_get_engine(const bprop_model *m, int threads, int *owned);
void bp_cache_put_engine(const bprop_model *m, bp_engine *e, int owned);

/* A gradient-only stepper (data split, exact sums) for `threads` threads, likewise. */
bp_stepper *bp_cache_get_stepper(const bprop_model *m, int threads, int *owned);
void bp_cache_put_stepper(const bprop_model *m, bp_stepper *s, int owned);

#endif /* BPROP_CACHE_H */
