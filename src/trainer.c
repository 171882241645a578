/* trainer.c: the trainer: the epoch loop around the parallel step (step.c), the learning-rate
 * schedule, cancellation and the trainer state. */
#include "step.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

struct bprop_trainer {
    bprop_model *m;        /* borrowed */
    bprop_train_config c;
    int threads;
    bp_stepper *s;         /* per-thread buffers of the parallel step */
    float *velocity;       /* (params) momentum buffer */
    double lr_last;        /* learning rate of the last step taken */
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

bprop_status bprop_trainer_create(bprop_model *m, const bprop_train_config *c, size_t n_train,
                                  bprop_trainer **out, bprop_error *err)
{
    return bprop_trainer_create_comm(m, c, n_train, NULL, out, err);
}

/* Exact sums hold batches of up to BP_FIXED_MAX_BLOCKS blocks (fixed.h); a larger batch
 * would wrap their int64 sums. Refused when a step may sum exactly: with reproducible, or with
 * several ranks unless the data split is asked for (the hidden split over ranks sums exactly). */
static bprop_status check_exact_limit(const bprop_train_config *c, const bprop_comm *comm,
                                      bprop_error *err)
{
    const size_t limit = (size_t)BP_FIXED_MAX_BLOCKS * BP_BLOCK;
    const int ranks = comm && comm->size > 1;
    if (c->batch <= limit || !(c->reproducible || (ranks && c->parallel != BPROP_PARALLEL_DATA)))
        return BPROP_OK;
    if (c->reproducible)
        return bp_fail(err, BPROP_E_SIZE, "batch %zu is larger than exact (reproducible) sums "
                       "hold: at most %zu samples", c->batch, limit);
    return bp_fail(err, BPROP_E_SIZE, "batch %zu is larger than the exact sums of a hidden split "
                   "over ranks hold (at most %zu samples): ask for the data split", c->batch, limit);
}

bprop_status bprop_trainer_create_comm(bprop_model *m, const bprop_train_config *c,
                                       size_t n_train, const bprop_comm *comm,
                                       bprop_trainer **out, bprop_error *err)
{
    if (!m || !c || !out)
        return bp_fail(err, BPROP_E_ARG, "bprop_trainer_create: NULL argument");
    if (comm && (comm->size < 1 || comm->rank < 0 || comm->rank >= comm->size || !comm->sum_i64 ||
                 !comm->sum_f64 || !comm->max_f64))
        return bp_fail(err, BPROP_E_ARG, "bprop_trainer_create_comm: invalid communicator (rank %d of %d)",
                       comm->rank, comm->size);
    bprop_status st = bprop_train_config_check(c, err);
    if (st == BPROP_OK)
        st = check_exact_limit(c, comm, err);
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
    const bp_stepper_spec spec = {.m = m, .params = m->params, .velocity = t->velocity,
                                  .threads = t->threads, .batch = c->batch, .cfg = &t->c,
                                  .comm = comm};
    st = t->velocity && t->perm ? bp_stepper_create(&spec, &t->s) : BPROP_E_NOMEM;
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
    bp_stepper_free(t->s);
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

/* What the master thread does between a step's pass and its update. */
typedef struct epoch_ctx {
    bprop_trainer *t;
    bprop_progress_fn progress;
    void *user;
    size_t steps;      /* steps of a whole epoch */
} epoch_ctx;

static int after_pass(void *p, const bp_stepper *s, size_t nb)
{
    epoch_ctx *x = p;
    bprop_trainer *t = x->t;
    t->loss += s->loss;
    t->correct += (uint64_t)s->correct;
    t->seen += nb;
    t->step++;
    return x->progress && x->progress(x->user, t->step, x->steps, t->loss / (double)t->seen,
                                      (double)t->correct / (double)t->seen);
}

/* Master's bookkeeping after a step: the per-tensor gradient norms of the statistics. */
static void after_step(bprop_trainer *t, int nt)
{
    t->reduce_seconds += t->s->combine_seconds;
    for (int k = 0; k < BPROP_TENSORS; k++)
        for (int u = 0; u < nt; u++)
            t->norm2_sum[k] += t->s->e->slot[u].norm2[k];
}

/* The rest of the epoch, from step t->step on, inside one parallel region. Returns whether
 * the loss diverged; *cancelled tells whether the cancellation flag stopped it. */
static int run_steps(bprop_trainer *t, const bprop_dataset *d, epoch_ctx *x, int *team,
                     int *cancelled)
{
    const size_t n = d->n, B = t->c.batch, steps = t->steps_per_epoch;
    const size_t epoch = t->epochs_done;
    int diverged = 0;
    *cancelled = 0;
#pragma omp parallel num_threads(t->threads)
    {
        int stop = 0;
        /* OpenMP may start fewer threads than asked for (OMP_THREAD_LIMIT, OMP_DYNAMIC, a call
         * from inside the caller's own parallel region): the step splits its work over the
         * team that actually runs. */
        const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
#pragma omp single
        *team = nt;
        while (t->step < steps && !stop) {
            const size_t start = t->step * B, nb = n - start < B ? n - start : B;
            bp_step_io io = {.b = {.X = bp_src_dataset(d), .Y = d->y, .idx = t->perm + start,
                                   .nb = nb},
                             .lr = (float)lr_at(t, epoch, t->step),
                             .cancel = t->cancel,
                             .after_pass = after_pass, .ctx = x};
            bp_step(t->s, tid, nt, &io);
            /* bp_step ends with a barrier: every thread sees the same stop decision. */
            if (tid == 0) {
                after_step(t, nt);
                t->lr_last = io.lr;
            }
            stop = t->s->stop;
            if (tid == 0 && stop) {
                diverged = t->s->diverged;
                *cancelled = t->s->cancelled;
            }
        }
    }
    return diverged;
}

static bprop_status check_data(const bprop_trainer *t, const bprop_dataset *d, bprop_error *err)
{
    if (!d || !bp_dataset_has_features(d))
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
    if (t->step == 0) {
        /* A fresh epoch; a cancelled one continues where it stopped, with its permutation. */
        if (t->c.shuffle)
            bp_shuffle(t->perm, t->n_train, &t->rng);
        t->seen = t->correct = 0;
        t->loss = t->reduce_seconds = t->seconds = 0.0;
        memset(t->norm2_sum, 0, sizeof t->norm2_sum);
    }
    const bp_src src = bp_src_dataset(train);
    bp_stepper_prepare(t->s, &src, train->n);
    epoch_ctx x = {.t = t, .progress = progress, .user = user, .steps = t->steps_per_epoch};
    int team = 0, cancelled = 0;
    double t0 = omp_get_wtime();
    int diverged = run_steps(t, train, &x, &team, &cancelled);
    t->seconds += omp_get_wtime() - t0;
    /* A hidden split keeps W1 and its momentum in the stepper's private slices during the
     * epoch, and over ranks each rank updates only its slices of W1, b1 and W2: back into the
     * model and the velocity, whole on every rank, for whatever reads them between epochs
     * (evaluation, checkpoints of a cancelled or diverged epoch, the caller). */
    const int sync_failed = bp_stepper_sync(t->s);
    /* Split updates leave each rank only its run of the momentum: whole again for whatever
     * reads the state between epochs (checkpoints). Every rank gets here together. */
    if (bp_stepper_gather_velocity(t->s) || sync_failed)
        return bp_fail(err, BPROP_E_COMM, "gathering the model or momentum over the ranks failed");
    bprop_provenance *info = &t->m->info;
    if (diverged)
        return bp_fail(err, BPROP_E_DIVERGED, "epoch %zu, step %zu: the loss became NaN or infinite "
                       "(try a smaller learning rate or --clip)", t->epochs_done + 1, t->step + 1);
    info->config = t->c;
    info->threads = team;
    info->ranks = t->comm ? t->comm->size : 1;
    snprintf(info->isa, sizeof info->isa, "%s", t->s->e->k->name); /* the set that ran */
    if (cancelled && t->step < t->steps_per_epoch)
        return bp_fail(err, BPROP_E_CANCELLED, "epoch %zu stopped after step %zu of %zu",
                       t->epochs_done + 1, t->step, t->steps_per_epoch);
    const size_t steps_done = t->step;
    info->samples_seen += t->seen;
    t->step = 0;
    t->epochs_done++;
    info->epochs_done++;
    info->train_loss = t->seen ? (float)(t->loss / (double)t->seen) : NAN;
    info->train_acc = t->seen ? (float)((double)t->correct / (double)t->seen) : NAN;
    if (stats) {
        *stats = (bprop_epoch_stats){
            .epoch = t->epochs_done, .steps = steps_done,
            .train_loss = info->train_loss, .train_acc = info->train_acc,
            .seconds = t->seconds, .samples_per_s = t->seconds > 0 ? (double)t->seen / t->seconds : 0.0,
            .reduce_seconds = t->reduce_seconds, .lr = t->lr_last};
        for (int k = 0; k < BPROP_TENSORS; k++)
            stats->grad_norm[k] = steps_done ? sqrt(t->norm2_sum[k] / (double)steps_done) : 0.0;
    }
    return BPROP_OK;
}
