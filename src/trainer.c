/* trainer.c: the parallel SGD step (thread-local gradients, fixed-order reduction fused with the
 * update) and the epoch loop around it. */
#include "engine.h"

#include <math.h>
#include <omp.h>
#include <string.h>

struct bprop_trainer {
    bprop_model *m;        /* borrowed */
    bprop_train_config c;
    int threads;
    bp_engine *e;          /* thread-local gradients and scratch */
    float *velocity;       /* (params) momentum buffer */
    size_t *perm;          /* (n_train) sample order of the current epoch */
    size_t n_train;
    size_t steps_per_epoch;
    size_t epochs_done;    /* by this trainer, for the schedule */
    bp_rng rng;            /* shuffling stream */
    const bprop_comm *comm;              /* borrowed; NULL for a single process */
    const volatile sig_atomic_t *cancel; /* borrowed; NULL when nobody can cancel */
    /* The epoch in progress: steps done and running sums, kept here so a cancelled epoch can
     * be checkpointed and continued. step == 0 means the next epoch starts afresh. */
    size_t step;
    uint64_t seen, correct;
    double loss, reduce_seconds, seconds;
    double norm2_sum[BPROP_TENSORS];
};

/* What the master thread tracks through an epoch; other threads only read `stop`. */
typedef struct epoch_state {
    bprop_progress_fn progress;
    void *user;
    int stop, diverged;
    int team;          /* threads OpenMP actually started: the step is split over these */
    size_t steps_done, seen, correct;
    double loss, reduce_seconds, lr;
    double norm2_sum[BPROP_TENSORS];
} epoch_state;

bprop_status bprop_trainer_create(bprop_model *m, const bprop_train_config *c, size_t n_train,
                                  bprop_trainer **out, bprop_error *err)
{
    return bprop_trainer_create_comm(m, c, n_train, NULL, out, err);
}

bprop_status bprop_trainer_create_comm(bprop_model *m, const bprop_train_config *c,
                                       size_t n_train, const bprop_comm *comm,
                                       bprop_trainer **out, bprop_error *err)
{
    if (!m || !c || !out)
        return bp_fail(err, BPROP_E_ARG, "bprop_trainer_create: NULL argument");
    if (comm && comm->size != 1)
        return bp_fail(err, BPROP_E_ARG, "multi-process training is not built yet");
    bprop_status st = bprop_train_config_check(c, err);
    if (st != BPROP_OK)
        return st;
    if (n_train == 0)
        return bp_fail(err, BPROP_E_SIZE, "the training set is empty");
    bprop_trainer *t = bp_alloc(1, sizeof *t);
    if (!t)
        return bp_fail(err, BPROP_E_NOMEM, "cannot allocate the trainer");
    t->m = m;
    t->c = *c;
    t->comm = comm;
    t->threads = bp_resolve_threads(c->threads);
    t->n_train = n_train;
    t->steps_per_epoch = n_train / c->batch + (n_train % c->batch != 0);
    bp_rng_seed(&t->rng, c->seed ^ 0x53485546464c45ull); /* "SHUFFLE": apart from init's stream */
    t->velocity = bp_alloc(m->layout.total, sizeof(float));
    t->perm = bp_alloc(n_train, sizeof(size_t));
    st = t->velocity && t->perm ? bp_engine_create(m, t->threads, 1, &t->e) : BPROP_E_NOMEM;
    if (st != BPROP_OK) {
        bprop_trainer_free(t);
        return bp_fail(err, st, "cannot allocate training buffers for %d threads (%zu parameters)",
                       c->threads, m->layout.total);
    }
    for (size_t i = 0; i < n_train; i++)
        t->perm[i] = i;
    *out = t;
    return BPROP_OK;
}

void bprop_trainer_free(bprop_trainer *t)
{
    if (!t)
        return;
    bp_engine_free(t->e);
    bp_free(t->velocity);
    bp_free(t->perm);
    bp_free(t);
}

int bprop_trainer_threads(const bprop_trainer *t) { return t ? t->threads : 0; }

void bprop_trainer_set_cancel(bprop_trainer *t, const volatile sig_atomic_t *flag)
{
    if (t)
        t->cancel = flag;
}

void bprop_trainer_get_state(const bprop_trainer *t, bprop_trainer_state *s)
{
    *s = (bprop_trainer_state){
        .epoch = t->epochs_done, .step = t->step, .n_train = t->n_train, .perm = t->perm,
        .params = t->m->layout.total, .velocity = t->velocity, .seen = t->seen,
        .correct = t->correct, .loss = t->loss, .reduce_seconds = t->reduce_seconds,
        .seconds = t->seconds};
    memcpy(s->rng, t->rng.s, sizeof s->rng);
    memcpy(s->norm2_sum, t->norm2_sum, sizeof s->norm2_sum);
}

