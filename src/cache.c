/* cache.c: buffers a model keeps for evaluate, predict and loss_grad. */
#include "cache.h"

#include <stdatomic.h>

struct bp_cache {
    atomic_flag busy;        /* set while a call uses the buffers below */
    bp_engine *engine;       /* forward-only buffers, engine_threads threads */
    int engine_threads;
    bp_stepper *stepper;     /* gradient buffers, stepper_threads threads */
    int stepper_threads;
    bprop_train_config cfg;  /* the stepper's settings: exact sums, data split, no clipping */
};

bp_cache *bp_cache_new(void)
{
    bp_cache *c = bp_alloc(1, sizeof *c);
    if (c) {
        atomic_flag_clear(&c->busy);
        bprop_train_config_default(&c->cfg);
        c->cfg.parallel = BPROP_PARALLEL_DATA;
        c->cfg.reproducible = 1;
    }
    return c;
}

void bp_cache_free(bp_cache *c)
{
    if (!c)
        return;
    bp_engine_free(c->engine);
    bp_stepper_free(c->stepper);
    bp_free(c);
}

/* The cache when this caller is the only one using it, else NULL. */
static bp_cache *claim(const bprop_model *m)
{
    bp_cache *c = m->cache;
    return c && !atomic_flag_test_and_set(&c->busy) ? c : NULL;
}

bp_engine *bp_cache_get_engine(const bprop_model *m, int threads, int *owned)
{
    bp_engine *e = NULL;
    bp_cache *c = claim(m);
    if (c) {
        if (c->engine && c->engine_threads == threads) {
            *owned = 0;
            return c->engine;
        }
        bp_engine_free(c->engine);
        c->engine = NULL;
        if (bp_engine_create(m, threads, 0, &c->engine) == BPROP_OK) {
            c->engine_threads = threads;
            *owned = 0;
            return c->engine;
        }
        atomic_flag_clear(&c->busy);
    }
    *owned = 1;
    return bp_engine_create(m, threads, 0, &e) == BPROP_OK ? e : NULL;
}

void bp_cache_put_engine(const bprop_model *m, bp_engine *e, int owned)
{
    if (owned)
        bp_engine_free(e);
    else
        atomic_flag_clear(&m->cache->busy);
}

bp_stepper *bp_cache_get_stepper(const bprop_model *m, int threads, int *owned)
{
    bp_stepper *s = NULL;
    bp_cache *c = claim(m);
    /* A gradient-only stepper never writes the model, so it may hold a const one. */
    bprop_model *mm = (bprop_model *)m;
    if (c) {
        if (c->stepper && c->stepper_threads == threads) {
            *owned = 0;
            return c->stepper;
        }
        bp_stepper_free(c->stepper);
        c->stepper = NULL;
        if (bp_stepper_create(mm, threads, 1, &c->cfg, NULL, NULL, &c->stepper) == BPROP_OK) {
            c->stepper_threads = threads;
            *owned = 0;
            return c->stepper;
        }
        atomic_flag_clear(&c->busy);
    }
    *owned = 1;
    bprop_train_config cfg;
    bprop_train_config_default(&cfg);
    cfg.parallel = BPROP_PARALLEL_DATA;
    return bp_stepper_create(mm, threads, 1, &cfg, NULL, NULL, &s) == BPROP_OK ? s : NULL;
}

void bp_cache_put_stepper(const bprop_model *m, bp_stepper *s, int owned)
{
    if (owned)
        bp_stepper_free(s);
    else
        atomic_flag_clear(&m->cache->busy);
}