bprop_status bprop_trainer_set_state(bprop_trainer *t, const bprop_trainer_state *s,
                                     bprop_error *err)
{
    if (!t || !s || !s->perm || !s->velocity)
        return bp_fail(err, BPROP_E_ARG, "bprop_trainer_set_state: NULL argument");
    if (s->n_train != t->n_train || s->params != t->m->layout.total)
        return bp_fail(err, BPROP_E_MISMATCH, "trainer state for %zu samples and %zu parameters, "
                       "this trainer has %zu and %zu", s->n_train, s->params, t->n_train,
                       t->m->layout.total);
    if (s->step >= t->steps_per_epoch)
        return bp_fail(err, BPROP_E_ARG, "trainer state at step %llu of an epoch of %zu steps",
                       (unsigned long long)s->step, t->steps_per_epoch);
    for (size_t i = 0; i < s->n_train; i++)
        if (s->perm[i] >= t->n_train)
            return bp_fail(err, BPROP_E_FORMAT, "trainer state: permutation entry %zu is %zu, "
                           "beyond the %zu samples", i, s->perm[i], t->n_train);
    t->epochs_done = (size_t)s->epoch;
    t->step = (size_t)s->step;
    memcpy(t->rng.s, s->rng, sizeof s->rng);
    memcpy(t->perm, s->perm, t->n_train * sizeof *t->perm);
    memcpy(t->velocity, s->velocity, s->params * sizeof *t->velocity);
    t->seen = s->seen;
    t->correct = s->correct;
    t->loss = s->loss;
    t->reduce_seconds = s->reduce_seconds;
    t->seconds = s->seconds;
    memcpy(t->norm2_sum, s->norm2_sum, sizeof t->norm2_sum);
    return BPROP_OK;
}

/* Learning rate of step `step` (0-based) of epoch `epoch` (0-based over the trainer's life). */
static double lr_at(const bprop_trainer *t, size_t epoch, size_t step)
{
    const bprop_train_config *c = &t->c;
    switch (c->schedule) {
    case BPROP_SCHEDULE_STEP:
        return c->lr * pow(c->step_gamma, (double)(epoch / c->step_epochs));
    case BPROP_SCHEDULE_COSINE: {
        double total = (double)(c->epochs * t->steps_per_epoch);
        double done = (double)(epoch * t->steps_per_epoch + step);
        if (done > total)
            done = total;
        return c->lr * 0.5 * (1.0 + cos(3.141592653589793 * done / total));
    }
    default:
        return c->lr;
    }
}

/* The optimiser's view of one contiguous run of parameters inside a single tensor. */
typedef struct seg {
    float *w, *v;     /* parameters and momentum at the run's start */
    size_t n;         /* length */
    float decay;      /* L2 coefficient for this tensor (0 for biases) */
} seg;

/* Reduce-and-update block: small enough to live in L1 between the sum and the update. */
#define UPDATE_BLOCK 512

/* SGD with momentum on a run, given the reduced gradient g (already scaled to the mean):
 * u = g + decay * w (scaled by clip), v = mu v + u, w -= lr (Nesterov ? u + mu v : v). */
static void sgd_run(const bprop_train_config *c, seg s, const float *g, float lr, float clip)
{
    const float mu = c->momentum, wd = s.decay;
    if (c->nesterov) {
#pragma omp simd
        for (size_t i = 0; i < s.n; i++) {
            float u = (g[i] + wd * s.w[i]) * clip;
            float v = mu * s.v[i] + u;
            s.v[i] = v;
            s.w[i] -= lr * (u + mu * v);
        }
    } else {
#pragma omp simd
        for (size_t i = 0; i < s.n; i++) {
            float u = (g[i] + wd * s.w[i]) * clip;
            float v = mu * s.v[i] + u;
            s.v[i] = v;
            s.w[i] -= lr * v;
        }
    }
}

/* Sum of squares of g[0..n) and of (g + decay w)[0..n). */
static void sumsq(const float *g, const float *w, float decay, size_t n, double *g2, double *u2)
{
    double a = 0.0, b = 0.0;
#pragma omp simd reduction(+ : a, b)
    for (size_t i = 0; i < n; i++) {
        double gi = g[i], ui = g[i] + decay * w[i];
        a += gi * gi;
        b += ui * ui;
    }
    *g2 += a;
    *u2 += b;
}

/* Walk this thread's parameter chunk tensor by tensor in blocks; fn sees each block. */
typedef struct chunk_ctx {
    bprop_trainer *t;
    int nt;            /* threads in the team actually running (may be fewer than asked for) */
    const int *active;
    int na;
    float inv_nb, lr, clip;
    bp_slot *slot;
} chunk_ctx;

/* Phase "fused": sum the thread buffers, record norms, update at once (no clipping). */
static void block_fused(chunk_ctx *x, int tensor, seg s, size_t p)
{
    float g[UPDATE_BLOCK];
    bp_sum_buffers(x->t->e->grad, x->active, x->na, p, s.n, g);
    for (size_t i = 0; i < s.n; i++)
        g[i] *= x->inv_nb;
    double u2 = 0.0;
    sumsq(g, s.w, s.decay, s.n, &x->slot->norm2[tensor], &u2);
    sgd_run(&x->t->c, s, g, x->lr, 1.0f);
}

/* Clipping, phase 1: reduce into the first active buffer and record both norms. */
static void block_reduce(chunk_ctx *x, int tensor, seg s, size_t p)
{
    float *g0 = x->t->e->grad[x->active[0]];
    bp_sum_buffers(x->t->e->grad, x->active, x->na, p, s.n, g0 + p);
    for (size_t i = p; i < p + s.n; i++)
        g0[i] *= x->inv_nb;
    sumsq(g0 + p, s.w, s.decay, s.n, &x->slot->norm2[tensor], &x->slot->total2);
}

/* Clipping, phase 2: update from the reduced gradient with the global clip factor. */
static void block_update(chunk_ctx *x, int tensor, seg s, size_t p)
{
    (void)tensor;
    sgd_run(&x->t->c, s, x->t->e->grad[x->active[0]] + p, x->lr, x->clip);
}

typedef void (*block_fn)(chunk_ctx *x, int tensor, seg s, size_t p);

static void for_chunk(chunk_ctx *x, int tid, block_fn fn)
{
    bprop_trainer *t = x->t;
    const bprop_layout *L = &t->m->layout;
    size_t a, b;
    bp_param_chunk(L->total, x->nt, tid, &a, &b);
    for (int tensor = 0; tensor < BPROP_TENSORS; tensor++) {
        size_t lo = L->offset[tensor], hi = lo + L->count[tensor];
        lo = lo > a ? lo : a;
        hi = hi < b ? hi : b;
        float decay = (tensor == BPROP_W1 || tensor == BPROP_W2) ? t->c.weight_decay : 0.0f;
        for (size_t p = lo; p < hi; p += UPDATE_BLOCK) {
            size_t n = hi - p < UPDATE_BLOCK ? hi - p : UPDATE_BLOCK;
            fn(x, tensor, (seg){t->m->params + p, t->velocity + p, n, decay}, p);
        }
    }
}

/* Everything between the two barriers of a step, for thread tid: the reduction fused with the
 * update, split over the parameters so each thread owns whole cache lines of W and v. */
static void reduce_and_update(bprop_trainer *t, int tid, int nt, size_t nb, float lr)
{
    int active[nt];
    chunk_ctx x = {.t = t, .nt = nt, .active = active, .na = bp_active_threads(nb, nt, active),
                   .inv_nb = 1.0f / (float)nb, .lr = lr, .clip = 1.0f, .slot = &t->e->slot[tid]};
    memset(x.slot->norm2, 0, sizeof x.slot->norm2);
    x.slot->total2 = 0.0;
    if (t->c.clip_norm <= 0.0f) {
        for_chunk(&x, tid, block_fused);
        return;
    }
    for_chunk(&x, tid, block_reduce);
#pragma omp barrier
    /* Every thread sums the same partials in the same order, so all agree on the factor. */
    double total2 = 0.0;
    for (int u = 0; u < nt; u++)
        total2 += t->e->slot[u].total2;
    double norm = sqrt(total2);
    x.clip = norm > t->c.clip_norm ? (float)(t->c.clip_norm / norm) : 1.0f;
    for_chunk(&x, tid, block_update);
}

/* Master's bookkeeping after the backward barrier: running loss, divergence, progress. */
static void after_pass(bprop_trainer *t, epoch_state *es, size_t nb, size_t steps)
{
    double loss = 0.0;
    size_t correct = 0;
    for (int u = 0; u < es->team; u++) {
        loss += t->e->slot[u].loss;
        correct += t->e->slot[u].correct;
    }
    if (!isfinite(loss)) {
        es->diverged = es->stop = 1;
        return;
    }
    es->loss += loss;
    es->correct += correct;
    es->seen += nb;
    es->steps_done++;
    if (es->progress && es->progress(es->user, es->steps_done, steps, es->loss / (double)es->seen,
                                     (double)es->correct / (double)es->seen))
        es->stop = 1;
}

static void after_update(bprop_trainer *t, epoch_state *es)
{
    for (int tensor = 0; tensor < BPROP_TENSORS; tensor++)
        for (int u = 0; u < es->team; u++)
            es->norm2_sum[tensor] += t->e->slot[u].norm2[tensor];
}

static void run_steps(bprop_trainer *t, const bprop_dataset *d, epoch_state *es)
{
    const size_t n = d->n, B = t->c.batch, steps = t->steps_per_epoch;
    const size_t epoch = t->epochs_done;
#pragma omp parallel num_threads(t->threads)
    {
        /* OpenMP may start fewer threads than asked for (OMP_THREAD_LIMIT, OMP_DYNAMIC, a call
         * from inside the caller's own parallel region): everything below splits the work over
         * the team that actually runs, so the result is that of a run with nt threads. */
        const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
        bp_slot *slot = &t->e->slot[tid];
#pragma omp single
        es->team = nt;
        for (size_t step = 0; step < steps && !es->stop; step++) {
            size_t start = step * B, nb = n - start < B ? n - start : B, lo, hi;
            bp_share(nb, nt, tid, &lo, &hi);
            slot->loss = 0.0;
            slot->correct = 0;
            if (hi > lo)
                bp_thread_pass(t->m, &t->e->work[tid], t->e->grad[tid], d->x, d->y,
                               t->perm + start, lo, hi, &slot->loss, &slot->correct);
#pragma omp barrier
            double t0 = 0.0;
            if (tid == 0) {
                t0 = omp_get_wtime();
                after_pass(t, es, nb, steps);
            }
            float lr = (float)lr_at(t, epoch, step);
            reduce_and_update(t, tid, nt, nb, lr);
#pragma omp barrier
            if (tid == 0) {
                es->reduce_seconds += omp_get_wtime() - t0;
                es->lr = lr;
                after_update(t, es);
            }
            /* es->stop, read by the loop test, was written by the master before the barrier. */
        }
    }
}

static bprop_status check_data(const bprop_trainer *t, const bprop_dataset *d, bprop_error *err)
{
    if (!d || !d->x)
        return bp_fail(err, BPROP_E_ARG, "training data is NULL");
    if (!d->y)
        return bp_fail(err, BPROP_E_ARG, "training data has no labels");
    if (d->n != t->n_train)
        return bp_fail(err, BPROP_E_MISMATCH, "training set has %zu samples, the trainer was made for %zu",
                       d->n, t->n_train);
    if (d->dim != t->m->inputs)
        return bp_fail(err, BPROP_E_MISMATCH, "training data has %zu features, the model expects %zu",
                       d->dim, t->m->inputs);
    for (size_t i = 0; i < d->n; i++)
        if (d->y[i] < 0 || (size_t)d->y[i] >= t->m->classes)
            return bp_fail(err, BPROP_E_LABEL, "training sample %zu: label %d outside 0..%zu", i,
                           (int)d->y[i], t->m->classes - 1);
    return BPROP_OK;
}

bprop_status bprop_trainer_epoch(bprop_trainer *t, const bprop_dataset *train,
                                 bprop_progress_fn progress, void *user,
                                 bprop_epoch_stats *stats, bprop_error *err)
{
    if (!t)
        return bp_fail(err, BPROP_E_ARG, "trainer is NULL");
    bprop_status st = check_data(t, train, err);
    if (st != BPROP_OK)
        return st;
    if (t->c.shuffle)
        bp_shuffle(t->perm, t->n_train, &t->rng);
    epoch_state es = {.progress = progress, .user = user};
    double t0 = omp_get_wtime();
    run_steps(t, train, &es);
    double seconds = omp_get_wtime() - t0;
    if (es.diverged)
        return bp_fail(err, BPROP_E_DIVERGED, "epoch %zu, step %zu: the loss became NaN or infinite "
                       "(try a smaller learning rate or --clip)", t->epochs_done + 1, es.steps_done + 1);
    t->epochs_done++;
    bprop_provenance *info = &t->m->info;
    info->config = t->c;
    info->epochs_done++;
    info->samples_seen += es.seen;
    info->threads = es.team;
    info->train_loss = es.seen ? (float)(es.loss / (double)es.seen) : NAN;
    info->train_acc = es.seen ? (float)((double)es.correct / (double)es.seen) : NAN;
    if (stats) {
        *stats = (bprop_epoch_stats){
            .epoch = t->epochs_done, .steps = es.steps_done,
            .train_loss = info->train_loss, .train_acc = info->train_acc,
            .seconds = seconds, .samples_per_s = seconds > 0 ? (double)es.seen / seconds : 0.0,
            .reduce_seconds = es.reduce_seconds, .lr = es.lr};
        for (int k = 0; k < BPROP_TENSORS; k++)
            stats->grad_norm[k] = es.steps_done ? sqrt(es.norm2_sum[k] / (double)es.steps_done) : 0.0;
    }
    return BPROP_OK;
}
